//! The ScyllaDB schema (created on connect) and the prepared statements of the hot paths.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;

use super::sc;
use crate::Result;

/// The statements prepared once per connection.
pub(super) struct Prepared {
    pub(super) log: PreparedStatement,
    pub(super) log_bucket: PreparedStatement,
    pub(super) by_type: PreparedStatement,
    pub(super) by_day: PreparedStatement,
    pub(super) by_session: PreparedStatement,
    pub(super) days: PreparedStatement,
    pub(super) meta_put: PreparedStatement,
    pub(super) meta_get: PreparedStatement,
    pub(super) read_log: PreparedStatement,
    pub(super) read_type: PreparedStatement,
    pub(super) read_day: PreparedStatement,
    pub(super) read_session: PreparedStatement,
    pub(super) read_days: PreparedStatement,
}

/// Create the keyspace and tables if missing.
pub(super) async fn create_schema(session: &Session, ks: &str, rf: u32) -> Result<()> {
    let stmts = [
        format!("CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = {{'class': 'SimpleStrategy', 'replication_factor': {rf}}}"),
        format!("CREATE TABLE IF NOT EXISTS {ks}.log (bucket bigint, seq bigint, rec blob, PRIMARY KEY ((bucket), seq))"),
        format!("CREATE TABLE IF NOT EXISTS {ks}.log_buckets (k int, bucket bigint, PRIMARY KEY ((k), bucket))"),
        format!("CREATE TABLE IF NOT EXISTS {ks}.events_by_type (account text, project text, type text, day bigint, ts bigint, seq bigint, rec blob, PRIMARY KEY ((account, project, type, day), ts, seq))"),
        format!("CREATE TABLE IF NOT EXISTS {ks}.events_by_day (account text, project text, day bigint, ts bigint, seq bigint, rec blob, PRIMARY KEY ((account, project, day), ts, seq))"),
        format!("CREATE TABLE IF NOT EXISTS {ks}.events_by_session (account text, project text, session text, ts bigint, seq bigint, type text, rec blob, PRIMARY KEY ((account, project, session), ts, seq))"),
        format!("CREATE TABLE IF NOT EXISTS {ks}.event_days (account text, project text, type text, day bigint, PRIMARY KEY ((account, project), type, day))"),
        format!("CREATE TABLE IF NOT EXISTS {ks}.meta (key text PRIMARY KEY, value blob)"),
        format!("CREATE TABLE IF NOT EXISTS {ks}.catalog (kind text, name text, text text, PRIMARY KEY ((kind), name))"),
        format!("CREATE TABLE IF NOT EXISTS {ks}.checkpoints (k int, seq bigint, data blob, PRIMARY KEY ((k), seq)) WITH CLUSTERING ORDER BY (seq DESC)"),
        format!("CREATE TABLE IF NOT EXISTS {ks}.decisions (k int, at bigint, seq bigint, json blob, PRIMARY KEY ((k), at)) WITH CLUSTERING ORDER BY (at DESC) AND default_time_to_live = 2592000"),
        super::state::create_table(ks),
    ];
    for s in stmts {
        session.query_unpaged(s, ()).await.map_err(sc)?;
    }
    session.await_schema_agreement().await.map_err(sc)?;
    Ok(())
}

/// Prepare the statements of [`Prepared`].
pub(super) async fn prepare(session: &Session, ks: &str) -> Result<Prepared> {
    let p = |s: &str| {
        let s = s.replace("{ks}", ks);
        async move { session.prepare(s).await.map_err(sc) }
    };
    Ok(Prepared {
        log: p("INSERT INTO {ks}.log (bucket, seq, rec) VALUES (?, ?, ?)").await?,
        log_bucket: p("INSERT INTO {ks}.log_buckets (k, bucket) VALUES (0, ?)").await?,
        by_type: p("INSERT INTO {ks}.events_by_type (account, project, type, day, ts, seq, rec) VALUES (?, ?, ?, ?, ?, ?, ?)").await?,
        by_day: p("INSERT INTO {ks}.events_by_day (account, project, day, ts, seq, rec) VALUES (?, ?, ?, ?, ?, ?)").await?,
        by_session: p("INSERT INTO {ks}.events_by_session (account, project, session, ts, seq, type, rec) VALUES (?, ?, ?, ?, ?, ?, ?)").await?,
        days: p("INSERT INTO {ks}.event_days (account, project, type, day) VALUES (?, ?, ?, ?)").await?,
        meta_put: p("INSERT INTO {ks}.meta (key, value) VALUES (?, ?)").await?,
        meta_get: p("SELECT value FROM {ks}.meta WHERE key = ?").await?,
        read_log: p("SELECT seq, rec FROM {ks}.log WHERE bucket = ? AND seq > ?").await?,
        read_type: p("SELECT ts, seq, rec FROM {ks}.events_by_type WHERE account = ? AND project = ? AND type = ? AND day = ? AND ts >= ? AND ts < ?").await?,
        read_day: p("SELECT ts, seq, rec FROM {ks}.events_by_day WHERE account = ? AND project = ? AND day = ? AND ts >= ? AND ts < ?").await?,
        read_session: p("SELECT ts, seq, type, rec FROM {ks}.events_by_session WHERE account = ? AND project = ? AND session = ? AND ts >= ? AND ts < ?").await?,
        read_days: p("SELECT day FROM {ks}.event_days WHERE account = ? AND project = ? AND type = ? AND day >= ? AND day <= ?").await?,
    })
}
