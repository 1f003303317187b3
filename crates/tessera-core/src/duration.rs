//! Durations as users write them: `90s`, `15m`, `1h30m`, `7d`.

use std::time::Duration;

/// Why a duration string was refused. Carries the input: durations are never secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    #[error("empty duration (use e.g. 90s, 15m, 1h30m, 7d)")]
    Empty,
    #[error("invalid duration {input:?}: expected a number at position {position} (use e.g. 90s, 15m, 1h30m, 7d)")]
    ExpectedNumber { input: String, position: usize },
    #[error("invalid duration {input:?}: number without a unit (add s, m, h or d, e.g. {number}s)")]
    MissingUnit { input: String, number: String },
    #[error("invalid duration {input:?}: unknown unit {unit:?} (use s, m, h or d)")]
    UnknownUnit { input: String, unit: char },
    #[error("invalid duration {input:?}: units must go from largest to smallest, each once (e.g. 1h30m)")]
    UnitOrder { input: String },
    #[error("invalid duration {input:?}: too large")]
    Overflow { input: String },
}

fn unit_seconds(unit: char) -> Option<u64> {
    match unit {
        'd' => Some(86_400),
        'h' => Some(3_600),
        'm' => Some(60),
        's' => Some(1),
        _ => None,
    }
}

/// Parses `90s`, `15m`, `1h30m`, `7d`, `1d12h`: one or more number-unit pairs, units from
/// largest to smallest. Whitespace around the whole string is ignored.
pub fn parse_duration(input: &str) -> Result<Duration, DurationError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let owned = || s.to_owned();
    let mut total: u64 = 0;
    let mut last_unit_size = u64::MAX;
    let mut chars = s.char_indices().peekable();
    while let Some(&(start, _)) = chars.peek() {
        let mut number = String::new();
        while let Some(&(_, c)) = chars.peek() {
            if c.is_ascii_digit() {
                number.push(c);
                chars.next();
            } else {
                break;
            }
        }
        if number.is_empty() {
            return Err(DurationError::ExpectedNumber { input: owned(), position: start });
        }
        let Some((_, unit)) = chars.next() else {
            return Err(DurationError::MissingUnit { input: owned(), number });
        };
        let size = unit_seconds(unit).ok_or(DurationError::UnknownUnit { input: owned(), unit })?;
        if size >= last_unit_size {
            return Err(DurationError::UnitOrder { input: owned() });
        }
        last_unit_size = size;
        let value: u64 = number.parse().map_err(|_| DurationError::Overflow { input: owned() })?;
        total = value
            .checked_mul(size)
            .and_then(|v| total.checked_add(v))
            .filter(|v| *v <= MAX_SECONDS)
            .ok_or(DurationError::Overflow { input: owned() })?;
    }
    Ok(Duration::from_secs(total))
}

/// 100 years: far beyond any sensible TTL, and small enough for every date type we use.
const MAX_SECONDS: u64 = 100 * 365 * 86_400;

/// Formats a duration in the same notation, largest units first: `1h30m`, `7d`, `0s`.
pub fn format_duration(d: Duration) -> String {
    let mut secs = d.as_secs();
    if secs == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in [('d', 86_400), ('h', 3_600), ('m', 60), ('s', 1)] {
        if secs >= size {
            out.push_str(&(secs / size).to_string());
            out.push(unit);
            secs %= size;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_forms() {
        let cases = [
            ("90s", 90),
            ("15m", 900),
            ("1h30m", 5_400),
            ("7d", 604_800),
            ("1d12h", 129_600),
            ("2h0m5s", 7_205),
            (" 10m ", 600),
            ("0s", 0),
        ];
        for (input, secs) in cases {
            assert_eq!(parse_duration(input), Ok(Duration::from_secs(secs)), "{input}");
        }
    }

    #[test]
    fn refuses_malformed_durations_with_a_specific_reason() {
        let s = |x: &str| x.to_owned();
        let cases = [
            ("", DurationError::Empty),
            ("10", DurationError::MissingUnit { input: s("10"), number: s("10") }),
            ("10x", DurationError::UnknownUnit { input: s("10x"), unit: 'x' }),
            ("h", DurationError::ExpectedNumber { input: s("h"), position: 0 }),
            ("-5m", DurationError::ExpectedNumber { input: s("-5m"), position: 0 }),
            ("30m1h", DurationError::UnitOrder { input: s("30m1h") }),
            ("1h1h", DurationError::UnitOrder { input: s("1h1h") }),
            ("1.5h", DurationError::UnknownUnit { input: s("1.5h"), unit: '.' }),
            ("99999999999999999999d", DurationError::Overflow { input: s("99999999999999999999d") }),
            ("999999d", DurationError::Overflow { input: s("999999d") }),
            ("5é", DurationError::UnknownUnit { input: s("5é"), unit: 'é' }),
        ];
        for (input, expected) in cases {
            assert_eq!(parse_duration(input), Err(expected), "{input:?}");
        }
    }

    #[test]
    fn format_round_trips() {
        for secs in [0, 1, 59, 60, 61, 3_600, 5_400, 86_400, 90_061, 604_800] {
            let d = Duration::from_secs(secs);
            assert_eq!(parse_duration(&format_duration(d)), Ok(d));
        }
        assert_eq!(format_duration(Duration::from_secs(5_400)), "1h30m");
    }
}
