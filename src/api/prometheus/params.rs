//! Request parameters as Prometheus reads them: from the query string and, for a POST, a
//! form-encoded body (Grafana sends both ways); times as unix seconds or RFC 3339, step
//! widths as durations (`15s`, `1m`) or seconds.

use axum::http::{header, HeaderMap};
use promql_parser::label::Matcher;
use promql_parser::parser::Expr;

use super::eval::parse;
use super::render::PromError;

/// Every parameter, in order, repeated ones (`match[]`) included.
#[derive(Debug, Default)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    /// Read the query string and, if it is a form, the body.
    pub fn read(query: Option<&str>, headers: &HeaderMap, body: &[u8]) -> Result<Self, PromError> {
        let mut all: Vec<(String, String)> = match query {
            Some(q) => serde_urlencoded::from_str(q)
                .map_err(|e| PromError::bad_data(format!("invalid query string: {e}")))?,
            None => Vec::new(),
        };
        let form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        if form && !body.is_empty() {
            let more: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
                .map_err(|e| PromError::bad_data(format!("invalid form body: {e}")))?;
            all.extend(more);
        }
        Ok(Params(all))
    }

    /// The first value of `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// A time parameter, if given.
    pub fn time(&self, name: &str) -> Result<Option<i64>, PromError> {
        self.get(name)
            .filter(|v| !v.is_empty())
            .map(|v| parse_time(v).map_err(|e| invalid(name, e)))
            .transpose()
    }

    /// A required time parameter.
    pub fn required_time(&self, name: &str) -> Result<i64, PromError> {
        self.time(name)?
            .ok_or_else(|| invalid(name, "cannot parse \"\" to a valid timestamp".to_string()))
    }

    /// The PromQL expression in `query`.
    pub fn expr(&self) -> Result<Expr, PromError> {
        match self.get("query") {
            Some(q) if !q.trim().is_empty() => parse(q),
            _ => Err(invalid("query", "no expression given".to_string())),
        }
    }

    /// The selectors of every `match[]` (each must be a plain series selector).
    pub fn matchers(&self) -> Result<Vec<Vec<Matcher>>, PromError> {
        self.all("match[]")
            .into_iter()
            .map(|m| match parse(m)? {
                Expr::VectorSelector(vs) if vs.offset.is_none() && vs.at.is_none() => {
                    let mut ms = vs.matchers.matchers;
                    if let Some(name) = vs.name {
                        ms.push(Matcher::new(
                            promql_parser::label::MatchOp::Equal,
                            "__name__",
                            &name,
                        ));
                    }
                    Ok(ms)
                }
                other => Err(invalid(
                    "match[]",
                    format!("{other} is not a series selector"),
                )),
            })
            .collect()
    }
}

fn invalid(name: &str, msg: String) -> PromError {
    PromError::bad_data(format!("invalid parameter \"{name}\": {msg}"))
}

/// A Prometheus time: unix seconds (with a fraction) or RFC 3339; unix ms.
pub fn parse_time(s: &str) -> Result<i64, String> {
    if let Ok(secs) = s.parse::<f64>() {
        if secs.is_finite() {
            return Ok((secs * 1000.0).round() as i64);
        }
    }
    if s.contains('T') {
        if let Ok(ms) = weir_core::parse_time(s) {
            return Ok(ms);
        }
    }
    Err(format!("cannot parse \"{s}\" to a valid timestamp"))
}

/// A step width: a duration (`15s`, `1m30s`) or seconds; ms.
pub fn parse_step(s: &str) -> Result<i64, PromError> {
    let ms = if let Ok(secs) = s.parse::<f64>() {
        if !secs.is_finite() {
            return Err(invalid(
                "step",
                format!("cannot parse \"{s}\" to a valid duration"),
            ));
        }
        (secs * 1000.0).round() as i64
    } else {
        promql_parser::util::parse_duration(s)
            .map(|d| d.as_millis() as i64)
            .map_err(|_| invalid("step", format!("cannot parse \"{s}\" to a valid duration")))?
    };
    if ms <= 0 {
        return Err(invalid(
            "step",
            "zero or negative query resolution step widths are not accepted. Try a positive integer"
                .into(),
        ));
    }
    Ok(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_steps() {
        assert_eq!(parse_time("1700000000"), Ok(1_700_000_000_000));
        assert_eq!(parse_time("1700000000.25"), Ok(1_700_000_000_250));
        assert_eq!(parse_time("2023-11-14T22:13:20Z"), Ok(1_700_000_000_000));
        assert!(parse_time("yesterday").is_err());
        assert_eq!(parse_step("15"), Ok(15_000));
        assert_eq!(parse_step("1m30s"), Ok(90_000));
        assert_eq!(parse_step("0.5"), Ok(500));
        assert!(parse_step("0")
            .unwrap_err()
            .message
            .contains("zero or negative"));
        assert!(parse_step("soon").is_err());
    }

    #[test]
    fn query_string_and_form_together() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            "application/x-www-form-urlencoded".parse().unwrap(),
        );
        let p = Params::read(
            Some("match%5B%5D=a&start=1"),
            &h,
            b"match%5B%5D=b%7Bx%3D%22y%22%7D&end=2",
        )
        .unwrap();
        assert_eq!(p.all("match[]"), vec!["a", "b{x=\"y\"}"]);
        assert_eq!(p.time("end").unwrap(), Some(2000));
        assert_eq!(p.matchers().unwrap().len(), 2);
        let bad = Params(vec![("match[]".into(), "sum(a)".into())]);
        assert!(bad
            .matchers()
            .unwrap_err()
            .message
            .contains("not a series selector"));
    }
}
