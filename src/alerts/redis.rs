//! The Redis sink, in seed 000's layout: one hash per alert at
//! `project:dimension:key:primarykey` in the account's own DB, the primary key being Weir's
//! alert id, and the DB's `primary-key` counter moved to at least id + 1 by the same script
//! (atomic in Redis). Redelivering a change writes the same fields and leaves the counter
//! alone, so it is idempotent; a resolution sets `resolved_at` on the hash.

use super::config::RedisSinkConfig;
use super::record::OutboxEntry;
use super::resp::{ok, Reply, Resp};

/// Writes the hash and moves `primary-key`; KEYS[1] the hash, KEYS[2] `primary-key`,
/// ARGV[1] the id, then field/value pairs. Returns the counter after.
const SCRIPT: &str = r#"
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
local cur = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
local nxt = tonumber(ARGV[1]) + 1
if nxt > cur then
  redis.call('SET', KEYS[2], nxt)
  cur = nxt
end
return cur
"#;

/// The counter's key, in each account's DB.
pub const PRIMARY_KEY: &str = "primary-key";

/// The sink: one connection, made again after any failure.
pub struct RedisSink {
    cfg: RedisSinkConfig,
    conn: Option<Resp>,
}

impl RedisSink {
    /// Not connected yet.
    pub fn new(cfg: RedisSinkConfig) -> Self {
        Self { cfg, conn: None }
    }

    /// Write one change.
    pub async fn deliver(&mut self, entry: &OutboxEntry) -> Result<(), String> {
        let r = self.try_deliver(entry).await;
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    async fn try_deliver(&mut self, entry: &OutboxEntry) -> Result<(), String> {
        let conn = match &mut self.conn {
            Some(c) => c,
            None => self
                .conn
                .insert(Resp::connect(&self.cfg.url, self.cfg.timeout).await?),
        };
        let a = &entry.alert;
        let db = self.cfg.db_of(&a.account_id).to_string();
        ok(conn.cmd(&[b"SELECT", db.as_bytes()]).await?)?;
        let key = a.redis_key();
        let id = a.id.to_string();
        let fields = a.hash_fields();
        let mut args: Vec<&[u8]> = vec![
            b"EVAL",
            SCRIPT.as_bytes(),
            b"2",
            key.as_bytes(),
            PRIMARY_KEY.as_bytes(),
            id.as_bytes(),
        ];
        for (f, v) in &fields {
            args.push(f.as_bytes());
            args.push(v.as_bytes());
        }
        match conn.cmd(&args).await? {
            Reply::Int(_) => Ok(()),
            Reply::Error(e) => Err(format!("Redis: {e}")),
            other => Err(format!("Redis answered {other:?}")),
        }
    }
}
