//! An error and its chain of causes as one line, for logs and `/readyz` details. A leaf: every
//! module that reports an IO or protocol failure uses it, so it depends on nothing.

/// An error and its causes on one line: HTTP client errors hide the useful part in `source()`.
pub fn describe_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
