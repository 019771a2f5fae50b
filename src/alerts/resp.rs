//! A small client of the Redis protocol (RESP 2) over a tokio TCP stream: enough for the
//! Redis sink (AUTH, SELECT, EVAL) and the tests (HGETALL, GET). Commands are arrays of
//! bulk strings; replies are parsed into [`Reply`]. `tests/alerts.rs` includes this file
//! to read what the sink wrote, hence the helpers the server itself does not call.
#![allow(dead_code)]

use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// One reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+OK`.
    Simple(String),
    /// `-ERR …`.
    Error(String),
    /// `:1`.
    Int(i64),
    /// `$3\r\nfoo`, or null.
    Bulk(Option<Vec<u8>>),
    /// `*2 …`, or null.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text (bulk and simple strings, integers).
    pub fn text(&self) -> Option<String> {
        match self {
            Reply::Simple(s) => Some(s.clone()),
            Reply::Int(i) => Some(i.to_string()),
            Reply::Bulk(Some(b)) => Some(String::from_utf8_lossy(b).into_owned()),
            _ => None,
        }
    }
}

/// A connection.
pub struct Resp {
    stream: BufReader<TcpStream>,
    timeout: Duration,
}

/// A failed connect, write, read, or an unreadable reply.
pub type RespResult<T> = Result<T, String>;

impl Resp {
    /// Connect to `redis://[:password@]host:port[/db]` (the db, if any, is selected).
    pub async fn connect(url: &str, timeout: Duration) -> RespResult<Resp> {
        let rest = url
            .strip_prefix("redis://")
            .ok_or_else(|| format!("not a redis:// URL: {}", redact(url)))?;
        let (auth, rest) = match rest.rsplit_once('@') {
            Some((a, r)) => (Some(a), r),
            None => (None, rest),
        };
        let (addr, db) = match rest.split_once('/') {
            Some((a, d)) if !d.is_empty() => (a, Some(d)),
            Some((a, _)) => (a, None),
            None => (rest, None),
        };
        let stream = tokio::time::timeout(timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| format!("connecting to {addr}: timed out"))?
            .map_err(|e| format!("connecting to {addr}: {e}"))?;
        stream.set_nodelay(true).ok();
        let mut c = Resp {
            stream: BufReader::new(stream),
            timeout,
        };
        if let Some(auth) = auth {
            let reply = match auth.split_once(':') {
                Some(("", pw)) => c.cmd(&[b"AUTH", pw.as_bytes()]).await?,
                Some((user, pw)) => c.cmd(&[b"AUTH", user.as_bytes(), pw.as_bytes()]).await?,
                None => c.cmd(&[b"AUTH", auth.as_bytes()]).await?,
            };
            ok(reply)?;
        }
        if let Some(db) = db {
            ok(c.cmd(&[b"SELECT", db.as_bytes()]).await?)?;
        }
        Ok(c)
    }

    /// Send one command and read its reply (an error reply is a reply, not an `Err`).
    pub async fn cmd(&mut self, args: &[&[u8]]) -> RespResult<Reply> {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(format!("*{}\r\n", args.len()).as_bytes());
        for a in args {
            buf.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            buf.extend_from_slice(a);
            buf.extend_from_slice(b"\r\n");
        }
        let t = self.timeout;
        tokio::time::timeout(t, async {
            self.stream
                .get_mut()
                .write_all(&buf)
                .await
                .map_err(|e| format!("writing to Redis: {e}"))?;
            read_reply(&mut self.stream).await
        })
        .await
        .map_err(|_| "Redis did not answer in time".to_string())?
    }

    /// `HGETALL key` as field/value pairs.
    pub async fn hgetall(&mut self, key: &str) -> RespResult<Vec<(String, String)>> {
        match self.cmd(&[b"HGETALL", key.as_bytes()]).await? {
            Reply::Array(Some(items)) => Ok(items
                .chunks(2)
                .map(|p| {
                    let f = p[0].text().unwrap_or_default();
                    let v = p.get(1).and_then(Reply::text).unwrap_or_default();
                    (f, v)
                })
                .collect()),
            Reply::Error(e) => Err(e),
            other => Err(format!("HGETALL answered {other:?}")),
        }
    }
}

/// `Ok` for anything but an error reply.
pub fn ok(r: Reply) -> RespResult<Reply> {
    match r {
        Reply::Error(e) => Err(e),
        r => Ok(r),
    }
}

/// `url` with its password replaced by `***`.
pub fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

async fn read_line(r: &mut BufReader<TcpStream>) -> RespResult<String> {
    let mut line = String::new();
    let n = r
        .read_line(&mut line)
        .await
        .map_err(|e| format!("reading from Redis: {e}"))?;
    if n == 0 {
        return Err("Redis closed the connection".into());
    }
    Ok(line.trim_end_matches(['\r', '\n']).to_string())
}

fn read_reply(
    r: &mut BufReader<TcpStream>,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = RespResult<Reply>> + Send + '_>> {
    Box::pin(async move {
        let line = read_line(r).await?;
        let (kind, rest) = line.split_at(line.len().min(1));
        let num = || {
            rest.parse::<i64>()
                .map_err(|_| format!("unreadable reply from Redis: {line:?}"))
        };
        Ok(match kind {
            "+" => Reply::Simple(rest.to_string()),
            "-" => Reply::Error(rest.to_string()),
            ":" => Reply::Int(num()?),
            "$" => {
                let n = num()?;
                if n < 0 {
                    Reply::Bulk(None)
                } else {
                    let mut b = vec![0u8; n as usize + 2];
                    r.read_exact(&mut b)
                        .await
                        .map_err(|e| format!("reading from Redis: {e}"))?;
                    b.truncate(n as usize);
                    Reply::Bulk(Some(b))
                }
            }
            "*" => {
                let n = num()?;
                if n < 0 {
                    Reply::Array(None)
                } else {
                    let mut items = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        items.push(read_reply(r).await?);
                    }
                    Reply::Array(Some(items))
                }
            }
            _ => return Err(format!("unreadable reply from Redis: {line:?}")),
        })
    })
}
