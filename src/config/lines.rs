//! Where each key of a YAML document sits, so that validation errors can name a line.
//!
//! serde reports only the first structural error; semantic checks in `validate.rs` run on typed
//! values that no longer know their position. This index, built once per load from the parser's
//! event stream, maps a key path such as `routes[0].match.pathPrefix` to its line and column.

use serde_saphyr::granit_parser::{Event, Parser};
use std::collections::HashMap;

/// Line and column (both 1-based) of a key path inside one YAML document.
#[derive(Debug, Default, Clone)]
pub struct LineIndex {
    positions: HashMap<String, (usize, usize)>,
}

enum Frame {
    Mapping {
        path: String,
        pending_key: Option<String>,
    },
    Sequence {
        path: String,
        next_index: usize,
    },
}

impl LineIndex {
    /// Index `text`; a document that does not parse yields an empty index (serde reports why).
    pub fn build(text: &str) -> Self {
        let mut positions = HashMap::new();
        let mut stack: Vec<Frame> = Vec::new();
        for item in Parser::new_from_str(text) {
            let Ok((event, span)) = item else { break };
            let position = (span.start.line(), span.start.col() + 1);
            match event {
                Event::Scalar(value, ..) => {
                    if let Some(child) =
                        child_path(&mut stack, Some(value.as_ref()), position, &mut positions)
                    {
                        positions.entry(child).or_insert(position);
                    }
                }
                Event::MappingStart(..) => {
                    let path =
                        child_path(&mut stack, None, position, &mut positions).unwrap_or_default();
                    stack.push(Frame::Mapping {
                        path,
                        pending_key: None,
                    });
                }
                Event::SequenceStart(..) => {
                    let path =
                        child_path(&mut stack, None, position, &mut positions).unwrap_or_default();
                    stack.push(Frame::Sequence {
                        path,
                        next_index: 0,
                    });
                }
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                }
                Event::Alias(..) => {
                    child_path(&mut stack, None, position, &mut positions);
                }
                _ => {}
            }
        }
        LineIndex { positions }
    }

    /// The position of `key_path`, or of its nearest ancestor that has one.
    pub fn locate(&self, key_path: &str) -> Option<(usize, usize)> {
        let mut path = key_path;
        loop {
            if let Some(position) = self.positions.get(path) {
                return Some(*position);
            }
            let cut = path.rfind(['.', '['])?;
            path = &path[..cut];
        }
    }
}

/// Advance the innermost frame by one node and return that node's key path.
/// In a mapping, a scalar in key position records the key and returns `None`.
fn child_path(
    stack: &mut [Frame],
    scalar: Option<&str>,
    position: (usize, usize),
    positions: &mut HashMap<String, (usize, usize)>,
) -> Option<String> {
    match stack.last_mut()? {
        Frame::Mapping { path, pending_key } => match pending_key.take() {
            Some(key) => Some(join(path, &key)),
            None => {
                // A key: remember it and index the key itself, where a reader looks for it.
                let key = scalar.unwrap_or("?").to_string();
                positions.insert(join(path, &key), position);
                *pending_key = Some(key);
                None
            }
        },
        Frame::Sequence { path, next_index } => {
            let child = format!("{path}[{next_index}]");
            *next_index += 1;
            Some(child)
        }
    }
}

fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_string()
    } else {
        format!("{parent}.{key}")
    }
}

impl LineIndex {
    /// The deepest key path whose key starts on `line`, for serde errors that know only a position.
    pub fn key_on_line(&self, line: usize) -> Option<String> {
        self.positions
            .iter()
            .filter(|(_, position)| position.0 == line)
            .max_by_key(|(path, _)| path.len())
            .map(|(path, _)| path.clone())
    }
}
