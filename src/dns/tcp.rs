//! DNS over TCP (RFC 7766): length-prefixed messages, pipelined queries
//! answered in order, and a connection pool that one client cannot hold:
//!
//! - at most `per_source` connections per client address (IPv6: per /64);
//! - when the pool is full, the connection idle the longest is closed to
//!   make room; only when none is idle is the new one refused;
//! - the idle timeout shrinks as the pool fills (to a tenth when full);
//! - a connection ends after `max_lifetime` or `max_queries` whatever it
//!   does, so one query per idle period cannot keep it for ever;
//! - EDNS TCP keepalive (RFC 7828): a query that asks learns the idle
//!   timeout in force.
//!
//! Open and refused connections are counted in metrics.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::answer::{Ctx, respond};
use crate::metrics::{ReasonLabels, Transport, WorkerStats, ZoneResultLabels};
use crate::state::Shared;

/// Settings of the TCP listeners.
#[derive(Clone)]
pub struct TcpSettings {
    /// Close a connection idle this long (when the pool is not filling).
    pub idle_timeout: Duration,
    /// Connections allowed at once, over all listeners.
    pub max_connections: usize,
    /// Connections allowed at once from one client address (IPv6: /64).
    pub per_source: usize,
    /// A connection ends after this long.
    pub max_lifetime: Duration,
    /// A connection ends after this many queries.
    pub max_queries: u32,
    /// The pool, shared by every listener.
    pub pool: Arc<Pool>,
    /// Open connections (`signpost_dns_tcp_connections`).
    pub open: Gauge,
    /// Refused or closed early, by reason.
    pub refused: Family<ReasonLabels, Counter>,
    /// Zone transfers served, by zone and result.
    pub transfers: Family<ZoneResultLabels, Counter>,
}

/// The open connections.
#[derive(Debug, Default)]
pub struct Pool {
    table: Mutex<Table>,
}

#[derive(Debug, Default)]
struct Table {
    next: u64,
    conns: HashMap<u64, Conn>,
}

#[derive(Debug)]
struct Conn {
    source: IpAddr,
    /// Since when it waits for a query (`None`: busy).
    idle_since: Option<Instant>,
    close: Arc<Notify>,
}

/// Why a connection was refused or closed early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    Full,
    PerSource,
}

/// A connection's place in the pool; leaving on drop.
struct Place {
    id: u64,
    close: Arc<Notify>,
    pool: Arc<Pool>,
}

impl Drop for Place {
    fn drop(&mut self) {
        if let Ok(mut t) = self.pool.table.lock() {
            t.conns.remove(&self.id);
        }
    }
}

/// The key per-source limits count by: the address, or its /64.
fn source_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(a) => IpAddr::V6((u128::from(a) & !((1u128 << 64) - 1)).into()),
        v4 => v4,
    }
}

impl Pool {
    /// A place for a connection from `peer`, closing the connection idle
    /// the longest if the pool is full.
    fn admit(self: &Arc<Self>, peer: IpAddr, s: &TcpSettings) -> Result<Place, Refusal> {
        let source = source_key(peer);
        let mut t = self.table.lock().map_err(|_| Refusal::Full)?;
        if t.conns.values().filter(|c| c.source == source).count() >= s.per_source {
            return Err(Refusal::PerSource);
        }
        if t.conns.len() >= s.max_connections {
            let oldest = t
                .conns
                .iter()
                .filter_map(|(id, c)| c.idle_since.map(|since| (since, *id)))
                .min();
            let Some((_, id)) = oldest else {
                return Err(Refusal::Full);
            };
            if let Some(c) = t.conns.remove(&id) {
                c.close.notify_one();
            }
        }
        let id = t.next;
        t.next += 1;
        let close = Arc::new(Notify::new());
        t.conns.insert(
            id,
            Conn {
                source,
                idle_since: Some(Instant::now()),
                close: close.clone(),
            },
        );
        Ok(Place {
            id,
            close,
            pool: self.clone(),
        })
    }

    /// Marks a connection idle (waiting for a query) or busy.
    fn set_idle(&self, id: u64, idle: bool) {
        if let Ok(mut t) = self.table.lock()
            && let Some(c) = t.conns.get_mut(&id)
        {
            c.idle_since = idle.then(Instant::now);
        }
    }

    /// How full the pool is, 0 to 1.
    fn fill(&self, max: usize) -> f64 {
        self.table
            .lock()
            .map_or(1.0, |t| t.conns.len() as f64 / max.max(1) as f64)
    }
}

/// The idle timeout in force: the configured one while the pool is at
/// most half full, shrinking linearly to a tenth of it when full (and
/// never below 200 ms).
pub fn idle_timeout(base: Duration, fill: f64) -> Duration {
    let f = if fill <= 0.5 {
        1.0
    } else {
        1.0 - 0.9 * ((fill - 0.5) / 0.5).min(1.0)
    };
    base.mul_f64(f).max(Duration::from_millis(200).min(base))
}

/// Accepts connections until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    stats: Arc<WorkerStats>,
    settings: TcpSettings,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // e.g. EMFILE: back off instead of spinning
                tracing::warn!("dns tcp accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let place = match settings.pool.admit(peer.ip(), &settings) {
            Ok(p) => p,
            Err(why) => {
                let reason = match why {
                    Refusal::Full => "full",
                    Refusal::PerSource => "per_source",
                };
                settings
                    .refused
                    .get_or_create(&ReasonLabels {
                        reason: reason.into(),
                    })
                    .inc();
                tracing::debug!("dns tcp: refusing {peer} ({reason})");
                drop(stream);
                continue;
            }
        };
        let shared = shared.clone();
        let stats = stats.clone();
        let settings = settings.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            settings.open.inc();
            if let Err(e) = connection(stream, peer, shared, stats, &settings, &place, stop).await {
                tracing::debug!("dns tcp {peer}: {e}");
            }
            settings.open.dec();
            drop(place);
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Shared,
    stats: Arc<WorkerStats>,
    s: &TcpSettings,
    place: &Place,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY: {e}");
    }
    let mut ctx = Ctx::new(stats);
    let mut inb = vec![0u8; 65535];
    let mut out = vec![0u8; 65537];
    let src = peer.ip().to_canonical();
    let ends = Instant::now() + s.max_lifetime;
    let mut queries = 0u32;
    loop {
        let idle = idle_timeout(s.idle_timeout, s.pool.fill(s.max_connections));
        let wait = idle.min(ends.saturating_duration_since(Instant::now()));
        s.pool.set_idle(place.id, true);
        let mut len = [0u8; 2];
        tokio::select! {
            r = tokio::time::timeout(wait, stream.read_exact(&mut len)) => match r {
                Ok(Ok(_)) => {}
                // idle timeout, lifetime, or the client closed: all end it
                Ok(Err(_)) | Err(_) => return Ok(()),
            },
            // the pool needed the place
            _ = place.close.notified() => {
                s.refused
                    .get_or_create(&ReasonLabels { reason: "idle_closed".into() })
                    .inc();
                return Ok(());
            }
            _ = stop.changed() => return Ok(()),
        }
        s.pool.set_idle(place.id, false);
        let n = u16::from_be_bytes(len) as usize;
        match tokio::time::timeout(idle, stream.read_exact(&mut inb[..n])).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        }
        if crate::xfr::is_transfer(&inb[..n]) {
            transfer(&mut stream, &shared, &inb[..n], peer, s, idle).await?;
            queries += 1;
            if queries >= s.max_queries || Instant::now() >= ends {
                return Ok(());
            }
            continue;
        }
        // RFC 7828: the timeout in force, in units of 100 ms
        ctx.keepalive = Some((idle.as_millis() / 100).min(u128::from(u16::MAX)) as u16);
        let answer = {
            let snap = shared.load();
            super::udp::guarded(|| {
                respond(
                    &snap,
                    &inb[..n],
                    src,
                    Transport::Tcp,
                    &mut out[2..],
                    &mut ctx,
                )
            })
        };
        let Some(rlen) = answer else {
            // nothing to say to a non-query; a stream cannot skip it silently
            return Ok(());
        };
        out[..2].copy_from_slice(&(rlen as u16).to_be_bytes());
        match tokio::time::timeout(idle, stream.write_all(&out[..rlen + 2])).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        }
        queries += 1;
        if queries >= s.max_queries || Instant::now() >= ends {
            return Ok(());
        }
    }
}

/// An AXFR or IXFR request: its answer, message by message (SPEC §10).
async fn transfer(
    stream: &mut TcpStream,
    shared: &Shared,
    request: &[u8],
    peer: SocketAddr,
    s: &TcpSettings,
    idle: Duration,
) -> std::io::Result<()> {
    let (messages, outcome, zone) = {
        let snap = shared.load();
        crate::xfr::outbound::serve(&snap, request, peer.ip().to_canonical())
    };
    s.transfers
        .get_or_create(&ZoneResultLabels {
            zone: zone.clone(),
            result: outcome.as_str().into(),
        })
        .inc();
    let bytes: usize = messages.iter().map(Vec::len).sum();
    match outcome {
        crate::xfr::outbound::Outcome::Full | crate::xfr::outbound::Outcome::UpToDate => {
            tracing::info!(
                "transfer of {zone} to {peer}: {} ({} messages, {bytes} bytes)",
                outcome.as_str(),
                messages.len()
            );
        }
        // a zone not served here is what a scan looks like: not a line each
        _ if zone == "other" => {
            tracing::debug!(
                "transfer of a zone not served to {peer}: {}",
                outcome.as_str()
            )
        }
        _ => tracing::info!("transfer of {zone} to {peer}: {}", outcome.as_str()),
    }
    for m in messages {
        let mut framed = Vec::with_capacity(m.len() + 2);
        framed.extend_from_slice(&(m.len() as u16).to_be_bytes());
        framed.extend_from_slice(&m);
        match tokio::time::timeout(idle, stream.write_all(&framed)).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the transfer client stopped reading",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(max: usize, per_source: usize) -> TcpSettings {
        TcpSettings {
            idle_timeout: Duration::from_secs(10),
            max_connections: max,
            per_source,
            max_lifetime: Duration::from_secs(60),
            max_queries: 100,
            pool: Arc::new(Pool::default()),
            open: Gauge::default(),
            refused: Family::default(),
            transfers: Family::default(),
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn per_source_and_full_pool() {
        let s = settings(3, 2);
        let a1 = s.pool.admit(ip("192.0.2.1"), &s).unwrap();
        let a2 = s.pool.admit(ip("192.0.2.1"), &s).unwrap();
        assert_eq!(
            s.pool.admit(ip("192.0.2.1"), &s).err(),
            Some(Refusal::PerSource)
        );
        // IPv6 counts per /64
        let b1 = s.pool.admit(ip("2001:db8::1"), &s).unwrap();
        // full: the one idle the longest (a1; the others are busy) makes room
        s.pool.set_idle(a2.id, false);
        s.pool.set_idle(b1.id, false);
        let c = s.pool.admit(ip("2001:db8:1::1"), &s).unwrap();
        assert!(!s.pool.table.lock().unwrap().conns.contains_key(&a1.id));
        // full and nobody idle: refused
        for p in s.pool.table.lock().unwrap().conns.values_mut() {
            p.idle_since = None;
        }
        assert_eq!(
            s.pool.admit(ip("198.51.100.1"), &s).err(),
            Some(Refusal::Full)
        );
        drop(c);
        assert!(s.pool.admit(ip("198.51.100.1"), &s).is_ok());
    }

    #[test]
    fn the_idle_timeout_shrinks_as_the_pool_fills() {
        let base = Duration::from_secs(10);
        assert_eq!(idle_timeout(base, 0.0), base);
        assert_eq!(idle_timeout(base, 0.5), base);
        assert_eq!(idle_timeout(base, 0.75), Duration::from_millis(5500));
        assert_eq!(idle_timeout(base, 1.0), Duration::from_secs(1));
        assert_eq!(
            idle_timeout(Duration::from_secs(1), 1.0),
            Duration::from_millis(200)
        );
    }
}
