//! The versioned schema (created and migrated on connect) and the prepared statements.
//!
//! `schema_version ((k)) → version` holds the version of the keyspace's tables. On connect
//! the keyspace is created if missing (with the configured replication), then every
//! migration above the stored version runs in order, and the version is written after each.
//! Each migration's statements are idempotent (`IF NOT EXISTS`, ...), so one cut short by a
//! crash is simply run again. A keyspace of a newer version than [`CURRENT`] is refused.

use scylla::client::session::Session;
use scylla::statement::prepared::PreparedStatement;
use tracing::info;

use super::{backend_err, state, Replication};
use crate::{Result, StorageError};

/// One step of the schema.
struct Migration {
    /// The version the keyspace has after this step.
    version: i32,
    /// What the step does, for the log.
    what: &'static str,
    /// CQL statements, `{ks}` standing for the keyspace.
    stmts: &'static [&'static str],
}

/// Every migration, in order. Append new ones; never edit a released one.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    what: "create the log, index, meta, catalogue, decision and state tables",
    stmts: &[
        "CREATE TABLE IF NOT EXISTS {ks}.log (bucket bigint, seq bigint, rec blob, PRIMARY KEY ((bucket), seq))",
        "CREATE TABLE IF NOT EXISTS {ks}.log_buckets (k int, bucket bigint, PRIMARY KEY ((k), bucket))",
        "CREATE TABLE IF NOT EXISTS {ks}.events_by_type (account text, project text, type text, day bigint, ts bigint, seq bigint, rec blob, PRIMARY KEY ((account, project, type, day), ts, seq))",
        "CREATE TABLE IF NOT EXISTS {ks}.events_by_day (account text, project text, day bigint, ts bigint, seq bigint, rec blob, PRIMARY KEY ((account, project, day), ts, seq))",
        "CREATE TABLE IF NOT EXISTS {ks}.events_by_session (account text, project text, session text, ts bigint, seq bigint, type text, rec blob, PRIMARY KEY ((account, project, session), ts, seq))",
        "CREATE TABLE IF NOT EXISTS {ks}.event_days (account text, project text, type text, day bigint, PRIMARY KEY ((account, project), type, day))",
        // One partition: an append's positions and its commit marker are one mutation.
        "CREATE TABLE IF NOT EXISTS {ks}.meta (k int, key text, value blob, committed bigint static, intent_lo bigint static, intent_hi bigint static, PRIMARY KEY ((k), key)) WITH gc_grace_seconds = 10800",
        "CREATE TABLE IF NOT EXISTS {ks}.catalog (kind text, name text, text text, PRIMARY KEY ((kind), name))",
        "CREATE TABLE IF NOT EXISTS {ks}.decisions (k int, at bigint, seq bigint, json blob, PRIMARY KEY ((k), at)) WITH CLUSTERING ORDER BY (at DESC) AND default_time_to_live = 2592000",
        state::CREATE_TABLE,
    ],
}];

/// The schema version this build writes and reads.
pub(super) const CURRENT: i32 = MIGRATIONS[MIGRATIONS.len() - 1].version;

async fn run(session: &Session, ks: &str, stmt: &str) -> Result<()> {
    // A schema change waits for the nodes to agree on it, which takes seconds on a busy
    // cluster: it gets far longer than an ordinary request.
    let mut stmt = scylla::statement::unprepared::Statement::new(stmt.replace("{ks}", ks));
    stmt.set_request_timeout(Some(std::time::Duration::from_secs(60)));
    session
        .query_unpaged(stmt, ())
        .await
        .map(|_| ())
        .map_err(backend_err)
}

/// The stored schema version; 0 when none is stored yet.
pub(super) async fn stored_version(session: &Session, ks: &str) -> Result<i32> {
    let res = session
        .query_unpaged(
            format!("SELECT version FROM {ks}.schema_version WHERE k = 0"),
            (),
        )
        .await
        .map_err(backend_err)?;
    let rows = res.into_rows_result().map_err(backend_err)?;
    let version = rows
        .maybe_first_row::<(Option<i32>,)>()
        .map_err(backend_err)?
        .and_then(|(v,)| v);
    Ok(version.unwrap_or(0))
}

/// Write the stored schema version (tests use it to fake a newer keyspace).
pub(super) async fn set_version(session: &Session, ks: &str, version: i32) -> Result<()> {
    session
        .query_unpaged(
            format!("INSERT INTO {ks}.schema_version (k, version) VALUES (0, ?)"),
            (version,),
        )
        .await
        .map(|_| ())
        .map_err(backend_err)
}

/// Create the keyspace if missing and bring its tables to [`CURRENT`].
pub(super) async fn migrate(session: &Session, ks: &str, replication: &Replication) -> Result<()> {
    run(
        session,
        ks,
        &format!(
            "CREATE KEYSPACE IF NOT EXISTS {{ks}} WITH replication = {}",
            replication.cql()
        ),
    )
    .await?;
    run(
        session,
        ks,
        "CREATE TABLE IF NOT EXISTS {ks}.schema_version (k int PRIMARY KEY, version int)",
    )
    .await?;
    let stored = stored_version(session, ks).await?;
    if stored > CURRENT {
        return Err(StorageError::Config(format!(
            "cassandra keyspace {ks} has schema version {stored}, newer than version {CURRENT} \
             that this build of weir knows: run a newer weir on it"
        )));
    }
    for m in MIGRATIONS.iter().filter(|m| m.version > stored) {
        info!(
            keyspace = ks,
            version = m.version,
            what = m.what,
            "Migrating the Cassandra schema."
        );
        for stmt in m.stmts {
            run(session, ks, stmt).await?;
        }
        set_version(session, ks, m.version).await?;
    }
    session
        .await_schema_agreement()
        .await
        .map_err(backend_err)?;
    Ok(())
}

macro_rules! prepared {
    ($($(#[$doc:meta])* $name:ident: $cql:literal,)*) => {
        /// The statements prepared once per connection (`{ks}` is the keyspace).
        pub(super) struct Prepared {
            $($(#[$doc])* pub(super) $name: PreparedStatement,)*
        }

        /// Prepare every statement of [`Prepared`].
        pub(super) async fn prepare(session: &Session, ks: &str) -> Result<Prepared> {
            Ok(Prepared {
                $($name: session
                    .prepare($cql.replace("{ks}", ks))
                    .await
                    .map_err(backend_err)?,)*
            })
        }
    };
}

prepared! {
    log_put: "INSERT INTO {ks}.log (bucket, seq, rec) VALUES (?, ?, ?)",
    log_read: "SELECT seq, rec FROM {ks}.log WHERE bucket = ? AND seq > ? AND seq <= ?",
    log_delete: "DELETE FROM {ks}.log WHERE bucket = ? AND seq = ?",
    bucket_put: "INSERT INTO {ks}.log_buckets (k, bucket) VALUES (0, ?)",
    buckets_read: "SELECT bucket FROM {ks}.log_buckets WHERE k = 0 AND bucket >= ? AND bucket <= ?",
    by_type_put: "INSERT INTO {ks}.events_by_type (account, project, type, day, ts, seq, rec) VALUES (?, ?, ?, ?, ?, ?, ?)",
    by_type_delete: "DELETE FROM {ks}.events_by_type WHERE account = ? AND project = ? AND type = ? AND day = ? AND ts = ? AND seq = ?",
    by_type_read: "SELECT ts, seq, rec FROM {ks}.events_by_type WHERE account = ? AND project = ? AND type = ? AND day = ? AND ts >= ? AND ts < ?",
    by_type_newest: "SELECT ts, seq FROM {ks}.events_by_type WHERE account = ? AND project = ? AND type = ? AND day = ? ORDER BY ts DESC, seq DESC",
    by_day_put: "INSERT INTO {ks}.events_by_day (account, project, day, ts, seq, rec) VALUES (?, ?, ?, ?, ?, ?)",
    by_day_delete: "DELETE FROM {ks}.events_by_day WHERE account = ? AND project = ? AND day = ? AND ts = ? AND seq = ?",
    by_day_read: "SELECT ts, seq, rec FROM {ks}.events_by_day WHERE account = ? AND project = ? AND day = ? AND ts >= ? AND ts < ?",
    by_day_newest: "SELECT ts, seq FROM {ks}.events_by_day WHERE account = ? AND project = ? AND day = ? ORDER BY ts DESC, seq DESC",
    by_session_put: "INSERT INTO {ks}.events_by_session (account, project, session, ts, seq, type, rec) VALUES (?, ?, ?, ?, ?, ?, ?)",
    by_session_delete: "DELETE FROM {ks}.events_by_session WHERE account = ? AND project = ? AND session = ? AND ts = ? AND seq = ?",
    by_session_read: "SELECT ts, seq, type, rec FROM {ks}.events_by_session WHERE account = ? AND project = ? AND session = ? AND ts >= ? AND ts < ?",
    day_put: "INSERT INTO {ks}.event_days (account, project, type, day) VALUES (?, ?, ?, ?)",
    days_read: "SELECT day FROM {ks}.event_days WHERE account = ? AND project = ? AND type = ? AND day >= ? AND day <= ?",
    days_newest: "SELECT day FROM {ks}.event_days WHERE account = ? AND project = ? AND type = ? ORDER BY type DESC, day DESC",
    head_read: "SELECT committed, intent_lo, intent_hi FROM {ks}.meta WHERE k = 0 LIMIT 1",
    intent_put: "UPDATE {ks}.meta SET intent_lo = ?, intent_hi = ? WHERE k = 0",
    intent_clear: "UPDATE {ks}.meta SET intent_lo = null, intent_hi = null WHERE k = 0",
    commit: "UPDATE {ks}.meta SET committed = ?, intent_lo = null, intent_hi = null WHERE k = 0",
    meta_put: "INSERT INTO {ks}.meta (k, key, value) VALUES (0, ?, ?)",
    meta_get: "SELECT value FROM {ks}.meta WHERE k = 0 AND key = ?",
    meta_cas_insert: "INSERT INTO {ks}.meta (k, key, value) VALUES (0, ?, ?) IF NOT EXISTS",
    meta_cas_update: "UPDATE {ks}.meta SET value = ? WHERE k = 0 AND key = ? IF value = ?",
    meta_from: "SELECT key, value FROM {ks}.meta WHERE k = 0 AND key >= ?",
    meta_delete: "DELETE FROM {ks}.meta WHERE k = 0 AND key = ?",
    catalog_put: "INSERT INTO {ks}.catalog (kind, name, text) VALUES (?, ?, ?)",
    catalog_get: "SELECT name FROM {ks}.catalog WHERE kind = ? AND name = ?",
    catalog_delete: "DELETE FROM {ks}.catalog WHERE kind = ? AND name = ?",
    catalog_list: "SELECT name, text FROM {ks}.catalog WHERE kind = ?",
    decision_put: "INSERT INTO {ks}.decisions (k, at, seq, json) VALUES (0, ?, ?, ?)",
    decisions_recent: "SELECT seq, json FROM {ks}.decisions WHERE k = 0 LIMIT ?",
    state_delete_key: "DELETE FROM {ks}.state USING TIMESTAMP ? WHERE scope = ? AND part = ? AND sub = ? AND key = ?",
    state_delete_through: "DELETE FROM {ks}.state USING TIMESTAMP ? WHERE scope = ? AND part = ? AND sub = ? AND key = ? AND bucket > ? AND bucket <= ?",
    state_put: "INSERT INTO {ks}.state (scope, part, sub, key, bucket, value) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?",
    state_read: "SELECT key, bucket, value FROM {ks}.state WHERE scope = ? AND part = ? AND sub = ?",
    state_drop: "DELETE FROM {ks}.state USING TIMESTAMP ? WHERE scope = ? AND part = ? AND sub = ?",
}
