//! UDP through AF_XDP (`[server.xdp]`), a transport beside the sockets
//! that calls the same [`respond`]: an XDP program on each configured
//! interface hands the frames of listened UDP addresses to one AF_XDP
//! socket per rx queue, and a worker thread per queue answers them in
//! place and sends them back out.
//!
//! The kernel's UDP and TCP sockets stay bound as without XDP: whatever
//! the program passes (TCP, IP options, fragments, other addresses, a
//! queue without a socket) and every interface or queue where a step of
//! the set-up fails is served by them. Each failure is logged once, with
//! the interface, the queue and why.

mod bpf;
mod frame;
mod ring;

use std::io;
use std::net::SocketAddr;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use self::ring::{Step, Xsk};
use super::XdpSettings;
use super::answer::{Ctx, respond};
use super::rrl;
use super::udp::{Worker, guarded};
use crate::metrics::{Metrics, Transport};
use crate::state::Shared;

/// Largest reply: the UDP payload limit.
const SEND_BUF: usize = super::wire::MAX_UDP_PAYLOAD as usize;
/// Frames handled per wake-up.
const BATCH: usize = 64;
/// How often an idle worker wakes up to check for shutdown.
const WAKE: Duration = Duration::from_millis(200);
/// How often a worker reads its socket's loss counters.
const STATS_EVERY: Duration = Duration::from_secs(1);

// The largest reply (VLAN + IPv6 + UDP + payload) fits in a frame after
// the kernel's 256-byte headroom.
const _: () = assert!(256 + 18 + 40 + 8 + SEND_BUF <= ring::FRAME as usize);

/// What keeps an interface's program attached: the last worker of the
/// interface to stop drops it, and the program detaches.
struct Attached {
    _link: OwnedFd,
    _prog: bpf::Prog,
    xsks: bpf::Map,
    _listen: bpf::Map,
}

/// Sets up XDP on each interface for the UDP addresses `bound` and
/// starts a worker per queue; logs and skips what fails.
pub fn start(
    settings: &XdpSettings,
    bound: &[SocketAddr],
    shared: &Shared,
    metrics: &Metrics,
    rrl: &Arc<OnceLock<rrl::Table>>,
    stop: &Arc<AtomicBool>,
) -> Vec<JoinHandle<()>> {
    raise_memlock();
    let mut threads = Vec::new();
    for iface in &settings.interfaces {
        match start_interface(iface, settings, bound, shared, metrics, rrl, stop) {
            Ok(t) => threads.extend(t),
            Err(why) => {
                tracing::warn!("xdp: {iface}: not used ({why}); UDP goes through sockets")
            }
        }
    }
    threads
}

/// Lets the UMEMs be locked up to the hard limit (root is exempt anyway).
fn raise_memlock() {
    // SAFETY: plain get/setrlimit on a local struct.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut l) == 0 && l.rlim_cur < l.rlim_max {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_MEMLOCK, &l);
        }
    }
}

fn errno(e: &io::Error) -> String {
    let name = match e.raw_os_error() {
        Some(libc::EPERM) => "EPERM",
        Some(libc::EOPNOTSUPP) => "EOPNOTSUPP",
        Some(libc::EBUSY) => "EBUSY",
        Some(libc::EEXIST) => "EEXIST",
        Some(libc::EINVAL) => "EINVAL",
        Some(libc::ERANGE) => "ERANGE",
        Some(libc::ENOBUFS) => "ENOBUFS",
        Some(libc::ENOMEM) => "ENOMEM",
        Some(libc::ENODEV) => "ENODEV",
        Some(libc::EAFNOSUPPORT) => "EAFNOSUPPORT",
        Some(libc::ENOSYS) => "ENOSYS",
        _ => return e.to_string(),
    };
    format!("{name}: {e}")
}

/// How many rx queues `iface` has (sysfs), at least 1.
fn rx_queues(iface: &str) -> u32 {
    std::fs::read_dir(format!("/sys/class/net/{iface}/queues"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
                .count() as u32
        })
        .unwrap_or(1)
        .max(1)
}

/// Whether `iface` has devices stacked on it (VLANs, bonds: sysfs `upper_*`).
fn has_uppers(iface: &str) -> bool {
    std::fs::read_dir(format!("/sys/class/net/{iface}"))
        .map(|d| {
            d.filter_map(Result::ok)
                .any(|e| e.file_name().to_string_lossy().starts_with("upper_"))
        })
        .unwrap_or(false)
}

fn mtu(iface: &str) -> u32 {
    std::fs::read_to_string(format!("/sys/class/net/{iface}/mtu"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1500)
}

fn start_interface(
    iface: &str,
    settings: &XdpSettings,
    bound: &[SocketAddr],
    shared: &Shared,
    metrics: &Metrics,
    rrl: &Arc<OnceLock<rrl::Table>>,
    stop: &Arc<AtomicBool>,
) -> Result<Vec<JoinHandle<()>>, String> {
    let name = std::ffi::CString::new(iface).map_err(|_| "a NUL in the name".to_string())?;
    // SAFETY: a valid C string.
    let ifindex = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if ifindex == 0 {
        return Err("no such interface".into());
    }
    let perm = |what: &str, e: &io::Error| {
        let hint = if e.raw_os_error() == Some(libc::EPERM) {
            "; needs CAP_BPF and CAP_NET_ADMIN, or root"
        } else {
            ""
        };
        format!("{what}: {}{hint}", errno(e))
    };
    let xsks = bpf::Map::xsks().map_err(|e| perm("cannot create BPF maps", &e))?;
    let listen = bpf::Map::listen().map_err(|e| perm("cannot create BPF maps", &e))?;
    for a in bound {
        listen
            .update(&bpf::listen_key(*a), &1u32.to_ne_bytes())
            .map_err(|e| format!("listen map: {}", errno(&e)))?;
    }
    let insns = bpf::program(xsks.raw(), listen.raw(), bpf::XDP_PASS);
    let flags = if mtu(iface) > 3000 {
        bpf::BPF_F_XDP_HAS_FRAGS
    } else {
        0
    };
    let prog = bpf::Prog::load(&insns, flags).map_err(|e| {
        format!(
            "the kernel refused the XDP program: {}; verifier: {}",
            errno(&e.err),
            e.log
        )
    })?;
    let (mode, mode_flags) = if settings.native {
        ("native", bpf::XDP_FLAGS_DRV_MODE)
    } else {
        ("skb", bpf::XDP_FLAGS_SKB_MODE)
    };
    let link = prog.attach(ifindex, mode_flags).map_err(|e| {
        let why = match e.raw_os_error() {
            Some(libc::EOPNOTSUPP) if settings.native => {
                "native XDP not supported by the driver; mode = \"skb\" uses generic XDP"
            }
            Some(libc::EBUSY) | Some(libc::EEXIST) => "another XDP program is attached",
            Some(libc::ERANGE) => "MTU too large for XDP on this driver",
            Some(libc::EINVAL) => "kernel too old for bpf_link XDP (Linux 5.9+)",
            Some(libc::EPERM) => "needs CAP_BPF and CAP_NET_ADMIN, or root",
            _ => "attach failed",
        };
        format!("{why}: {}", errno(&e))
    })?;
    let attached = Arc::new(Attached {
        _link: link,
        _prog: prog,
        xsks,
        _listen: listen,
    });
    let have = rx_queues(iface);
    let queues = if settings.queues == 0 {
        have
    } else {
        settings.queues
    }
    .min(bpf::MAX_QUEUES);
    let mut threads = Vec::new();
    let mut served = Vec::new();
    let mut zero_copy = false;
    for q in 0..queues {
        let xsk = match Xsk::new(ifindex, q) {
            Ok(x) => x,
            Err((step, e)) => {
                let hint = match (step, e.raw_os_error()) {
                    (Step::Socket, Some(libc::EPERM)) => "; needs CAP_NET_RAW",
                    (Step::Socket, Some(libc::EAFNOSUPPORT)) => {
                        "; kernel without CONFIG_XDP_SOCKETS"
                    }
                    (Step::Umem, Some(libc::ENOBUFS | libc::ENOMEM | libc::EPERM)) => {
                        "; raise LimitMEMLOCK or grant CAP_IPC_LOCK"
                    }
                    (Step::Bind, Some(libc::EINVAL)) if q >= have => {
                        "; the interface has fewer rx queues"
                    }
                    _ => "",
                };
                let what = match step {
                    Step::Socket => "AF_XDP socket",
                    Step::Umem => "UMEM registration",
                    Step::Rings => "rings",
                    Step::Bind => "bind",
                };
                tracing::warn!(
                    "xdp: {iface} queue {q}: not used ({what}: {}{hint}); that queue goes through sockets",
                    errno(&e)
                );
                continue;
            }
        };
        if let Err(e) = attached
            .xsks
            .update(&q.to_ne_bytes(), &(xsk.raw() as u32).to_ne_bytes())
        {
            tracing::warn!(
                "xdp: {iface} queue {q}: not used (XSKMAP: {}); that queue goes through sockets",
                errno(&e)
            );
            continue;
        }
        zero_copy |= xsk.zero_copy();
        let shared = shared.clone();
        let stop = stop.clone();
        let attached = attached.clone();
        let mut w = Worker {
            ctx: Ctx::new(metrics.worker(false)),
            rrl: rrl.clone(),
            slips: 0,
        };
        let spawned = std::thread::Builder::new()
            .name(format!("xdp{q}-{iface}")) // the queue first: names are cut at 15 bytes
            .spawn(move || {
                let mut xsk = xsk;
                serve(&mut xsk, &shared, &stop, &mut w);
                // the program first (traffic back to the sockets), then the socket
                drop(attached);
                drop(xsk);
            });
        match spawned {
            Ok(h) => {
                threads.push(h);
                served.push(q);
            }
            Err(e) => tracing::warn!("xdp: {iface} queue {q}: not used (thread: {e})"),
        }
    }
    if served.is_empty() {
        return Err("no queue could be bound".into());
    }
    let addrs: Vec<String> = bound.iter().map(ToString::to_string).collect();
    let qs = if served.len() == 1 {
        served[0].to_string()
    } else {
        served
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    if has_uppers(iface) {
        tracing::warn!(
            "xdp: {iface} has VLAN or other devices on it: if the NIC strips VLAN tags (rxvlan), \
             answers to tagged queries leave untagged; run `ethtool -K {iface} rxvlan off`"
        );
    }
    tracing::info!(
        "xdp: serving UDP {} on {iface} queues {qs} ({mode} mode, {})",
        addrs.join(" "),
        if zero_copy { "zero-copy" } else { "copy" }
    );
    Ok(threads)
}

/// The worker loop of one queue: wait for frames, answer a batch with one
/// snapshot, send, take back sent frames, refill.
fn serve(xsk: &mut Xsk, shared: &Shared, stop: &AtomicBool, w: &mut Worker) {
    let mut rx: Vec<(u64, u32)> = Vec::with_capacity(BATCH);
    let mut tx: Vec<(u64, u32)> = Vec::with_capacity(BATCH);
    let mut scratch = [0u8; ring::FRAME as usize];
    let mut sampled = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        if sampled.elapsed() >= STATS_EVERY {
            sampled = Instant::now();
            if let Some(lost) = xsk.lost() {
                w.ctx.stats.set_xdp_lost(lost);
            }
        }
        xsk.reap();
        xsk.refill();
        let n = xsk.receive(&mut rx, BATCH);
        if n == 0 {
            if xsk.queued() > 0 {
                // send, then look again: queries arrive while it sends
                xsk.flush();
                continue;
            }
            xsk.wait(WAKE);
            continue;
        }
        let snap = shared.load();
        let limits = Worker::rate_limits(&w.rrl, &snap);
        let ctx = &mut w.ctx;
        ctx.stats.xdp(false, u64::from(n));
        tx.clear();
        for &(addr, len) in &rx {
            let f = xsk.frame(addr);
            let reply = answer(f, len as usize, &mut scratch, |query, src, out| {
                let len = guarded(|| respond(&snap, query, src, Transport::Udp, out, ctx))?;
                Worker::limit(
                    &ctx.stats,
                    &mut w.slips,
                    limits.as_ref(),
                    src,
                    out,
                    len,
                    ctx.wildcard,
                )
            });
            match reply {
                Outcome::Reply(l) => tx.push((addr, l as u32)),
                // counted by respond() or the rate limits
                Outcome::Declined => xsk.recycle(addr),
                Outcome::NotAQuery => {
                    ctx.stats.dropped();
                    xsk.recycle(addr);
                }
            }
        }
        xsk.release(n);
        let sent = xsk.transmit(&tx);
        ctx.stats.xdp(true, sent as u64);
        if xsk.queued() as usize >= BATCH {
            xsk.flush();
        }
    }
}

/// What became of a frame.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    /// A reply of this many bytes is in the frame.
    Reply(usize),
    /// `respond` or the rate limits dropped it (and counted it).
    Declined,
    /// Not a UDP query frame to answer (or no room for a reply): dropped.
    NotAQuery,
}

/// Answers the query frame `f[..len]` in place. `respond` gets the DNS
/// message (copied to `scratch`, since it cannot alias its output), the
/// client's address and the output buffer; it returns the reply's length.
fn answer(
    f: &mut [u8],
    len: usize,
    scratch: &mut [u8],
    respond: impl FnOnce(&[u8], std::net::IpAddr, &mut [u8]) -> Option<usize>,
) -> Outcome {
    let Some(q) = f.get(..len).and_then(frame::parse) else {
        return Outcome::NotAQuery;
    };
    let n = q.payload.len();
    let start = q.l4 + 8;
    if n > scratch.len() || f.len() < start + SEND_BUF {
        return Outcome::NotAQuery;
    }
    scratch[..n].copy_from_slice(&f[q.payload.clone()]);
    match respond(&scratch[..n], q.src, &mut f[start..start + SEND_BUF]) {
        Some(m) => Outcome::Reply(frame::write_reply(f, &q, m)),
        None => Outcome::Declined,
    }
}

#[cfg(test)]
mod tests;
