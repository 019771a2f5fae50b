//! Serde helpers shared by the input config structs: durations written as `"10s"`,
//! `"250ms"`, `"5min"` (the duration syntax of `weir-core`).

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Deserialize a duration from `"10s"`-style text (or a plain number of milliseconds).
pub fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Ms(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Ms(ms) => Ok(Duration::from_millis(ms)),
        Raw::Text(s) => {
            let ms = weir_core::parse_duration(&s).map_err(serde::de::Error::custom)?;
            u64::try_from(ms)
                .map(Duration::from_millis)
                .map_err(|_| serde::de::Error::custom("duration must not be negative"))
        }
    }
}

/// A rate limiter for log lines: lets one through per `every`, and counts the rest.
#[derive(Debug)]
pub struct LogLimiter {
    every: Duration,
    last: Option<std::time::Instant>,
    suppressed: u64,
}

impl LogLimiter {
    /// At most one log line per `every`.
    pub fn new(every: Duration) -> Self {
        Self {
            every,
            last: None,
            suppressed: 0,
        }
    }

    /// `Some(n)` when a line may be logged now (`n` = lines suppressed since the last one).
    pub fn allow(&mut self) -> Option<u64> {
        let now = std::time::Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < self.every => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct T {
        #[serde(deserialize_with = "duration")]
        d: Duration,
    }

    #[test]
    fn durations_as_text_or_ms() {
        let t: T = serde_json::from_str(r#"{"d":"250ms"}"#).unwrap();
        assert_eq!(t.d, Duration::from_millis(250));
        let t: T = serde_json::from_str(r#"{"d":"5min"}"#).unwrap();
        assert_eq!(t.d, Duration::from_secs(300));
        let t: T = serde_json::from_str(r#"{"d":40}"#).unwrap();
        assert_eq!(t.d, Duration::from_millis(40));
        assert!(serde_json::from_str::<T>(r#"{"d":"soon"}"#).is_err());
    }

    #[test]
    fn limiter_lets_one_through_then_counts() {
        let mut l = LogLimiter::new(Duration::from_secs(3600));
        assert_eq!(l.allow(), Some(0));
        assert_eq!(l.allow(), None);
        assert_eq!(l.allow(), None);
        assert_eq!(l.suppressed, 2);
    }
}
