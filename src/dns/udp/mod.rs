//! UDP workers: one OS thread per socket, `SO_REUSEPORT` sockets sharing a
//! port so the kernel spreads queries over them, and on Linux
//! `recvmmsg`/`sendmmsg` so one system call moves a batch of packets
//! (gdnsd's design). A worker loads the snapshot once per batch.
//!
//! On Linux a worker goes round one loop: receive a batch (`mmsg.rs`, the
//! only code here that deals in the kernel's structures and pointers),
//! answer each datagram into the batch's buffers (`batch.rs`), group
//! equal-sized answers to one peer for UDP GSO (`gso.rs` decides whether
//! to), send the batch. Elsewhere it receives and sends one datagram at a
//! time.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

#[cfg(target_os = "linux")]
use self::{
    batch::{BATCH, Batch, Reply},
    gso::GsoPolicy,
};
use super::answer::{Ctx, respond};
use super::rrl;
use crate::metrics::{Metrics, Transport};
use crate::state::Shared;

#[cfg(target_os = "linux")]
mod batch;
mod gso;
#[cfg(target_os = "linux")]
mod mmsg;

/// Largest query accepted; bigger datagrams are dropped.
const RECV_BUF: usize = 4096;
/// Response buffer: the UDP payload limit.
const SEND_BUF: usize = super::wire::MAX_UDP_PAYLOAD as usize;
/// How often a blocked worker wakes up to check for shutdown.
const WAKE: Duration = Duration::from_millis(200);

/// Settings of the UDP workers.
#[derive(Debug, Clone, Copy)]
pub struct UdpSettings {
    /// Worker threads (sockets) per address; 0 = one per CPU.
    pub workers: usize,
    /// Pause before the next receive after a partial batch (adaptive
    /// coalescing); zero disables it.
    pub batch_wait: Duration,
}

/// Binds one socket per worker to `addr` (port 0 picks one port for all)
/// and starts a thread on each. Returns the bound address.
pub fn spawn(
    addr: SocketAddr,
    settings: UdpSettings,
    shared: Shared,
    metrics: &Metrics,
    rrl: Arc<OnceLock<rrl::Table>>,
    stop: Arc<AtomicBool>,
) -> io::Result<(SocketAddr, Vec<JoinHandle<()>>)> {
    let workers = if settings.workers == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    } else {
        settings.workers
    };
    // A plain bind first, without SO_REUSEPORT, so that a port held by
    // another process is an error instead of a silent share.
    let probe = bind_udp(addr, false)?;
    let bound = probe.local_addr()?;
    drop(probe);
    let mut sockets = Vec::new();
    for _ in 0..workers.max(1) {
        sockets.push(bind_reuseport(bound)?);
    }
    let mut handles = Vec::new();
    for (i, sock) in sockets.into_iter().enumerate() {
        let shared = shared.clone();
        let stop = stop.clone();
        let rrl = rrl.clone();
        let stats = metrics.worker(false);
        let h = std::thread::Builder::new()
            .name(format!("dns-udp-{i}"))
            .spawn(move || {
                let mut w = Worker {
                    ctx: Ctx::new(stats),
                    rrl,
                    slips: 0,
                };
                if let Err(e) = serve(&sock, &shared, &stop, &mut w, settings.batch_wait) {
                    tracing::error!("udp worker on {bound} stopped: {e}");
                }
            })?;
        handles.push(h);
    }
    Ok((bound, handles))
}

fn bind_reuseport(addr: SocketAddr) -> io::Result<UdpSocket> {
    bind_udp(addr, true)
}

/// A UDP socket; an IPv6 address means IPv6 only, so that `0.0.0.0` and
/// `[::]` can both be listed. Worker sockets (`reuse_port`) also get a
/// large receive buffer, a wake-up timeout and, when bound to a wildcard
/// address, destination-address reporting (answers must leave from the
/// address the query was sent to).
fn bind_udp(addr: SocketAddr, reuse_port: bool) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    if reuse_port {
        #[cfg(unix)]
        s.set_reuse_port(true)?;
        // Best effort: a bigger receive buffer absorbs bursts.
        if let Err(e) = s.set_recv_buffer_size(1 << 21) {
            tracing::debug!("SO_RCVBUF: {e}");
        }
        s.set_read_timeout(Some(WAKE))?;
        #[cfg(target_os = "linux")]
        if addr.ip().is_unspecified() {
            mmsg::enable_pktinfo(&s, addr.is_ipv6())?;
        }
    }
    s.bind(&addr.into())?;
    Ok(s.into())
}

/// Runs the answer path so that a bug in it costs one reply, not a worker:
/// a panic is logged and the packet dropped.
pub(super) fn guarded(f: impl FnOnce() -> Option<usize>) -> Option<usize> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(_) => {
            tracing::error!("BUG: the answer path panicked; the packet was dropped");
            None
        }
    }
}

pub(super) fn peer_ip(a: SocketAddr) -> IpAddr {
    a.ip().to_canonical()
}

/// What a UDP worker (socket or XDP) keeps between packets.
pub(super) struct Worker {
    pub(super) ctx: Ctx,
    /// Rate-limit accounts shared by all workers; made when a
    /// configuration first turns `[server.rrl]` on.
    pub(super) rrl: Arc<OnceLock<rrl::Table>>,
    /// Limited responses so far (every `slip`th is sent truncated).
    pub(super) slips: u32,
}

/// The rate limits in force for one batch, with the clock read once.
pub(super) struct RateLimits<'a> {
    limits: &'a rrl::Limits,
    table: &'a rrl::Table,
    now: u32,
}

impl Worker {
    /// The snapshot's rate limits; None when it has no `[server.rrl]`.
    pub(super) fn rate_limits<'a>(
        rrl: &'a OnceLock<rrl::Table>,
        snap: &'a crate::state::Snapshot,
    ) -> Option<RateLimits<'a>> {
        let limits = snap.data.config.server.rrl.as_ref()?;
        let table = rrl.get_or_init(rrl::Table::new);
        Some(RateLimits {
            limits,
            table,
            now: table.now(),
        })
    }

    /// Answers the datagrams of the last receive, with one snapshot for
    /// them all: each answer goes into `batch.answers` at its datagram's
    /// index, and those to send (not dropped, not rate-limited) are listed
    /// in `batch.replies`.
    #[cfg(target_os = "linux")]
    fn answer(&mut self, shared: &Shared, batch: &mut Batch) {
        let snap = shared.load();
        let limits = Worker::rate_limits(&self.rrl, &snap);
        let ctx = &mut self.ctx;
        batch.replies.clear();
        let datagrams = batch
            .received
            .iter()
            .zip(batch.queries.iter())
            .zip(batch.answers.iter_mut());
        for (slot, ((d, query), out)) in datagrams.enumerate() {
            if d.truncated {
                ctx.stats.dropped();
                continue;
            }
            let Some(peer) = d.peer else {
                ctx.stats.dropped();
                continue;
            };
            let query = &query[..d.len];
            let answered =
                guarded(|| respond(&snap, query, peer_ip(peer), Transport::Udp, out, ctx));
            if let Some(len) = answered
                && let Some(len) = Worker::limit(
                    &ctx.stats,
                    &mut self.slips,
                    limits.as_ref(),
                    peer_ip(peer),
                    out,
                    len,
                    ctx.wildcard,
                )
            {
                batch.replies.push(Reply {
                    slot,
                    peer,
                    local: d.local,
                    len,
                });
            }
        }
    }

    /// Applies the rate limits to the response `out[..len]` for `peer`:
    /// its length to send (perhaps cut to a slip), or None to drop it.
    pub(super) fn limit(
        stats: &crate::metrics::WorkerStats,
        slips: &mut u32,
        limits: Option<&RateLimits<'_>>,
        peer: IpAddr,
        out: &mut [u8],
        len: usize,
        wildcard: Option<u64>,
    ) -> Option<usize> {
        let Some(rl) = limits else {
            return Some(len);
        };
        if rl
            .table
            .check(rl.limits, rl.now, peer, &out[..len], wildcard)
            == rrl::Verdict::Send
        {
            return Some(len);
        }
        *slips = slips.wrapping_add(1);
        if rl.limits.slip != 0 && slips.is_multiple_of(rl.limits.slip) {
            stats.rate_limited(true);
            Some(rrl::slip(out, len))
        } else {
            stats.rate_limited(false);
            None
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn serve(
    sock: &UdpSocket,
    shared: &Shared,
    stop: &AtomicBool,
    w: &mut Worker,
    _batch_wait: Duration,
) -> io::Result<()> {
    let mut inb = vec![0u8; RECV_BUF];
    let mut out = vec![0u8; SEND_BUF];
    while !stop.load(Ordering::Relaxed) {
        let (n, peer) = match sock.recv_from(&mut inb) {
            Ok(x) => x,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::debug!("recv: {e}");
                continue;
            }
        };
        let snap = shared.load();
        let limits = Worker::rate_limits(&w.rrl, &snap);
        let ctx = &mut w.ctx;
        if let Some(len) = guarded(|| {
            respond(
                &snap,
                &inb[..n],
                peer_ip(peer),
                Transport::Udp,
                &mut out,
                ctx,
            )
        }) && let Some(len) = Worker::limit(
            &ctx.stats,
            &mut w.slips,
            limits.as_ref(),
            peer_ip(peer),
            &mut out,
            len,
            ctx.wildcard,
        ) && let Err(e) = sock.send_to(&out[..len], peer)
        {
            tracing::debug!("send to {peer}: {e}");
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn serve(
    sock: &UdpSocket,
    shared: &Shared,
    stop: &AtomicBool,
    w: &mut Worker,
    batch_wait: Duration,
) -> io::Result<()> {
    use std::os::fd::AsRawFd;

    let fd = sock.as_raw_fd();
    let mut batch = Batch::new();
    let mut kernel = mmsg::Kernel::new();
    // UDP GSO (Linux 4.18+): answers to the same client of the same size
    // leave as one send.
    let mut gso = GsoPolicy::new(std::time::Instant::now());
    if !batch_wait.is_zero() {
        mmsg::set_timer_slack();
    }
    while !stop.load(Ordering::Relaxed) {
        let n = match kernel.recv(fd, &mut batch) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                tracing::debug!("recvmmsg: {e}");
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
        };
        w.answer(shared, &mut batch);
        batch.group(gso.enabled());
        kernel.send(fd, &batch, &mut gso);
        // Adaptive coalescing: more than one datagram was waiting, so
        // queries are arriving faster than one per wake-up; pausing a
        // moment lets the next batch fill, and each system call and
        // wake-up (ours and the clients') then carries several answers.
        // A full batch means a backlog: no pause. A lone query (light
        // load) is never delayed.
        if (2..BATCH).contains(&n) && !batch_wait.is_zero() {
            std::thread::sleep(batch_wait);
        }
    }
    Ok(())
}
