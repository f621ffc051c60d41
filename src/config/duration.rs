//! Humane durations: `500ms`, `30s`, `10m`, `24h`, `7d`, and sums such as `1h30m`.

use std::time::Duration;

/// Why a text is not a duration; the message says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct DurationError(pub String);

/// Parse a duration string; the error says what was expected.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err(DurationError(
            "empty duration; expected e.g. 500ms, 30s, 10m, 24h".into(),
        ));
    }
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(DurationError(format!(
                "`{text}` is not a duration; expected e.g. 500ms, 30s, 10m, 24h"
            )));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| DurationError(format!("`{text}`: number too large")))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            "d" => Duration::from_secs(number.saturating_mul(86_400)),
            "" => {
                return Err(DurationError(format!(
                    "`{text}` has no unit; expected ms, s, m, h or d"
                )))
            }
            other => {
                return Err(DurationError(format!(
                    "`{text}`: unknown unit `{other}`; expected ms, s, m, h or d"
                )))
            }
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// The inverse of [`parse_duration`] for printing the effective configuration.
pub fn format_duration(duration: Duration) -> String {
    let millis = duration.as_millis();
    if millis == 0 {
        "0".into()
    } else if millis.is_multiple_of(3_600_000) {
        format!("{}h", millis / 3_600_000)
    } else if millis.is_multiple_of(60_000) {
        format!("{}m", millis / 60_000)
    } else if millis.is_multiple_of(1000) {
        format!("{}s", millis / 1000)
    } else {
        format!("{millis}ms")
    }
}
