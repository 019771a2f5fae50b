//! One hop to the owner: decisions go to the node serving the event's partition, reads go
//! to every node and are merged.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::HeaderValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use weir_core::{Event, Tenant};
use weir_engine::{ReadRequest, Row};

use super::{CellState, Cluster};
use crate::api::error::ApiError;

/// The header of a call forwarded to a partition's owner: the partition it is for. The
/// owner answers it from that partition's cell only, or 503 if it does not serve it.
pub const PARTITION_HEADER: &str = "x-weir-partition";
/// The header of a read fanned out to a peer: answer from your own cells only.
pub const LOCAL_HEADER: &str = "x-weir-local";

/// Which decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decide {
    /// `POST /api/check`: from the state as it is.
    Check,
    /// `POST /api/add_and_check`: on the state including the event, added if allowed.
    AddAndCheck,
}

impl Decide {
    fn path(self) -> &'static str {
        match self {
            Decide::Check => "/api/check",
            Decide::AddAndCheck => "/api/add_and_check",
        }
    }
}

/// An event to decide, and whether it gave its own time.
pub type Timed = (Event, bool);

/// An event id in the cluster: the cell's id and its partition, `id * partitions + p`.
pub fn cluster_id(seq: u64, p: i32, partitions: i32) -> u64 {
    seq * partitions as u64 + p as u64
}

/// Decide `events` of `tenant` where their partitions live: this node's cells directly, the
/// others' in one call per owner. Answers in the order of `events`. Each event says whether
/// it gave its own time; one that did not is stamped with the time it is decided at, at its
/// owner — not when this node read it, which may be seconds earlier if its partition is
/// moving — so that it is counted in the window it is decided in, as on one node.
pub async fn decide(
    cluster: &Arc<Cluster>,
    tenant: &Tenant,
    auth: Option<HeaderValue>,
    how: Decide,
    events: Vec<Timed>,
) -> Result<Vec<Value>, ApiError> {
    let mut by_part: BTreeMap<i32, Vec<(usize, Timed)>> = BTreeMap::new();
    let n = events.len();
    for (i, (e, timed)) in events.into_iter().enumerate() {
        let (p, _) = cluster.partition_of(&e).map_err(|reason| {
            ApiError::bad_request(if n == 1 {
                reason
            } else {
                format!("event {i}: {reason}")
            })
        })?;
        by_part.entry(p).or_default().push((i, (e, timed)));
    }
    let mut out: Vec<Value> = vec![Value::Null; n];
    let calls = by_part.into_iter().map(|(p, group)| {
        let auth = auth.clone();
        async move {
            let (idx, evs): (Vec<usize>, Vec<Timed>) = group.into_iter().unzip();
            let answers = decide_at(cluster, tenant, auth, how, p, evs).await?;
            Ok::<_, ApiError>(idx.into_iter().zip(answers).collect::<Vec<_>>())
        }
    });
    for r in futures_util::future::join_all(calls).await {
        for (i, v) in r? {
            out[i] = v;
        }
    }
    Ok(out)
}

/// Decide events of one partition at its owner, waiting out a move (a 503 means nothing was
/// applied, so asking again is safe) for up to one and a half leases.
async fn decide_at(
    cluster: &Arc<Cluster>,
    tenant: &Tenant,
    auth: Option<HeaderValue>,
    how: Decide,
    p: i32,
    events: Vec<Timed>,
) -> Result<Vec<Value>, ApiError> {
    let deadline = Instant::now() + cluster.cfg().lease * 3 / 2;
    loop {
        let attempt = match cluster.owner(p) {
            Some(m) if m.node == cluster.cfg().node => {
                let now = cluster.now_ms();
                let stamped = events
                    .iter()
                    .map(|(e, timed)| {
                        let mut e = e.clone();
                        if !timed {
                            e.ts = now;
                        }
                        e
                    })
                    .collect();
                decide_local(cluster, tenant, how, p, stamped).await
            }
            Some(m) => call_owner(cluster, &m.url, auth.clone(), how, p, &events).await,
            None => Err(ApiError::unavailable(format!(
                "no live node serves partition {p} right now"
            ))),
        };
        match attempt {
            Err(e) if e.is_unavailable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// Decide events of partition `p` on this node's cell (the owner's side of a forwarded
/// call, and a call whose owner is this node).
pub async fn decide_local(
    cluster: &Cluster,
    tenant: &Tenant,
    how: Decide,
    p: i32,
    events: Vec<Event>,
) -> Result<Vec<Value>, ApiError> {
    let cell = cluster
        .cell(p)
        .filter(|c| c.state() == CellState::Serving)
        .ok_or_else(|| {
            ApiError::unavailable(format!(
                "node {} does not serve partition {p} (it is moving, or this node cannot renew its lease)",
                cluster.cfg().node
            ))
        })?;
    let app = cell.hub.ensure(tenant).await.map_err(ApiError::internal)?;
    let n = cluster.partitions();
    let mut out = Vec::with_capacity(events.len());
    for e in events {
        let answer = match how {
            Decide::Check => crate::api::decision::decision_answer(&app.check(&e), None),
            Decide::AddAndCheck => {
                let c = app
                    .add_and_check(e)
                    .map_err(crate::api::events::storage_error)?;
                crate::api::events::wait_durable(&app, c.receipt, &[c.event_id]).await?;
                crate::api::decision::decision_answer(
                    &c.decision,
                    Some(cluster_id(c.event_id, p, n)),
                )
            }
        };
        out.push(serde_json::to_value(answer).map_err(ApiError::internal)?);
    }
    Ok(out)
}

/// Forward events of partition `p` to its owner at `url`.
async fn call_owner(
    cluster: &Cluster,
    url: &str,
    auth: Option<HeaderValue>,
    how: Decide,
    p: i32,
    events: &[Timed],
) -> Result<Vec<Value>, ApiError> {
    // An event that gave no time goes without one: its owner stamps it as it decides it.
    let body: Vec<Value> = events
        .iter()
        .map(|(e, timed)| {
            let mut v: Value =
                serde_json::from_slice(&super::route::wire(e)).expect("wire JSON parses");
            if !timed {
                v.as_object_mut()
                    .expect("wire JSON is an object")
                    .remove("ts");
            }
            v
        })
        .collect();
    let mut req = cluster
        .http()
        .post(format!("{url}{}", how.path()))
        .header(PARTITION_HEADER, p.to_string())
        .json(&body);
    if let Some(a) = auth {
        req = req.header(axum::http::header::AUTHORIZATION, a);
    }
    let resp = match req.send().await {
        Ok(r) => r,
        // Not sent: nothing was applied, so it may be asked again.
        Err(e) if e.is_connect() => {
            return Err(ApiError::unavailable(format!(
                "partition {p}'s owner {url} is unreachable: {e}"
            )))
        }
        Err(e) => {
            return Err(ApiError::gateway_timeout(format!(
                "partition {p}'s owner {url} did not answer ({e}); whether it decided is unknown"
            )))
        }
    };
    let status = resp.status();
    let v: Value = resp.json().await.map_err(|e| {
        ApiError::gateway_timeout(format!(
            "partition {p}'s owner {url} answered unreadably ({e})"
        ))
    })?;
    if status.is_success() {
        match v {
            Value::Array(a) if a.len() == events.len() => Ok(a),
            other => Err(ApiError::internal(format!(
                "partition {p}'s owner answered {other} for {} events",
                events.len()
            ))),
        }
    } else {
        let msg = v["error"].as_str().unwrap_or("error").to_string();
        Err(ApiError::from_status(status.as_u16(), msg))
    }
}

/// A node's part of a read: the partitions its cells answered for, and their rows.
#[derive(Debug, Serialize, Deserialize)]
pub struct PartialRead {
    /// The partitions answered for.
    pub partitions: Vec<i32>,
    /// Their rows, merged.
    pub rows: Vec<Row>,
    /// The latest `complete_from` among them.
    pub complete_from: Option<i64>,
    /// The latest watermark (event time) of the query among them.
    #[serde(default)]
    pub watermark: Option<i64>,
}

/// A node's part of the rule-decision series (see [`crate::decisions`]): the partitions
/// its cells answered for, and their entries.
#[derive(Debug, Serialize, Deserialize)]
pub struct PartialDecisions {
    /// The partitions answered for.
    pub partitions: Vec<i32>,
    /// Every (rule, key) of their cells.
    pub entries: Vec<crate::decisions::Entry>,
}

/// A node's part of a fan-out: which partitions it answered for.
trait Part {
    fn partitions(&self) -> &[i32];
}

impl Part for PartialRead {
    fn partitions(&self) -> &[i32] {
        &self.partitions
    }
}

impl Part for PartialDecisions {
    fn partitions(&self) -> &[i32] {
        &self.partitions
    }
}

/// Read query `name` of `tenant` from this node's serving cells.
pub fn read_local(
    cluster: &Cluster,
    tenant: &Tenant,
    name: &str,
    req: &ReadRequest,
    ops: &Result<BTreeMap<String, super::merge::Op>, String>,
) -> Result<PartialRead, ApiError> {
    let mut partitions = Vec::new();
    let mut parts = Vec::new();
    let mut complete_from: Option<i64> = None;
    let mut watermark: Option<i64> = None;
    for cell in cluster.cells() {
        if cell.state() != CellState::Serving {
            continue;
        }
        partitions.push(cell.partition);
        // A tenant the cell has not seen has no rows there.
        let Some(app) = cell.hub.app(tenant) else {
            continue;
        };
        let answer = app
            .engine()
            .answer(name, req)
            .map_err(|e| ApiError::not_found(e.to_string()))?;
        complete_from = complete_from.max(answer.complete_from);
        watermark = watermark.max(app.engine().query(name).and_then(|q| q.watermark()));
        parts.push(answer.rows);
    }
    let rows = super::merge::merge(parts, ops).map_err(ApiError::conflict)?;
    Ok(PartialRead {
        partitions,
        rows,
        complete_from,
        watermark,
    })
}

/// Read query `name` of `tenant` from every partition: this node's cells and every live
/// peer's, merged. Refused (503) unless every partition answered exactly once.
pub async fn read_all(
    cluster: &Arc<Cluster>,
    tenant: &Tenant,
    auth: Option<HeaderValue>,
    name: &str,
    params: &HashMap<String, String>,
    req: &ReadRequest,
    ops: &Result<BTreeMap<String, super::merge::Op>, String>,
) -> Result<PartialRead, ApiError> {
    let path = format!("/api/queries/{name}/result");
    let parts = gather(cluster, auth, &path, params, || {
        read_local(cluster, tenant, name, req, ops)
    })
    .await?;
    let complete_from = parts.iter().filter_map(|p| p.complete_from).max();
    let watermark = parts.iter().filter_map(|p| p.watermark).max();
    let mut partitions: Vec<i32> = parts.iter().flat_map(|p| p.partitions.clone()).collect();
    partitions.sort_unstable();
    let rows = super::merge::merge(parts.into_iter().map(|p| p.rows).collect(), ops)
        .map_err(ApiError::conflict)?;
    Ok(PartialRead {
        partitions,
        rows,
        complete_from,
        watermark,
    })
}

/// The rule-decision series of `tenant` in this node's serving cells.
pub fn decisions_local(cluster: &Cluster, tenant: &Tenant) -> PartialDecisions {
    let mut out = PartialDecisions {
        partitions: Vec::new(),
        entries: Vec::new(),
    };
    for cell in cluster.cells() {
        if cell.state() != CellState::Serving {
            continue;
        }
        out.partitions.push(cell.partition);
        if let Some(app) = cell.hub.app(tenant) {
            out.entries.extend(app.decision_series().entries());
        }
    }
    out
}

/// The rule-decision series of `tenant` over every partition, one (rule, key) merged where
/// several cells had it. Refused (503) unless every partition answered exactly once.
pub async fn decisions_all(
    cluster: &Arc<Cluster>,
    tenant: &Tenant,
    auth: Option<HeaderValue>,
) -> Result<crate::decisions::DecisionSeries, ApiError> {
    let parts = gather(
        cluster,
        auth,
        "/api/cluster/decisions",
        &HashMap::new(),
        || Ok(decisions_local(cluster, tenant)),
    )
    .await?;
    Ok(crate::decisions::DecisionSeries::from_entries(
        parts.into_iter().flat_map(|p| p.entries),
    ))
}

/// This node's part (`local`) and every live peer's (`GET path?params` with
/// [`LOCAL_HEADER`]), retried for up to one and a half leases while partitions move:
/// refused (503) unless every partition answered exactly once.
async fn gather<T: Part + serde::de::DeserializeOwned>(
    cluster: &Arc<Cluster>,
    auth: Option<HeaderValue>,
    path: &str,
    params: &HashMap<String, String>,
    local: impl Fn() -> Result<T, ApiError>,
) -> Result<Vec<T>, ApiError> {
    let deadline = Instant::now() + cluster.cfg().lease * 3 / 2;
    loop {
        match gather_once(cluster, auth.clone(), path, params, &local).await {
            Err(e) if e.is_unavailable() && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

async fn gather_once<T: Part + serde::de::DeserializeOwned>(
    cluster: &Arc<Cluster>,
    auth: Option<HeaderValue>,
    path: &str,
    params: &HashMap<String, String>,
    local: &impl Fn() -> Result<T, ApiError>,
) -> Result<Vec<T>, ApiError> {
    let me = cluster.cfg().node.clone();
    let mut parts = vec![local()?];
    let peers: Vec<_> = cluster
        .members()
        .into_iter()
        .filter(|m| m.node != me && cluster.alive(m) && !m.partitions.is_empty())
        .collect();
    let calls = peers.iter().map(|m| {
        let mut r = cluster
            .http()
            .get(format!("{}{path}", m.url))
            .header(LOCAL_HEADER, "1")
            .query(params);
        if let Some(a) = &auth {
            r = r.header(axum::http::header::AUTHORIZATION, a.clone());
        }
        async move {
            let resp = r.send().await.map_err(|e| {
                ApiError::unavailable(format!("node {} did not answer the read: {e}", m.node))
            })?;
            let status = resp.status();
            let v: Value = resp.json().await.map_err(|e| {
                ApiError::unavailable(format!("node {} answered unreadably: {e}", m.node))
            })?;
            if !status.is_success() {
                let msg = v["error"].as_str().unwrap_or("error").to_string();
                return Err(ApiError::from_status(status.as_u16(), msg));
            }
            serde_json::from_value::<T>(v).map_err(ApiError::internal)
        }
    });
    for r in futures_util::future::join_all(calls).await {
        parts.push(r?);
    }
    let mut seen = BTreeSet::new();
    for part in &parts {
        for p in part.partitions() {
            if !seen.insert(*p) {
                return Err(ApiError::unavailable(format!(
                    "partition {p} answered twice (it is moving); retry"
                )));
            }
        }
    }
    let missing: Vec<i32> = (0..cluster.partitions())
        .filter(|p| !seen.contains(p))
        .collect();
    if !missing.is_empty() {
        return Err(ApiError::unavailable(format!(
            "partitions {missing:?} are not served right now (moving between nodes); retry"
        )));
    }
    Ok(parts)
}
