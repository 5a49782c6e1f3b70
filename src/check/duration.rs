//! Durations as Istio writes them (Go's `time.ParseDuration` syntax: `5s`, `250ms`, `1m30s`,
//! `1.5s`), and as the report prints them.

use std::fmt;
use std::time::Duration;

/// A duration that is not in Istio's syntax.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{text}` is not a duration: {reason} (write it like 5s, 250ms or 1m30s)")]
pub(crate) struct DurationError {
    text: String,
    reason: &'static str,
}

pub(crate) fn parse(text: &str) -> Result<Duration, DurationError> {
    let fail = |reason| DurationError {
        text: text.to_owned(),
        reason,
    };
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(fail("it is empty"));
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    let mut total = 0f64;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .ok_or_else(|| fail("a number needs a unit"))?;
        let number: f64 = rest[..number_len]
            .parse()
            .map_err(|_| fail("expected a number before each unit"))?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return Err(fail("units are h, m, s, ms, us and ns")),
        };
        rest = &rest[unit_len..];
        total += number * seconds_per_unit;
    }
    Duration::try_from_secs_f64(total).map_err(|_| fail("it is too long"))
}

/// Prints `2s`, `6.1s`, `250ms`, `1m30s`: short, exact to the millisecond, stable.
pub(crate) struct Show(pub(crate) Duration);

impl fmt::Display for Show {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = self.0.as_millis();
        if ms < 1000 {
            return write!(f, "{ms}ms");
        }
        let (minutes, ms) = (ms / 60_000, ms % 60_000);
        if minutes > 0 {
            write!(f, "{minutes}m")?;
            if ms == 0 {
                return Ok(());
            }
        }
        let (secs, frac) = (ms / 1000, ms % 1000);
        if frac == 0 {
            write!(f, "{secs}s")
        } else {
            let frac = format!("{frac:03}");
            write!(f, "{secs}.{}s", frac.trim_end_matches('0'))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_istio_durations() {
        let cases = [
            ("5s", 5_000),
            ("250ms", 250),
            ("1m30s", 90_000),
            ("1.5s", 1_500),
            ("1h", 3_600_000),
            ("0", 0),
            ("0s", 0),
        ];
        for (text, ms) in cases {
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)), "{text}");
        }
        for bad in ["", "5", "s", "5x", "1.2.3s", "-1s", "5 s"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn shows_short_durations() {
        let cases = [
            (250, "250ms"),
            (2_000, "2s"),
            (6_100, "6.1s"),
            (6_075, "6.075s"),
            (90_000, "1m30s"),
            (120_000, "2m"),
        ];
        for (ms, text) in cases {
            assert_eq!(Show(Duration::from_millis(ms)).to_string(), text);
        }
    }
}
