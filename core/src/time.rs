//! Unix-millisecond timestamps, the time formats Weir accepts, and durations.

use serde_json::Value;
use thiserror::Error;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::PrimitiveDateTime;

/// Unix time in milliseconds; also used for durations.
pub type Millis = i64;

/// Numbers above this are unix milliseconds; at or below it, unix seconds (SPEC section 1).
pub const MS_THRESHOLD: f64 = 1e11;

/// A time or duration that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TimeError {
    /// The text is not one of the accepted time formats.
    #[error("unparseable time {0:?}: expected unix seconds, unix milliseconds, RFC 3339 or 'YYYY-MM-DD HH:MM:SS[.ffffff]'")]
    Unparseable(String),
    /// The JSON value is not a number or a string.
    #[error("time must be a number or a string, got {0}")]
    WrongType(String),
    /// The duration is malformed.
    #[error("invalid duration {0:?}: expected a number and a unit (ms, s, sec, m, min, h, hour, d, day, w)")]
    Duration(String),
}

/// Read a time from a JSON value: a number (unix s or ms) or a string in any accepted format.
pub fn parse_time_value(v: &Value) -> Result<Millis, TimeError> {
    match v {
        Value::Number(n) => n
            .as_f64()
            .map(number_to_ms)
            .ok_or_else(|| TimeError::Unparseable(n.to_string())),
        Value::String(s) => parse_time(s),
        other => Err(TimeError::WrongType(other.to_string())),
    }
}

fn number_to_ms(n: f64) -> Millis {
    if n.abs() > MS_THRESHOLD {
        n as Millis
    } else {
        (n * 1000.0).round() as Millis
    }
}

/// Read a time from text: unix seconds, unix milliseconds (numbers above 10^11), RFC 3339,
/// or `YYYY-MM-DD HH:MM:SS[.ffffff]` taken as UTC.
pub fn parse_time(s: &str) -> Result<Millis, TimeError> {
    let t = s.trim();
    if let Ok(n) = t.parse::<f64>() {
        if n.is_finite() {
            return Ok(number_to_ms(n));
        }
    }
    if let Ok(dt) = time::OffsetDateTime::parse(t, &Rfc3339) {
        return Ok((dt.unix_timestamp_nanos() / 1_000_000) as Millis);
    }
    let with_frac =
        format_description!("[year]-[month]-[day] [hour]:[minute]:[second].[subsecond]");
    let without = format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let parsed = PrimitiveDateTime::parse(t, &with_frac)
        .or_else(|_| PrimitiveDateTime::parse(t, &without))
        .map_err(|_| TimeError::Unparseable(s.to_string()))?;
    Ok((parsed.assume_utc().unix_timestamp_nanos() / 1_000_000) as Millis)
}

/// A time as RFC 3339 (UTC, with the milliseconds), which [`parse_time`] reads back
/// exactly whatever its size; `None` outside the years RFC 3339 can write.
pub fn format_time(ms: Millis) -> Option<String> {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()?
        .format(&Rfc3339)
        .ok()
}

/// Units a duration may carry, with their length in milliseconds.
const UNITS: &[(&str, Millis)] = &[
    ("ms", 1),
    ("s", 1_000),
    ("sec", 1_000),
    ("m", 60_000),
    ("min", 60_000),
    ("h", 3_600_000),
    ("hour", 3_600_000),
    ("d", 86_400_000),
    ("day", 86_400_000),
    ("w", 604_800_000),
];

/// Length in milliseconds of a duration unit, if it is one Weir knows.
pub fn unit_ms(unit: &str) -> Option<Millis> {
    let u = unit.to_ascii_lowercase();
    UNITS.iter().find(|(n, _)| *n == u).map(|(_, ms)| *ms)
}

/// Parse `500ms`, `10s`, `5min`, `1h`, `1d`, `1w` (also `sec`, `m`, `hour`, `day`).
pub fn parse_duration(s: &str) -> Result<Millis, TimeError> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| TimeError::Duration(s.to_string()))?;
    let (num, unit) = t.split_at(split);
    let n: Millis = num
        .parse()
        .map_err(|_| TimeError::Duration(s.to_string()))?;
    let ms = unit_ms(unit.trim()).ok_or_else(|| TimeError::Duration(s.to_string()))?;
    n.checked_mul(ms)
        .ok_or_else(|| TimeError::Duration(s.to_string()))
}

/// Write a duration in the largest unit that divides it (`300000` → `5min`).
pub fn format_duration(ms: Millis) -> String {
    for (unit, len) in [
        ("w", 604_800_000),
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("min", 60_000),
        ("s", 1_000),
    ] {
        if ms != 0 && ms % len == 0 {
            return format!("{}{}", ms / len, unit);
        }
    }
    format!("{ms}ms")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_time_format() {
        assert_eq!(parse_time("1456606932").unwrap(), 1_456_606_932_000);
        assert_eq!(parse_time("1456606932000").unwrap(), 1_456_606_932_000);
        assert_eq!(
            parse_time("2016-02-27T20:22:12Z").unwrap(),
            1_456_604_532_000
        );
        assert_eq!(
            parse_time("2021-09-26 09:15:27.243860").unwrap(),
            1_632_647_727_243
        );
        assert_eq!(
            parse_time("2021-09-26 09:15:27").unwrap(),
            1_632_647_727_000
        );
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn rfc3339_reads_back_exactly() {
        for ms in [0, 1, 999, 86_400_001, 1_456_606_932_123, -5_000] {
            let text = format_time(ms).unwrap();
            assert_eq!(parse_time(&text).unwrap(), ms, "{text}");
        }
    }

    #[test]
    fn durations_round_trip() {
        for (s, ms) in [
            ("500ms", 500),
            ("10s", 10_000),
            ("5min", 300_000),
            ("1h", 3_600_000),
            ("2d", 172_800_000),
            ("1w", 604_800_000),
        ] {
            assert_eq!(parse_duration(s).unwrap(), ms);
            assert_eq!(parse_duration(&format_duration(ms)).unwrap(), ms);
        }
        assert_eq!(parse_duration("3sec").unwrap(), 3_000);
        assert_eq!(parse_duration("3HOUR").unwrap(), 10_800_000);
        assert!(parse_duration("5parsecs").is_err());
    }
}
