//! The JSON Schema (draft 2020-12) of the JSON query, for `GET /api/query/schema`.
//!
//! [`super::JsonQuery::compile`] checks the same rules by hand (with path-naming errors);
//! the enums and property lists here come from the same constants the checks use.

use serde_json::{json, Value};

use super::spec::{
    DATA_SET_PROPS, FILTER_PROPS, FILTER_TYPES, FUNNEL_PROPS, FUNNEL_TYPES, OPERATION_PROPS,
    OPERATION_TYPES, QUERY_PROPS,
};

/// The query's JSON Schema.
pub fn query_schema() -> Value {
    let name = json!({"type": "string", "minLength": 1});
    let names = json!({"type": "array", "items": {"$ref": "#/$defs/name"}});
    let time = json!({
        "description": "unix milliseconds (integer), or a time string (RFC 3339, 'YYYY-MM-DD HH:MM:SS[.ffffff]' UTC, or unix seconds/ms as text)",
        "type": ["integer", "string", "null"]
    });
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "urn:weir:json-query",
        "title": "Weir JSON query",
        "description": "Counts, unique counts and an exact_order funnel over stored events with start <= ts < end.",
        "type": "object",
        "additionalProperties": false,
        "propertyNames": {"enum": QUERY_PROPS},
        "required": ["data"],
        "properties": {
            "start": time.clone(),
            "end": time,
            "data": {
                "type": "array",
                "minItems": 1,
                "items": {"$ref": "#/$defs/dataSet"},
                "description": "named data sets; names must be distinct"
            },
            "funnel": {"$ref": "#/$defs/funnel"}
        },
        "$defs": {
            "name": name,
            "dataSet": {
                "type": "object",
                "additionalProperties": false,
                "propertyNames": {"enum": DATA_SET_PROPS},
                "required": ["name"],
                "properties": {
                    "name": {"$ref": "#/$defs/name"},
                    "filters": {"type": "array", "items": {"$ref": "#/$defs/filter"}},
                    "unique": names.clone(),
                    "keys": {
                        "description": "accepted for the seed's second form; does not change the answer",
                        "type": "array", "items": {"$ref": "#/$defs/name"}
                    },
                    "operations": {"type": "array", "items": {"$ref": "#/$defs/operation"}}
                }
            },
            "filter": {
                "type": "object",
                "additionalProperties": false,
                "propertyNames": {"enum": FILTER_PROPS},
                "required": ["type", "key"],
                "properties": {
                    "type": {"enum": FILTER_TYPES},
                    "key": {"$ref": "#/$defs/name"},
                    "value": {"type": ["string", "number", "boolean", "null"]}
                },
                "allOf": [
                    {
                        "if": {"properties": {"type": {"const": "eq"}}},
                        "then": {"required": ["value"]}
                    },
                    {
                        "if": {"properties": {"type": {"const": "regex"}}},
                        "then": {
                            "required": ["value"],
                            "properties": {"value": {"type": "string", "format": "regex"}}
                        }
                    },
                    {
                        "if": {"properties": {"type": {"const": "all"}}},
                        "then": {"not": {"required": ["value"]}}
                    }
                ]
            },
            "operation": {
                "type": "object",
                "additionalProperties": false,
                "propertyNames": {"enum": OPERATION_PROPS},
                "required": ["type", "key"],
                "properties": {
                    "type": {"enum": OPERATION_TYPES},
                    "key": {"$ref": "#/$defs/name"}
                }
            },
            "funnel": {
                "type": "object",
                "additionalProperties": false,
                "propertyNames": {"enum": FUNNEL_PROPS},
                "required": ["type"],
                "oneOf": [{"required": ["order"]}, {"required": ["data"]}],
                "properties": {
                    "type": {"enum": FUNNEL_TYPES},
                    "order": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/name"}},
                    "data": {"type": "array", "minItems": 1, "items": {"$ref": "#/$defs/name"}},
                    "match": names
                }
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_lists_the_checked_enums() {
        let s = query_schema();
        assert_eq!(s["$schema"], "https://json-schema.org/draft/2020-12/schema");
        assert_eq!(
            s["$defs"]["filter"]["properties"]["type"]["enum"],
            json!(["eq", "regex", "all"])
        );
        assert_eq!(
            s["$defs"]["funnel"]["properties"]["type"]["enum"],
            json!(["exact_order"])
        );
        assert_eq!(s["required"], json!(["data"]));
    }
}
