//! `POST /api/statements`: apply DSL text (one or more statements).

use crate::api::access::Ctx;
use crate::api::cluster::InCluster;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody};
use super::queries::{Dependent, QueryDefinition, RuleDefinition};

/// The answer of `POST /api/statements`: one result per statement, in order.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatementResults {
    /// Each statement's result.
    #[schema(value_type = Vec<StatementResult>)]
    pub results: Vec<Value>,
}

/// One statement's result (built by the catalogue); which fields are present depends on
/// `statement`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // describes the JSON the catalogue builds, for the OpenAPI document
pub struct StatementResult {
    /// What the statement was.
    #[schema(inline)]
    pub statement: StatementKind,
    /// The query or rule it created or dropped.
    pub name: Option<String>,
    /// CREATE: whether it replaced a definition of the same name.
    pub replaced: Option<bool>,
    /// CREATE QUERY: `running`.
    pub status: Option<String>,
    /// CREATE: events replayed into the new definition.
    pub backfilled: Option<u64>,
    /// DROP QUERY: what was dropped with it (CASCADE).
    pub dropped: Option<Vec<Dependent>>,
    /// SHOW QUERIES.
    pub queries: Option<Vec<QueryDefinition>>,
    /// SHOW RULES.
    pub rules: Option<Vec<RuleDefinition>>,
    /// SELECT: the rows (`key`, `values` and the window or bucket bounds).
    #[schema(value_type = Option<Vec<Object>>)]
    pub rows: Option<Vec<Value>>,
}

/// The kinds of statement.
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
#[schema(rename_all = "snake_case")]
pub enum StatementKind {
    /// CREATE QUERY.
    CreateQuery,
    /// DROP QUERY.
    DropQuery,
    /// CREATE RULE.
    CreateRule,
    /// DROP RULE.
    DropRule,
    /// SHOW QUERIES.
    ShowQueries,
    /// SHOW RULES.
    ShowRules,
    /// SELECT.
    Select,
}

/// Parse, check and apply every statement of the body; on any error nothing is applied and
/// the answer is 400 with `line` and `column`.
#[utoipa::path(
    post,
    path = "/api/statements",
    tag = "statements",
    request_body(
        content = Option<String>,
        content_type = "text/plain",
        description = "DSL text: CREATE QUERY, CREATE RULE, DROP, SHOW, SELECT; several statements separated by ';' (none: nothing applied)",
        example = "CREATE QUERY orders AS SELECT count(*) AS n FROM order GROUP BY seller"
    ),
    responses(
        (status = 200, description = "every statement applied", body = StatementResults, links(
            ("GetQuery" = (operation_id = "get_query", parameters(("name" = "$response.body#/results/0/name")))),
            ("QueryResult" = (operation_id = "result", parameters(("name" = "$response.body#/results/0/name")))),
            ("DeleteQuery" = (operation_id = "delete_query", parameters(("name" = "$response.body#/results/0/name")))),
            ("GetRule" = (operation_id = "get_rule", parameters(("name" = "$response.body#/results/0/name")))),
            ("DeleteRule" = (operation_id = "delete_rule", parameters(("name" = "$response.body#/results/0/name")))),
        )),
        (status = 400, description = "a parse or semantic error (with line and column); nothing applied", body = ErrorBody),
        (status = 404, description = "a DROP or a SELECT of something that does not exist", body = ErrorBody),
        (status = 409, description = "a DROP of a query that others read", body = ErrorBody),
        (status = 413, description = "the body is over the size limit", body = ErrorBody),
        (status = 500, description = "storage failed", body = ErrorBody),
    )
)]
pub async fn apply(
    Ctx(app): Ctx,
    InCluster(cl): InCluster,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<StatementResults>> {
    let body = body?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_request(format!("body is not UTF-8: {e}")))?;
    if let Some(cl) = &cl {
        if cl.local {
            // Broadcast by the peer that applied it: the shared catalogue has it already.
            crate::api::cluster::take_broadcast(cl, &app, text).await?;
            return Ok(Json(StatementResults {
                results: Vec::new(),
            }));
        }
    }
    let results = crate::catalog::apply(&app, text.to_string()).await?;
    if let Some(cl) = &cl {
        crate::api::cluster::refuse_unroutable_rules(cl, &app, text).await?;
        crate::api::cluster::after_statement(cl, app.tenant(), text).await?;
    }
    Ok(Json(StatementResults { results }))
}
