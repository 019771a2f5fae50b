//! The UDP input: one payload per datagram (see [`crate::decode`] for the forms), batched
//! for the sink. UDP has no acknowledgement, so the receive loop keeps reading while earlier
//! batches are made durable (a few batches in flight); bad datagrams are counted and logged at
//! most once a second, never fatal.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use socket2::{Domain, Protocol, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use weir_core::Event;

use crate::config::{duration, LogLimiter};
use crate::decode::decode_payload;
use crate::sink::{EventSink, SinkError, SourceBatch};
use crate::source::{stopped, Shutdown, Source};
use crate::stats::InputStats;
use crate::Result;

/// Settings of the UDP input (`--udp ADDR`, or `[udp]` in the config file).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UdpConfig {
    /// Address to listen on, e.g. `0.0.0.0:8125`.
    pub addr: SocketAddr,
    /// Kernel receive buffer asked for (`SO_RCVBUF`); the kernel may cap it
    /// (`net.core.rmem_max`). Default 8 MiB.
    #[serde(default = "default_recv_buffer")]
    pub recv_buffer_bytes: usize,
    /// Most events in one batch handed to the sink. Default 2000.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// Longest a partial batch waits for more datagrams. Default `5ms`.
    #[serde(default = "default_linger", deserialize_with = "duration")]
    pub linger: Duration,
    /// Batches being made durable at once before reading pauses. Default 4.
    #[serde(default = "default_in_flight")]
    pub max_in_flight: usize,
}

fn default_recv_buffer() -> usize {
    8 << 20
}
fn default_max_batch() -> usize {
    2000
}
fn default_linger() -> Duration {
    Duration::from_millis(5)
}
fn default_in_flight() -> usize {
    4
}

impl UdpConfig {
    /// Defaults for listening on `addr`.
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            recv_buffer_bytes: default_recv_buffer(),
            max_batch: default_max_batch(),
            linger: default_linger(),
            max_in_flight: default_in_flight(),
        }
    }
}

/// A bound UDP input, ready to [`run`](Source::run).
#[derive(Debug)]
pub struct UdpSource {
    socket: UdpSocket,
    config: UdpConfig,
    stats: Arc<InputStats>,
}

impl UdpSource {
    /// Bind the socket (with the large receive buffer). Call inside a tokio runtime.
    pub fn bind(config: UdpConfig) -> Result<Self> {
        let domain = Domain::for_address(config.addr);
        let socket = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
        if let Err(e) = socket.set_recv_buffer_size(config.recv_buffer_bytes) {
            tracing::warn!(error = %e, "Could not set the UDP receive buffer size.");
        }
        socket.set_nonblocking(true)?;
        socket.bind(&config.addr.into())?;
        let socket = UdpSocket::from_std(socket.into())?;
        tracing::info!(addr = %socket.local_addr()?, "UDP input listening.");
        Ok(Self {
            socket,
            config,
            stats: Arc::new(InputStats::new("udp")),
        })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        Ok(self.socket.local_addr()?)
    }

    /// The receive buffer the kernel granted, in bytes.
    pub fn recv_buffer_bytes(&self) -> Result<usize> {
        Ok(socket2::SockRef::from(&self.socket).recv_buffer_size()?)
    }
}

impl Source for UdpSource {
    fn stats(&self) -> Arc<InputStats> {
        self.stats.clone()
    }

    async fn run(self, sink: Arc<dyn EventSink>, mut shutdown: Shutdown) -> Result<()> {
        let UdpSource {
            socket,
            config,
            stats,
        } = self;
        let mut buf = vec![0u8; 65_536];
        let mut batch: Vec<Event> = Vec::new();
        let mut deadline: Option<Instant> = None;
        let permits = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
        let mut tasks = JoinSet::new();
        let mut limiter = LogLimiter::new(Duration::from_secs(1));
        loop {
            tokio::select! {
                biased;
                _ = stopped(&mut shutdown) => break,
                r = socket.recv_from(&mut buf) => {
                    let (n, from) = match r {
                        Ok(x) => x,
                        Err(e) => {
                            // e.g. ICMP errors surfacing on some platforms: never fatal.
                            tracing::debug!(error = %e, "UDP receive failed.");
                            continue;
                        }
                    };
                    stats.add_received(1);
                    let opts = sink.shape_options();
                    match decode_payload(&buf[..n], &opts) {
                        Ok(events) => batch.extend(events),
                        Err(reason) => {
                            stats.add_invalid(1);
                            if let Some(suppressed) = limiter.allow() {
                                tracing::warn!(%from, %reason, suppressed, "Bad UDP datagram dropped.");
                            }
                        }
                    }
                    if batch.len() >= config.max_batch {
                        deadline = None;
                        flush(&mut batch, &sink, &stats, &permits, &mut tasks).await;
                    } else if deadline.is_none() && !batch.is_empty() {
                        deadline = Some(Instant::now() + config.linger);
                    }
                }
                _ = sleep_until(deadline), if deadline.is_some() => {
                    deadline = None;
                    flush(&mut batch, &sink, &stats, &permits, &mut tasks).await;
                }
            }
        }
        flush(&mut batch, &sink, &stats, &permits, &mut tasks).await;
        while tasks.join_next().await.is_some() {}
        Ok(())
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d).await;
    }
}

/// Hand the batch to the sink in the background (at most `max_in_flight` at once).
async fn flush(
    batch: &mut Vec<Event>,
    sink: &Arc<dyn EventSink>,
    stats: &Arc<InputStats>,
    permits: &Arc<Semaphore>,
    tasks: &mut JoinSet<()>,
) {
    while tasks.try_join_next().is_some() {}
    if batch.is_empty() {
        return;
    }
    let events = std::mem::take(batch);
    let Ok(permit) = permits.clone().acquire_owned().await else {
        return;
    };
    let (sink, stats) = (sink.clone(), stats.clone());
    tasks.spawn(async move {
        let _permit = permit;
        submit_with_retry(&*sink, &stats, events).await;
    });
}

/// Submit, retrying transient failures a few times (UDP cannot ask the sender again).
async fn submit_with_retry(sink: &dyn EventSink, stats: &InputStats, events: Vec<Event>) {
    let n = events.len();
    let batch = SourceBatch {
        events,
        positions: Vec::new(),
        ..Default::default()
    };
    let mut wait = Duration::from_millis(50);
    for attempt in 1..=5 {
        match sink.submit(batch.clone()).await {
            Ok(ids) => {
                stats.add_accepted(ids.len() as u64);
                return;
            }
            Err(SinkError::Transient(e)) if attempt < 5 => {
                tracing::warn!(error = %e, attempt, "UDP batch not stored yet; retrying.");
                tokio::time::sleep(wait).await;
                wait *= 2;
            }
            Err(e) => {
                tracing::error!(error = %e, events = n, "UDP batch dropped: the sink refused it.");
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_from_toml_like_json_with_defaults() {
        let c: UdpConfig = serde_json::from_str(r#"{"addr":"127.0.0.1:9000"}"#).unwrap();
        assert_eq!(c, UdpConfig::new("127.0.0.1:9000".parse().unwrap()));
        let c: UdpConfig =
            serde_json::from_str(r#"{"addr":"127.0.0.1:9000","linger":"20ms","max_batch":10}"#)
                .unwrap();
        assert_eq!((c.linger, c.max_batch), (Duration::from_millis(20), 10));
        assert!(serde_json::from_str::<UdpConfig>(r#"{"addr":"127.0.0.1:1","bogus":1}"#).is_err());
    }
}
