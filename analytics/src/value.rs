//! How field values compare and print as text.
//!
//! One rule everywhere: a scalar's *text form* is the string itself for a string and the JSON
//! text for a number or boolean (`5`, `2.5`, `true`). Values of the same JSON type compare by
//! value (numbers numerically, so `5` equals `5.0`); values of different types compare by
//! their text forms, so the string `"5"` equals the number `5` and `"true"` equals `true`.
//! `null` has no text form: it equals only `null`, is never a unique value and never a
//! funnel match value. Arrays and objects use their compact JSON text.

use std::borrow::Cow;

use serde_json::Value;

/// The text form of a value (see the module docs); `None` for `null`.
pub fn text_form(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(Cow::Borrowed(s.as_str())),
        Value::Bool(b) => Some(Cow::Borrowed(if *b { "true" } else { "false" })),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        other => Some(Cow::Owned(other.to_string())),
    }
}

/// Whether two values are equal under the module's rule.
pub fn values_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            if let (Some(x), Some(y)) = (x.as_i64(), y.as_i64()) {
                x == y
            } else if let (Some(x), Some(y)) = (x.as_u64(), y.as_u64()) {
                x == y
            } else {
                x.as_f64() == y.as_f64()
            }
        }
        (Value::Null, Value::Null) => true,
        (Value::Null, _) | (_, Value::Null) => false,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Array(_), Value::Array(_)) | (Value::Object(_), Value::Object(_)) => a == b,
        _ => text_form(a) == text_form(b),
    }
}

/// `s` cut to at most `max` characters (on a character boundary).
pub fn truncate_chars(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn same_type_compares_by_value() {
        assert!(values_equal(&json!(5), &json!(5.0)));
        assert!(values_equal(&json!("a"), &json!("a")));
        assert!(!values_equal(&json!(5), &json!(6)));
        assert!(!values_equal(&json!(u64::MAX), &json!(i64::MAX)));
    }

    #[test]
    fn different_types_compare_as_text() {
        assert!(values_equal(&json!("5"), &json!(5)));
        assert!(values_equal(&json!(true), &json!("true")));
        assert!(!values_equal(&json!("5.0"), &json!(5)));
        assert!(!values_equal(&json!(null), &json!("null")));
        assert!(values_equal(&json!(null), &json!(null)));
    }

    #[test]
    fn text_forms() {
        assert_eq!(text_form(&json!("x")).as_deref(), Some("x"));
        assert_eq!(text_form(&json!(2.5)).as_deref(), Some("2.5"));
        assert_eq!(text_form(&json!([1, "a"])).as_deref(), Some("[1,\"a\"]"));
        assert_eq!(text_form(&json!(null)), None);
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate_chars("héllo", 2), "hé");
        assert_eq!(truncate_chars("ab", 5), "ab");
    }
}
