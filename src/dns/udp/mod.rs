//! UDP workers: one OS thread per socket, `SO_REUSEPORT` sockets sharing a
//! port so the kernel spreads queries over them, and on Linux
//! `recvmmsg`/`sendmmsg` so one system call moves a batch of packets
//! (gdnsd's design). A worker loads the snapshot once per batch.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::answer::{Ctx, respond};
use super::rrl;
use crate::metrics::{Metrics, Transport};
use crate::state::Shared;

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

fn peer_ip(a: SocketAddr) -> IpAddr {
    a.ip().to_canonical()
}

/// What a UDP worker keeps between packets.
struct Worker {
    ctx: Ctx,
    /// Rate-limit accounts shared by all workers; made when a
    /// configuration first turns `[server.rrl]` on.
    rrl: Arc<OnceLock<rrl::Table>>,
    /// Limited responses so far (every `slip`th is sent truncated).
    slips: u32,
}

/// The rate limits in force for one batch, with the clock read once.
struct Batch<'a> {
    limits: &'a rrl::Limits,
    table: &'a rrl::Table,
    now: u32,
}

impl Worker {
    fn batch<'a>(
        rrl: &'a OnceLock<rrl::Table>,
        snap: &'a crate::state::Snapshot,
    ) -> Option<Batch<'a>> {
        let limits = snap.data.config.server.rrl.as_ref()?;
        let table = rrl.get_or_init(rrl::Table::new);
        Some(Batch {
            limits,
            table,
            now: table.now(),
        })
    }

    /// Applies the rate limits to the response `out[..len]` for `peer`:
    /// its length to send (perhaps cut to a slip), or None to drop it.
    fn limit(
        stats: &crate::metrics::WorkerStats,
        slips: &mut u32,
        batch: Option<&Batch<'_>>,
        peer: IpAddr,
        out: &mut [u8],
        len: usize,
    ) -> Option<usize> {
        let Some(b) = batch else {
            return Some(len);
        };
        if b.table.check(b.limits, b.now, peer, &out[..len]) == rrl::Verdict::Send {
            return Some(len);
        }
        *slips = slips.wrapping_add(1);
        if b.limits.slip != 0 && slips.is_multiple_of(b.limits.slip) {
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
        let batch = Worker::batch(&w.rrl, &snap);
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
            batch.as_ref(),
            peer_ip(peer),
            &mut out,
            len,
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
    mmsg::serve(sock, shared, stop, w, batch_wait)
}

/// When UDP GSO is tried. A refusal can come from one destination (its
/// route's device cannot segment) or from the whole host (no kernel
/// support): the refused message is sent unsegmented either way, and only
/// a kernel without support, or refusals coming thick and fast, turn GSO
/// off, for a while that doubles at each relapse (1 s to 5 min); it is then
/// tried again.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
#[derive(Debug)]
struct GsoPolicy {
    off_until: Option<std::time::Instant>,
    /// When GSO was last turned back on.
    back_on: Option<std::time::Instant>,
    backoff: Duration,
    window_start: std::time::Instant,
    recent: u32,
}

#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
impl GsoPolicy {
    const FIRST_BACKOFF: Duration = Duration::from_secs(1);
    const MAX_BACKOFF: Duration = Duration::from_secs(300);
    /// Refusals within a second that turn GSO off.
    const BURST: u32 = 8;

    fn new(now: std::time::Instant) -> GsoPolicy {
        GsoPolicy {
            off_until: None,
            back_on: None,
            backoff: Self::FIRST_BACKOFF,
            window_start: now,
            recent: 0,
        }
    }

    /// Whether to segment this batch (reads the clock only while off).
    fn enabled(&mut self) -> bool {
        self.enabled_at(std::time::Instant::now)
    }

    fn enabled_at(&mut self, now: impl FnOnce() -> std::time::Instant) -> bool {
        match self.off_until {
            None => true,
            Some(t) if now() >= t => {
                self.off_until = None;
                self.back_on = Some(t);
                self.recent = 0;
                true
            }
            Some(_) => false,
        }
    }

    /// A GSO send was refused with `errno`: returns how long GSO is now
    /// off, or None if it stays on (the refusal looks like one client's).
    fn refused(&mut self, errno: i32, now: std::time::Instant) -> Option<Duration> {
        if self.off_until.is_some() {
            return None;
        }
        if now.duration_since(self.window_start) > Duration::from_secs(1) {
            self.window_start = now;
            self.recent = 0;
        }
        self.recent += 1;
        let unsupported = matches!(errno, libc::ENOPROTOOPT | libc::EOPNOTSUPP);
        if !unsupported && self.recent < Self::BURST {
            return None;
        }
        if self
            .back_on
            .is_some_and(|t| now.duration_since(t) > 2 * Self::MAX_BACKOFF)
        {
            // the last relapse was long ago: start small again
            self.backoff = Self::FIRST_BACKOFF;
        }
        let off = self.backoff;
        self.off_until = Some(now + off);
        self.backoff = (off * 2).min(Self::MAX_BACKOFF);
        Some(off)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn one_clients_refusals_keep_gso_on() {
        let t0 = Instant::now();
        let mut p = GsoPolicy::new(t0);
        for i in 0..GsoPolicy::BURST - 1 {
            assert_eq!(
                p.refused(libc::EIO, t0 + Duration::from_millis(i.into())),
                None
            );
            assert!(p.enabled_at(|| t0));
        }
        // a second later the count starts again
        let t1 = t0 + Duration::from_millis(1500);
        for _ in 0..GsoPolicy::BURST - 1 {
            assert_eq!(p.refused(libc::EINVAL, t1), None);
        }
        assert!(p.enabled_at(|| t1));
    }

    #[test]
    fn a_burst_or_no_kernel_support_turns_it_off_for_a_growing_while() {
        let t0 = Instant::now();
        let mut p = GsoPolicy::new(t0);
        let mut off = None;
        for _ in 0..GsoPolicy::BURST {
            off = p.refused(libc::EIO, t0);
        }
        assert_eq!(off, Some(Duration::from_secs(1)));
        assert!(!p.enabled_at(|| t0 + Duration::from_millis(999)));
        // tried again after the backoff; no support: off for twice as long
        let t1 = t0 + Duration::from_secs(1);
        assert!(p.enabled_at(|| t1));
        assert_eq!(
            p.refused(libc::EOPNOTSUPP, t1),
            Some(Duration::from_secs(2))
        );
        assert!(!p.enabled_at(|| t1 + Duration::from_millis(1999)));
        let mut t = t1 + Duration::from_secs(2);
        let mut last = Duration::ZERO;
        for _ in 0..20 {
            assert!(p.enabled_at(|| t));
            last = p.refused(libc::ENOPROTOOPT, t).unwrap();
            t += last;
        }
        assert_eq!(last, GsoPolicy::MAX_BACKOFF, "the backoff is capped");
        // after a long good spell a relapse starts small again
        assert!(p.enabled_at(|| t));
        let later = t + Duration::from_secs(3600);
        assert_eq!(
            p.refused(libc::EOPNOTSUPP, later),
            Some(Duration::from_secs(1))
        );
    }
}

#[cfg(target_os = "linux")]
mod mmsg {
    use std::os::fd::AsRawFd;

    use super::*;

    const BATCH: usize = 64;
    /// Most datagrams in one UDP GSO send (the kernel's UDP_MAX_SEGMENTS).
    const GSO_MAX_SEGMENTS: usize = 64;
    /// Most bytes in one UDP GSO send (one IP datagram's worth).
    const GSO_MAX_BYTES: usize = 65_000;
    /// Control-message space: UDP_SEGMENT (24 bytes) plus IPV6_PKTINFO (40).
    const CMSG_WORDS: usize = 8;

    /// Asks the kernel to report each datagram's destination address, so
    /// that a socket bound to a wildcard answers from the address asked.
    pub(super) fn enable_pktinfo(s: &Socket, v6: bool) -> io::Result<()> {
        let on: libc::c_int = 1;
        let (level, name) = if v6 {
            (libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO)
        } else {
            (libc::IPPROTO_IP, libc::IP_PKTINFO)
        };
        // SAFETY: a valid socket, an int option of the right size.
        let r = unsafe {
            libc::setsockopt(
                s.as_raw_fd(),
                level,
                name,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// The local address a datagram arrived on (wildcard sockets).
    #[derive(Clone, Copy, PartialEq, Eq)]
    enum Local {
        None,
        V4([u8; 4]),
        V6([u8; 16], u32),
    }

    /// Converts a kernel socket address.
    fn to_socket_addr(ss: &libc::sockaddr_storage) -> Option<SocketAddr> {
        match i32::from(ss.ss_family) {
            libc::AF_INET => {
                // SAFETY: the family says the storage holds a sockaddr_in.
                let sin =
                    unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
                let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                Some(SocketAddr::new(IpAddr::V4(ip), u16::from_be(sin.sin_port)))
            }
            libc::AF_INET6 => {
                // SAFETY: the family says the storage holds a sockaddr_in6.
                let sin6 =
                    unsafe { &*(ss as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
                let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                Some(SocketAddr::new(
                    IpAddr::V6(ip),
                    u16::from_be(sin6.sin6_port),
                ))
            }
            _ => None,
        }
    }

    /// Buffers of one worker; allocated once.
    struct Bufs {
        inbufs: Vec<[u8; RECV_BUF]>,
        outbufs: Vec<[u8; SEND_BUF]>,
        addrs: Vec<libc::sockaddr_storage>,
        iov: Vec<libc::iovec>,
        msgs: Vec<libc::mmsghdr>,
        rcv_cmsgs: Vec<[u64; CMSG_WORDS]>,
        out_iov: Vec<libc::iovec>,
        out_msgs: Vec<libc::mmsghdr>,
        snd_cmsgs: Vec<[u64; CMSG_WORDS]>,
        /// The local address of each send (group).
        group_locals: Vec<Local>,
        /// Per response: (index of its query, peer, local address, length).
        resp: Vec<(usize, SocketAddr, Local, usize)>,
    }

    fn zeroed<T>() -> T {
        // SAFETY: only used for sockaddr_storage, iovec and mmsghdr: plain
        // C structs for which all-zero bytes are a valid value.
        unsafe { std::mem::zeroed() }
    }

    /// The destination address of a received datagram, from its pktinfo.
    fn local_of(h: &libc::msghdr) -> Local {
        if h.msg_controllen == 0 || h.msg_control.is_null() {
            return Local::None;
        }
        // SAFETY: the kernel filled msg_control with msg_controllen bytes
        // of well-formed control messages; CMSG_* walk within them.
        unsafe {
            let mut cm = libc::CMSG_FIRSTHDR(h);
            while !cm.is_null() {
                let c = &*cm;
                if c.cmsg_level == libc::IPPROTO_IP && c.cmsg_type == libc::IP_PKTINFO {
                    let pi =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cm).cast::<libc::in_pktinfo>());
                    // ipi_spec_dst is the local address the datagram
                    // reached (ipi_addr is the header's destination, which
                    // for a broadcast is no address to answer from)
                    return Local::V4(pi.ipi_spec_dst.s_addr.to_ne_bytes());
                }
                if c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_PKTINFO {
                    let pi =
                        std::ptr::read_unaligned(libc::CMSG_DATA(cm).cast::<libc::in6_pktinfo>());
                    return Local::V6(pi.ipi6_addr.s6_addr, pi.ipi6_ifindex);
                }
                cm = libc::CMSG_NXTHDR(h, cm);
            }
        }
        Local::None
    }

    pub(super) fn serve(
        sock: &UdpSocket,
        shared: &Shared,
        stop: &AtomicBool,
        w: &mut Worker,
        batch_wait: Duration,
    ) -> io::Result<()> {
        let fd = sock.as_raw_fd();
        let mut b = Bufs {
            inbufs: vec![[0u8; RECV_BUF]; BATCH],
            outbufs: vec![[0u8; SEND_BUF]; BATCH],
            addrs: (0..BATCH).map(|_| zeroed()).collect(),
            iov: (0..BATCH).map(|_| zeroed()).collect(),
            msgs: (0..BATCH).map(|_| zeroed()).collect(),
            rcv_cmsgs: vec![[0u64; CMSG_WORDS]; BATCH],
            out_iov: (0..BATCH).map(|_| zeroed()).collect(),
            out_msgs: (0..BATCH).map(|_| zeroed()).collect(),
            snd_cmsgs: vec![[0u64; CMSG_WORDS]; BATCH],
            group_locals: vec![Local::None; BATCH],
            resp: Vec::with_capacity(BATCH),
        };
        // UDP GSO (Linux 4.18+): answers to the same client of the same size
        // leave as one send.
        let mut gso = GsoPolicy::new(std::time::Instant::now());
        if !batch_wait.is_zero() {
            // Short sleeps need a small timer slack (default 50 us).
            // SAFETY: PR_SET_TIMERSLACK only changes this thread's slack.
            if unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 5_000 as libc::c_ulong) } != 0 {
                tracing::debug!("PR_SET_TIMERSLACK: {}", io::Error::last_os_error());
            }
        }

        while !stop.load(Ordering::Relaxed) {
            let (inbufs, addrs, iov, cmsgs) = (
                b.inbufs.as_mut_ptr(),
                b.addrs.as_mut_ptr(),
                b.iov.as_mut_ptr(),
                b.rcv_cmsgs.as_mut_ptr(),
            );
            for (i, m) in b.msgs.iter_mut().enumerate() {
                // SAFETY: i < BATCH, the length of every array indexed here.
                unsafe {
                    let v = &mut *iov.add(i);
                    v.iov_base = (*inbufs.add(i)).as_mut_ptr().cast();
                    v.iov_len = RECV_BUF;
                    let h = &mut m.msg_hdr;
                    h.msg_name = addrs.add(i).cast();
                    h.msg_namelen =
                        std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                    h.msg_iov = iov.add(i);
                    h.msg_iovlen = 1;
                    h.msg_control = cmsgs.add(i).cast();
                    h.msg_controllen = CMSG_WORDS * 8;
                    h.msg_flags = 0;
                }
                m.msg_len = 0;
            }
            // SAFETY: every mmsghdr points at live buffers owned by `b`,
            // with lengths matching their allocations.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    b.msgs.as_mut_ptr(),
                    BATCH as libc::c_uint,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                match e.kind() {
                    io::ErrorKind::WouldBlock
                    | io::ErrorKind::TimedOut
                    | io::ErrorKind::Interrupted => continue,
                    _ => {
                        tracing::debug!("recvmmsg: {e}");
                        std::thread::sleep(Duration::from_millis(1));
                        continue;
                    }
                }
            }
            let n = n as usize;
            b.resp.clear();
            {
                let snap = shared.load();
                let batch = Worker::batch(&w.rrl, &snap);
                let ctx = &mut w.ctx;
                for i in 0..n {
                    let len = b.msgs[i].msg_len as usize;
                    if b.msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                        ctx.stats.dropped();
                        continue;
                    }
                    // port 0 cannot be answered (and would fail a whole GSO send)
                    let Some(peer) = to_socket_addr(&b.addrs[i]).filter(|p| p.port() != 0) else {
                        ctx.stats.dropped();
                        continue;
                    };
                    let local = local_of(&b.msgs[i].msg_hdr);
                    let k = b.resp.len();
                    let out = &mut b.outbufs[k];
                    let query = &b.inbufs[i][..len];
                    let answered =
                        guarded(|| respond(&snap, query, peer_ip(peer), Transport::Udp, out, ctx));
                    if let Some(rlen) = answered
                        && let Some(rlen) = Worker::limit(
                            &ctx.stats,
                            &mut w.slips,
                            batch.as_ref(),
                            peer_ip(peer),
                            out,
                            rlen,
                        )
                    {
                        b.resp.push((i, peer, local, rlen));
                    }
                }
            }
            let groups = group(&mut b, gso.enabled());
            send(fd, &mut b, groups, &mut gso);
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

    /// Writes the control messages of one send: UDP_SEGMENT when
    /// `segment` is set, the source address when `local` is known. Returns
    /// the bytes used.
    fn write_cmsgs(
        h: &mut libc::msghdr,
        buf: &mut [u64; CMSG_WORDS],
        segment: Option<u16>,
        local: Local,
    ) -> usize {
        *buf = [0; CMSG_WORDS];
        // SAFETY: CMSG_SPACE of every message written here adds up to at
        // most 24 + 40 bytes, within the buffer; CMSG_* stay inside it.
        unsafe {
            let mut space = 0;
            if segment.is_some() {
                space += libc::CMSG_SPACE(2) as usize;
            }
            space += match local {
                Local::None => 0,
                Local::V4(_) => {
                    libc::CMSG_SPACE(std::mem::size_of::<libc::in_pktinfo>() as u32) as usize
                }
                Local::V6(..) => {
                    libc::CMSG_SPACE(std::mem::size_of::<libc::in6_pktinfo>() as u32) as usize
                }
            };
            if space == 0 {
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
                return 0;
            }
            h.msg_control = buf.as_mut_ptr().cast();
            h.msg_controllen = space as _;
            let mut cm = libc::CMSG_FIRSTHDR(h);
            if let Some(seg) = segment {
                (*cm).cmsg_level = libc::SOL_UDP;
                (*cm).cmsg_type = libc::UDP_SEGMENT;
                (*cm).cmsg_len = libc::CMSG_LEN(2) as _;
                std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<u16>(), seg);
                cm = libc::CMSG_NXTHDR(h, cm);
            }
            match local {
                Local::None => {}
                Local::V4(a) => {
                    let mut pi: libc::in_pktinfo = std::mem::zeroed();
                    pi.ipi_spec_dst.s_addr = u32::from_ne_bytes(a);
                    (*cm).cmsg_level = libc::IPPROTO_IP;
                    (*cm).cmsg_type = libc::IP_PKTINFO;
                    (*cm).cmsg_len =
                        libc::CMSG_LEN(std::mem::size_of::<libc::in_pktinfo>() as u32) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<libc::in_pktinfo>(), pi);
                }
                Local::V6(a, ifindex) => {
                    let mut pi: libc::in6_pktinfo = std::mem::zeroed();
                    pi.ipi6_addr.s6_addr = a;
                    pi.ipi6_ifindex = ifindex;
                    (*cm).cmsg_level = libc::IPPROTO_IPV6;
                    (*cm).cmsg_type = libc::IPV6_PKTINFO;
                    (*cm).cmsg_len =
                        libc::CMSG_LEN(std::mem::size_of::<libc::in6_pktinfo>() as u32) as _;
                    std::ptr::write_unaligned(libc::CMSG_DATA(cm).cast::<libc::in6_pktinfo>(), pi);
                }
            }
            space
        }
    }

    /// Fills `out_msgs` with one message per group of answers (same peer,
    /// same local address, same length, with GSO) and returns how many.
    fn group(b: &mut Bufs, gso: bool) -> usize {
        let mut used = [false; BATCH];
        let (mut g, mut iv) = (0, 0);
        let out_iov = b.out_iov.as_mut_ptr();
        let addrs = b.addrs.as_mut_ptr();
        for a in 0..b.resp.len() {
            if used[a] {
                continue;
            }
            used[a] = true;
            let (qi, peer, local, len) = b.resp[a];
            let first_iov = iv;
            let mut members = [a; GSO_MAX_SEGMENTS];
            let mut count = 1;
            if gso {
                let max = GSO_MAX_SEGMENTS.min(GSO_MAX_BYTES / len.max(1));
                for (c, u) in used.iter_mut().enumerate().take(b.resp.len()).skip(a + 1) {
                    if count >= max {
                        break;
                    }
                    let (_, p2, l2, len2) = b.resp[c];
                    if !*u && p2 == peer && l2 == local && len2 == len {
                        *u = true;
                        members[count] = c;
                        count += 1;
                    }
                }
            }
            for &m in &members[..count] {
                // SAFETY: iv < BATCH (one iovec per response), m < BATCH.
                unsafe {
                    let v = &mut *out_iov.add(iv);
                    v.iov_base = b.outbufs[m].as_mut_ptr().cast();
                    v.iov_len = len;
                }
                iv += 1;
            }
            let namelen = b.msgs[qi].msg_hdr.msg_namelen;
            let h = &mut b.out_msgs[g].msg_hdr;
            // SAFETY: qi and first_iov index live arrays of BATCH entries.
            unsafe {
                h.msg_name = addrs.add(qi).cast();
                h.msg_iov = out_iov.add(first_iov);
            }
            h.msg_namelen = namelen;
            h.msg_iovlen = count;
            h.msg_flags = 0;
            let segment = (count > 1).then_some(len as u16);
            write_cmsgs(h, &mut b.snd_cmsgs[g], segment, local);
            b.group_locals[g] = local;
            g += 1;
        }
        g
    }

    /// Sends each datagram of each message on its own, keeping the source
    /// address but not the segmentation.
    fn send_unsegmented(fd: i32, msgs: &[libc::mmsghdr], locals: &[Local]) {
        let mut buf = [0u64; CMSG_WORDS];
        for (m, &local) in msgs.iter().zip(locals) {
            let h = &m.msg_hdr;
            for j in 0..h.msg_iovlen {
                let mut one = *h;
                // SAFETY: msg_iov has msg_iovlen entries; the copy points at
                // one of them and at the same live name buffer.
                unsafe {
                    one.msg_iov = h.msg_iov.add(j);
                }
                one.msg_iovlen = 1;
                write_cmsgs(&mut one, &mut buf, None, local);
                // SAFETY: `one` points at live buffers, as above.
                if unsafe { libc::sendmsg(fd, &one, 0) } < 0 {
                    tracing::debug!("sendmsg: {}", io::Error::last_os_error());
                }
            }
        }
    }

    /// Sends `out_msgs[..count]`. A GSO message the kernel refuses (which
    /// can come from one destination's route) is sent one datagram at a
    /// time, and `gso` decides whether to keep segmenting.
    fn send(fd: i32, b: &mut Bufs, count: usize, gso: &mut GsoPolicy) {
        let mut sent = 0;
        while sent < count {
            // SAFETY: out_msgs[sent..count] point at live buffers in `b`.
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    b.out_msgs[sent..].as_mut_ptr(),
                    (count - sent) as libc::c_uint,
                    0,
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                let gso_msg = b.out_msgs[sent].msg_hdr.msg_iovlen > 1;
                if gso_msg
                    && let Some(
                        errno @ (libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP),
                    ) = e.raw_os_error()
                {
                    send_unsegmented(
                        fd,
                        &b.out_msgs[sent..sent + 1],
                        &b.group_locals[sent..sent + 1],
                    );
                    if let Some(off) = gso.refused(errno, std::time::Instant::now()) {
                        tracing::info!(
                            "UDP GSO refused ({e}); sending answers one by one for {off:?}"
                        );
                    } else {
                        tracing::debug!("UDP GSO refused for one client ({e}); sent unsegmented");
                    }
                    sent += 1;
                    continue;
                }
                // a bad destination fails only its own message: skip it
                tracing::debug!("sendmmsg: {e}");
                sent += 1;
                continue;
            }
            sent += r as usize;
        }
    }
}
