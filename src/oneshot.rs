//! A bare `SELECT` (one-shot query): runs over the stored events in a throwaway engine.

use serde_json::Value;
use weir_engine::{Engine, EngineConfig, ReadRequest};
use weir_query_lang::ast::{Select, Source};
use weir_storage::RangeQuery;

use crate::api::error::{ApiError, ApiResult};
use crate::app::App;

/// Run `select` over every stored event of its source and return the result rows.
pub fn run(app: &App, select: &Select) -> ApiResult<Vec<Value>> {
    let types: Vec<String> = match &select.from {
        Source::AllEvents(_) => Vec::new(),
        Source::Named { name, window: None } => vec![name.name.clone()],
        Source::Named { name, window: Some(_) } => {
            return Err(ApiError::bad_request(format!(
                "a one-shot query reads stored events; read query '{name}' through GET /api/queries/{name}/result"
            )))
        }
    };
    let engine = Engine::new(EngineConfig {
        shards: 1,
        default_grace_ms: i64::MAX / 4,
        default_retention_ms: i64::MAX / 4,
    });
    engine
        .create_query("oneshot", select)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let events = app
        .store
        .scan_range(&RangeQuery {
            account: "default".into(),
            project: "default".into(),
            types,
            from_ts: i64::MIN,
            to_ts: i64::MAX,
        })
        .map_err(ApiError::internal)?;
    for record in events {
        let record = record.map_err(ApiError::internal)?;
        engine.apply(&record.event, || record.seq);
    }
    let rows = engine
        .result(
            "oneshot",
            &ReadRequest {
                from: Some(i64::MIN),
                to: Some(i64::MAX),
                ..Default::default()
            },
        )
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(rows
        .into_iter()
        .map(crate::api::queries::row_json)
        .collect())
}
