//! Cluster mode over HTTP: `GET /api/cluster`, the internal statement broadcast, and the
//! [`InCluster`] extractor the event, decision, read and statement handlers take to send a
//! call where its partition lives (see [`crate::cluster`]).

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use weir_core::Tenant;

use super::error::{ApiError, ApiResult};
use crate::cluster::forward::{LOCAL_HEADER, PARTITION_HEADER};
use crate::cluster::{Cluster, Member};
use crate::tenants::Hub;

/// In cluster mode: the cluster, the caller's key (passed on to peers), and whether the call
/// was forwarded here for one partition or fanned out to this node's cells only.
pub struct InCluster(pub Option<ClusterCall>);

/// A call on a node of a cluster.
pub struct ClusterCall {
    /// This node's part of the cluster.
    pub cluster: Arc<Cluster>,
    /// The caller's `Authorization`, passed on to the peers called for it.
    pub auth: Option<HeaderValue>,
    /// Forwarded here for this partition: answer from its cell only.
    pub partition: Option<i32>,
    /// Fanned out here: answer from this node's cells only.
    pub local: bool,
}

impl FromRequestParts<Arc<Hub>> for InCluster {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, hub: &Arc<Hub>) -> Result<Self, ApiError> {
        let Some(cluster) = hub.cluster() else {
            return Ok(InCluster(None));
        };
        let partition = match parts.headers.get(PARTITION_HEADER) {
            None => None,
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| s.parse::<i32>().ok())
                    .filter(|p| (0..cluster.partitions()).contains(p))
                    .ok_or_else(|| {
                        ApiError::bad_request(format!("{PARTITION_HEADER}: not a partition"))
                    })?,
            ),
        };
        // The key as presented, in whichever form, passed on as a bearer token.
        let auth = parts
            .headers
            .get(header::AUTHORIZATION)
            .cloned()
            .or_else(|| {
                let key = parts
                    .headers
                    .get("x-api-key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
                    .or_else(|| {
                        parts.uri.query().and_then(|q| {
                            q.split('&')
                                .find_map(|kv| kv.strip_prefix("api_key=").map(str::to_string))
                        })
                    })?;
                HeaderValue::from_str(&format!("Bearer {key}")).ok()
            });
        Ok(InCluster(Some(ClusterCall {
            cluster: cluster.clone(),
            auth,
            partition,
            local: parts.headers.contains_key(LOCAL_HEADER),
        })))
    }
}

/// `GET /api/cluster`: this node, the members, who owns which partition.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterAnswer {
    /// This node's id.
    pub node: String,
    /// The events topic.
    pub topic: String,
    /// Its partition count.
    pub partitions: i32,
    /// The default routing fields.
    pub route: Vec<String>,
    /// Every member the shared keyspace lists, alive or not.
    #[schema(value_type = Vec<Object>)]
    pub nodes: Vec<Value>,
    /// The owner of each partition (null while it has none), by partition.
    #[schema(value_type = Object)]
    pub owners: Value,
    /// This node's partitions: state, position (next offset), lag.
    #[schema(value_type = Vec<Object>)]
    pub owned: Vec<Value>,
}

/// `GET /api/cluster`.
#[utoipa::path(
    get,
    path = "/api/cluster",
    tag = "cluster",
    responses(
        (status = 200, description = "the cluster as this node sees it", body = ClusterAnswer),
        (status = 404, description = "not in cluster mode", body = super::error::ErrorBody),
    )
)]
pub async fn status(State(hub): State<Arc<Hub>>) -> ApiResult<Json<ClusterAnswer>> {
    let cl = hub.cluster().ok_or_else(|| {
        ApiError::not_found("this node is not in cluster mode (--cluster-brokers)")
    })?;
    let members = cl.members();
    let nodes = members
        .iter()
        .map(|m: &Member| {
            serde_json::json!({
                "node": m.node, "url": m.url, "alive": cl.alive(m),
                "partitions": m.partitions, "at": m.at,
            })
        })
        .collect();
    let owners: serde_json::Map<String, Value> = (0..cl.partitions())
        .map(|p| {
            (
                p.to_string(),
                cl.owner(p).map_or(Value::Null, |m| m.node.into()),
            )
        })
        .collect();
    let mut owned = Vec::new();
    for cell in cl.cells() {
        let position = cell.position(cl.position_key(cell.partition)).await;
        let high = cl.high_watermark(cell.partition).await;
        owned.push(serde_json::json!({
            "partition": cell.partition,
            "state": cell.state(),
            "position": position,
            "lag": high.map(|h| (h - position.unwrap_or(0)).max(0)),
        }));
    }
    Ok(Json(ClusterAnswer {
        node: cl.cfg().node.clone(),
        topic: cl.cfg().topic.clone(),
        partitions: cl.partitions(),
        route: cl.cfg().route.clone(),
        nodes,
        owners: Value::Object(owners),
        owned,
    }))
}

/// `GET /api/cluster/decisions`: the rule-decision series of this node's serving cells and
/// the partitions they are for: a node's part of the Prometheus API's decision series, which
/// the node asked merges over the cluster.
#[utoipa::path(
    get,
    path = "/api/cluster/decisions",
    operation_id = "cluster_decisions",
    tag = "cluster",
    responses(
        (status = 200, description = "this node's cells' decision series", body = Object),
        (status = 404, description = "not in cluster mode", body = super::error::ErrorBody),
    )
)]
pub async fn decisions(
    super::access::Ctx(app): super::access::Ctx,
    InCluster(cl): InCluster,
) -> ApiResult<Json<crate::cluster::forward::PartialDecisions>> {
    let cl = cl.ok_or_else(|| {
        ApiError::not_found("this node is not in cluster mode (--cluster-brokers)")
    })?;
    Ok(Json(crate::cluster::forward::decisions_local(
        &cl.cluster,
        app.tenant(),
    )))
}

/// After a statement was applied on this node's front: apply it to this node's cells, and
/// (when it was sent here by a user, not broadcast) to every live peer's.
pub async fn after_statement(call: &ClusterCall, tenant: &Tenant, text: &str) -> ApiResult<()> {
    use weir_query_lang::ast::Statement as S;
    let changes = weir_query_lang::parse(text).is_ok_and(|stmts| {
        stmts.iter().any(|s| {
            matches!(
                s,
                S::CreateQuery(_) | S::CreateRule(_) | S::DropQuery(_) | S::DropRule(_)
            )
        })
    });
    if !changes {
        return Ok(());
    }
    let cl = &call.cluster;
    cl.note_front_applied().await.map_err(ApiError::internal)?;
    let local = cl.apply_to_cells(tenant, text).await;
    if !call.local {
        let me = cl.cfg().node.clone();
        for m in cl
            .members()
            .into_iter()
            .filter(|m| m.node != me && cl.alive(m))
        {
            let mut r = cl
                .http()
                .post(format!("{}/api/statements", m.url))
                .header(LOCAL_HEADER, "1")
                .body(text.to_string());
            if let Some(a) = &call.auth {
                r = r.header(header::AUTHORIZATION, a.clone());
            }
            match r.send().await {
                Ok(resp) if resp.status().is_success() => {}
                Ok(resp) => {
                    tracing::warn!(peer = %m.node, status = %resp.status(), "a peer did not take a statement (it reconciles with the shared catalogue)")
                }
                Err(e) => {
                    tracing::warn!(peer = %m.node, error = %e, "a peer did not take a statement (it reconciles with the shared catalogue)")
                }
            }
        }
    }
    local.map_err(|e| ApiError::internal(format!("{e:#}")))
}

/// A statement broadcast by a peer: its front wrote the shared catalogue already; this
/// node's front and cells take it.
pub async fn take_broadcast(
    call: &ClusterCall,
    app: &Arc<crate::app::App>,
    text: &str,
) -> ApiResult<Value> {
    let cl = &call.cluster;
    if let Some(front) = cl.front() {
        crate::cluster::sync_front(cl, &front)
            .await
            .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    }
    cl.apply_to_cells(app.tenant(), text)
        .await
        .map_err(|e| ApiError::internal(format!("{e:#}")))?;
    Ok(serde_json::json!({ "results": [] }))
}

/// Cluster mode refuses a rule whose group key leaves out a routing field: its decision is
/// made at one partition's owner, which sees only that partition's events, so it could not
/// be exact. Such a rule, just created on the front, is dropped again and the statement
/// refused.
pub async fn refuse_unroutable_rules(
    call: &ClusterCall,
    app: &Arc<crate::app::App>,
    text: &str,
) -> ApiResult<()> {
    use weir_query_lang::ast::{RuleSource, Statement as S};
    let Ok(stmts) = weir_query_lang::parse(text) else {
        return Ok(());
    };
    for s in &stmts {
        let S::CreateRule(r) = s else { continue };
        let rule = r.name.name.as_str();
        let query = match &r.source {
            RuleSource::On(q) => q.name.clone(),
            RuleSource::As(_) => weir_rules::owned_query_name(rule),
        };
        let Some(q) = app.engine().query(&query) else {
            continue;
        };
        if call.cluster.grouped_by_route(&q.plan.group) {
            continue;
        }
        let _ = crate::catalog::drop_rule(app, rule).await;
        return Err(ApiError::bad_request(format!(
            "rule '{rule}' is not grouped by the cluster's routing fields ({}): its decisions are made at the owner of one partition, which sees only that partition's events, so they could not be exact; group it by the routing fields",
            call.cluster.cfg().route.join(", ")
        )));
    }
    Ok(())
}
