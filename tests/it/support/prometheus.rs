//! The Prometheus text exposition format (version 0.0.4), parsed, so metric assertions compare
//! one series (a name and its exact label set) with one number: `{result="hit"} 1` can no longer
//! match a line whose value is 10 or 19, nor a series that has one more label.
//!
//! `Exposition::parse` accepts what `prometheus::TextEncoder` writes and what the format allows
//! besides (escaped label values, `+Inf`/`NaN`, timestamps, blank and comment lines); anything
//! else fails the test naming the line, so a broken `/metrics` cannot pass as "no such series".

use std::collections::BTreeMap;
use std::fmt;

/// One sample: a series and its value.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Every sample of one scrape, in order, with the `# TYPE` of each family.
#[derive(Debug, Clone, Default)]
pub struct Exposition {
    pub samples: Vec<Sample>,
    pub types: BTreeMap<String, String>,
}

/// Why a text is not the exposition format: the 1-based line and what is wrong with it.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub line: usize,
    pub text: String,
    pub problem: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {}: {} in {:?}", self.line, self.problem, self.text)
    }
}

impl Exposition {
    /// Parse a scrape; a malformed line fails the test with its number.
    pub fn parse(text: &str) -> Exposition {
        Exposition::try_parse(text)
            .unwrap_or_else(|error| panic!("not the Prometheus text format: {error}\n{text}"))
    }

    pub fn try_parse(text: &str) -> Result<Exposition, ParseError> {
        let mut exposition = Exposition::default();
        for (index, line) in text.lines().enumerate() {
            let error = |problem: &str| ParseError {
                line: index + 1,
                text: line.to_string(),
                problem: problem.to_string(),
            };
            let trimmed = line.trim();
            if trimmed.is_empty() {
                continue;
            }
            if let Some(comment) = trimmed.strip_prefix('#') {
                let mut words = comment.split_whitespace();
                if words.next() == Some("TYPE") {
                    let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                        return Err(error("a TYPE line needs a name and a type"));
                    };
                    exposition.types.insert(name.into(), kind.into());
                }
                continue;
            }
            exposition
                .samples
                .push(parse_sample(trimmed).map_err(|problem| error(&problem))?);
        }
        Ok(exposition)
    }

    /// The value of the series `name` whose label set is exactly `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let wanted: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .find(|sample| sample.name == name && sample.labels == wanted)
            .map(|sample| sample.value)
    }

    /// Like `value`, failing the test (listing the family's series) when there is no such series.
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or_else(|| {
            panic!(
                "no series {name}{labels:?}; the family has:\n{}",
                self.family(name)
            )
        })
    }

    /// The value of a series, 0 when absent: a labelled counter appears at its first increment.
    pub fn counter(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.value(name, labels).unwrap_or(0.0)
    }

    /// Every series of `name` (exact name) whose labels include `labels`.
    pub fn matching(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|sample| {
                sample.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| sample.labels.get(*k).map(String::as_str) == Some(*v))
            })
            .collect()
    }

    /// The sum over every series of `name` whose labels include `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).iter().map(|s| s.value).sum()
    }

    /// The `# TYPE` of a family, if the scrape declared one.
    pub fn type_of(&self, family: &str) -> Option<&str> {
        self.types.get(family).map(String::as_str)
    }

    /// The series of one family (for failure messages): `name`, `name_bucket`, `name_sum`, ...
    pub fn family(&self, name: &str) -> String {
        self.samples
            .iter()
            .filter(|sample| sample.name.starts_with(name))
            .map(|sample| format!("  {} {:?} {}", sample.name, sample.labels, sample.value))
            .collect::<Vec<_>>()
            .join("\n")
    }
}

/// GET `url` (an admin listener's `/metrics`) and parse it; fails the test if it is not a 200.
pub async fn scrape(url: &str) -> Exposition {
    let response = super::client()
        .get(url)
        .send()
        .await
        .unwrap_or_else(|error| panic!("GET {url}: {error}"));
    assert_eq!(response.status(), 200, "GET {url}");
    Exposition::parse(&response.text().await.expect("metrics body"))
}

fn parse_sample(line: &str) -> Result<Sample, String> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("a sample needs a value")?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("`{name}` is not a metric name"));
    }
    let mut rest = &line[name_end..];
    let mut labels = BTreeMap::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        rest = parse_labels(after_brace, &mut labels)?;
    }
    let mut words = rest.split_whitespace();
    let value = words.next().ok_or("a sample needs a value")?;
    let value = parse_value(value).ok_or_else(|| format!("`{value}` is not a sample value"))?;
    if let Some(timestamp) = words.next() {
        timestamp
            .parse::<i64>()
            .map_err(|_| format!("`{timestamp}` is not a timestamp"))?;
    }
    if words.next().is_some() {
        return Err("text after the timestamp".into());
    }
    Ok(Sample {
        name: name.into(),
        labels,
        value,
    })
}

/// Parse `a="x",b="y"}` (after the opening brace); return what follows the closing brace.
fn parse_labels<'a>(
    mut text: &'a str,
    labels: &mut BTreeMap<String, String>,
) -> Result<&'a str, String> {
    loop {
        text = text.trim_start();
        if let Some(after) = text.strip_prefix('}') {
            return Ok(after);
        }
        let equals = text.find('=').ok_or("a label needs `=`")?;
        let label = text[..equals].trim();
        if !is_label_name(label) {
            return Err(format!("`{label}` is not a label name"));
        }
        let quoted = text[equals + 1..]
            .trim_start()
            .strip_prefix('"')
            .ok_or("a label value must be quoted")?;
        let mut value = String::new();
        let mut chars = quoted.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((at, '"')) => break at,
                Some((_, '\\')) => match chars.next() {
                    Some((_, 'n')) => value.push('\n'),
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    _ => return Err("bad escape in a label value".into()),
                },
                Some((_, c)) => value.push(c),
            }
        };
        if labels.insert(label.to_string(), value).is_some() {
            return Err(format!("label `{label}` twice"));
        }
        text = quoted[end + 1..].trim_start();
        if let Some(after) = text.strip_prefix(',') {
            text = after;
        } else if !text.starts_with('}') {
            return Err("labels are separated by `,`".into());
        }
    }
}

fn parse_value(text: &str) -> Option<f64> {
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[test]
fn exact_series_and_exact_values() {
    let text = "# HELP om_gateway_token_cache_requests_total Lookups.\n\
                # TYPE om_gateway_token_cache_requests_total counter\n\
                om_gateway_token_cache_requests_total{result=\"hit\"} 17\n\
                om_gateway_token_cache_requests_total{result=\"miss\"} 1\n\
                om_gateway_requests_total{method=\"GET\",route=\"a\",status=\"200\"} 3\n\
                om_gateway_inflight_requests 0\n\
                om_gateway_request_duration_seconds_bucket{route=\"a\",le=\"+Inf\"} 3 1700000000000\n\
                odd{v=\"a \\\"quoted\\\", comma\\\\ and\\nnewline\"} NaN\n";
    let metrics = Exposition::parse(text);
    let cache = "om_gateway_token_cache_requests_total";
    // The substring `{result="hit"} 1` is in the text; the series' value is 17, not 1.
    assert!(text.contains("{result=\"hit\"} 1"));
    assert_eq!(metrics.value(cache, &[("result", "hit")]), Some(17.0));
    assert_eq!(metrics.value(cache, &[("result", "miss")]), Some(1.0));
    assert_eq!(metrics.value(cache, &[]), None, "the label set is exact");
    assert_eq!(metrics.counter(cache, &[("result", "stale")]), 0.0);
    assert_eq!(metrics.sum(cache, &[]), 18.0);
    assert_eq!(metrics.type_of(cache), Some("counter"));
    let requests = "om_gateway_requests_total";
    assert_eq!(
        metrics.value(
            requests,
            &[("status", "200"), ("route", "a"), ("method", "GET")]
        ),
        Some(3.0),
        "label order does not matter"
    );
    assert_eq!(metrics.value(requests, &[("route", "a")]), None);
    assert_eq!(metrics.sum(requests, &[("route", "a")]), 3.0);
    assert_eq!(
        metrics.value("om_gateway_inflight_requests", &[]),
        Some(0.0)
    );
    assert_eq!(
        metrics.value(
            "om_gateway_request_duration_seconds_bucket",
            &[("route", "a"), ("le", "+Inf")]
        ),
        Some(3.0)
    );
    let odd = metrics.matching("odd", &[]);
    assert_eq!(odd[0].labels["v"], "a \"quoted\", comma\\ and\nnewline");
    assert!(odd[0].value.is_nan());
}

#[test]
fn malformed_lines_are_errors_naming_the_line() {
    for (text, line) in [
        ("ok 1\nno_value\n", 2),
        ("x{a=\"1\"", 1),
        ("x{a=1} 1", 1),
        ("x{a=\"1\",a=\"2\"} 1", 1),
        ("x 1 2 3", 1),
        ("x one", 1),
        ("9x 1", 1),
        ("# TYPE x\n", 1),
    ] {
        let error = Exposition::try_parse(text).expect_err(text);
        assert_eq!(error.line, line, "{text:?}: {error}");
    }
}
