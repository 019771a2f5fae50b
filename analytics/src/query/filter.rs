//! Compiled filters and the keys that mean the event type.

use regex::{Regex, RegexBuilder};
use serde_json::Value;
use weir_core::Event;

use super::spec::FilterSpec;
use crate::value::{text_form, values_equal};

/// Filter keys that mean the event's type rather than a field (the seed 001 shape keeps its
/// type in `data.event_tag`; other shapes use `type` or `event_type`).
pub const TYPE_KEYS: [&str; 3] = ["event_tag", "type", "event_type"];

/// Largest compiled size of a filter regex, so a query cannot exhaust memory.
const REGEX_SIZE_LIMIT: usize = 1 << 20;

/// Compile a filter pattern with full-match semantics: `5..` matches `503` but not `1503`.
pub(crate) fn compile_regex(pattern: &str) -> std::result::Result<Regex, String> {
    RegexBuilder::new(&format!("^(?:{pattern})$"))
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
        .map_err(|e| format!("invalid regular expression: {e}"))
}

/// A filter ready to test events.
#[derive(Debug, Clone)]
pub(crate) enum Filter {
    /// Field equals value ([`crate::value::values_equal`]).
    Eq { key: String, value: Value },
    /// The event type's text equals this (`None`: a `null` value, which no type equals).
    TypeEq(Option<String>),
    /// The field's text form fully matches.
    Regex { key: String, re: Regex },
    /// The event type fully matches.
    TypeRegex(Regex),
    /// The field is present and not null.
    All { key: String },
    /// Always true: every event has a type.
    TypeAll,
}

impl Filter {
    /// Compile a checked filter.
    pub(crate) fn compile(spec: &FilterSpec) -> Self {
        let is_type = |k: &str| TYPE_KEYS.contains(&k);
        match spec {
            FilterSpec::Eq { key, value } if is_type(key) => {
                Filter::TypeEq(text_form(value).map(|t| t.into_owned()))
            }
            FilterSpec::Eq { key, value } => Filter::Eq {
                key: key.clone(),
                value: value.clone(),
            },
            FilterSpec::Regex { key, pattern } => {
                // Checked when the query was read, so this cannot fail.
                let re = compile_regex(pattern).unwrap_or_else(|_| Regex::new("$^").unwrap());
                if is_type(key) {
                    Filter::TypeRegex(re)
                } else {
                    Filter::Regex {
                        key: key.clone(),
                        re,
                    }
                }
            }
            FilterSpec::All { key } if is_type(key) => Filter::TypeAll,
            FilterSpec::All { key } => Filter::All { key: key.clone() },
        }
    }

    /// Whether `ev` passes.
    pub(crate) fn matches(&self, ev: &Event) -> bool {
        match self {
            Filter::Eq { key, value } => ev.field(key).is_some_and(|f| values_equal(f, value)),
            Filter::TypeEq(t) => t.as_deref() == Some(ev.kind.as_str()),
            Filter::Regex { key, re } => ev
                .field(key)
                .and_then(text_form)
                .is_some_and(|t| re.is_match(&t)),
            Filter::TypeRegex(re) => re.is_match(&ev.kind),
            Filter::All { key } => ev.field(key).is_some_and(|f| !f.is_null()),
            Filter::TypeAll => true,
        }
    }

    /// The type this filter pins events to, if it is an `eq` on a type key
    /// (`Some(None)`: pinned to no type at all).
    pub(crate) fn pinned_type(&self) -> Option<Option<&str>> {
        match self {
            Filter::TypeEq(t) => Some(t.as_deref()),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Map};

    fn ev(kind: &str, fields: Value) -> Event {
        let Value::Object(m) = fields else {
            return Event::new(kind, 0, Map::new());
        };
        Event::new(kind, 0, m)
    }

    fn eq(key: &str, value: Value) -> Filter {
        Filter::compile(&FilterSpec::Eq {
            key: key.into(),
            value,
        })
    }

    fn regex(key: &str, p: &str) -> Filter {
        Filter::compile(&FilterSpec::Regex {
            key: key.into(),
            pattern: p.into(),
        })
    }

    #[test]
    fn eq_on_fields_and_types() {
        let e = ev(
            "product_view",
            json!({"user_id": 5, "path": "/foo", "u": {"id": "x"}}),
        );
        assert!(eq("user_id", json!("5")).matches(&e));
        assert!(eq("user_id", json!(5)).matches(&e));
        assert!(!eq("user_id", json!(6)).matches(&e));
        assert!(eq("u.id", json!("x")).matches(&e));
        assert!(!eq("missing", json!(null)).matches(&e));
        for k in TYPE_KEYS {
            assert!(eq(k, json!("product_view")).matches(&e), "{k}");
            assert!(!eq(k, json!("add_to_cart")).matches(&e), "{k}");
        }
    }

    #[test]
    fn regex_is_a_full_match_on_the_text_form() {
        let f = regex("status_code", "5..");
        assert!(f.matches(&ev("req", json!({"status_code": 503}))));
        assert!(f.matches(&ev("req", json!({"status_code": "500"}))));
        assert!(!f.matches(&ev("req", json!({"status_code": 1503}))));
        assert!(!f.matches(&ev("req", json!({"status_code": 404}))));
        assert!(!f.matches(&ev("req", json!({"status_code": null}))));
        assert!(!f.matches(&ev("req", json!({}))));
        assert!(regex("type", "add_.*").matches(&ev("add_to_cart", json!({}))));
    }

    #[test]
    fn all_means_present_and_not_null() {
        let f = Filter::compile(&FilterSpec::All { key: "a".into() });
        assert!(f.matches(&ev("t", json!({"a": 0}))));
        assert!(f.matches(&ev("t", json!({"a": false}))));
        assert!(!f.matches(&ev("t", json!({"a": null}))));
        assert!(!f.matches(&ev("t", json!({"b": 1}))));
    }

    #[test]
    fn bad_patterns_are_refused() {
        assert!(compile_regex("(").is_err());
        assert!(compile_regex("a{1000}{1000}").is_err());
    }
}
