//! UDP workers: one OS thread per socket, `SO_REUSEPORT` sockets sharing a
//! port so the kernel spreads queries over them, and on Linux
//! `recvmmsg`/`sendmmsg` so one system call moves a batch of packets
//! (gdnsd's design). A worker loads the snapshot once per batch.

use std::io;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::answer::{Ctx, respond};
use crate::metrics::{Metrics, Transport};
use crate::state::Shared;

/// Largest query accepted; bigger datagrams are dropped.
const RECV_BUF: usize = 4096;
/// Response buffer: the UDP payload limit.
const SEND_BUF: usize = super::wire::MAX_UDP_PAYLOAD as usize;
/// How often a blocked worker wakes up to check for shutdown.
const WAKE: Duration = Duration::from_millis(200);

/// Binds `workers` sockets to `addr` (port 0 picks one port for all) and
/// starts a thread on each. Returns the bound address.
pub fn spawn(
    addr: SocketAddr,
    workers: usize,
    shared: Shared,
    metrics: &Metrics,
    stop: Arc<AtomicBool>,
) -> io::Result<(SocketAddr, Vec<JoinHandle<()>>)> {
    // A plain bind first, without SO_REUSEPORT, so that a port held by
    // another process is an error instead of a silent share.
    let probe = UdpSocket::bind(addr)?;
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
        let stats = metrics.worker(false);
        let h = std::thread::Builder::new()
            .name(format!("dns-udp-{i}"))
            .spawn(move || {
                let mut ctx = Ctx::new(stats);
                if let Err(e) = serve(&sock, &shared, &stop, &mut ctx) {
                    tracing::error!("udp worker on {bound} stopped: {e}");
                }
            })?;
        handles.push(h);
    }
    Ok((bound, handles))
}

fn bind_reuseport(addr: SocketAddr) -> io::Result<UdpSocket> {
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    #[cfg(unix)]
    s.set_reuse_port(true)?;
    // Best effort: a bigger receive buffer absorbs bursts.
    if let Err(e) = s.set_recv_buffer_size(1 << 21) {
        tracing::debug!("SO_RCVBUF: {e}");
    }
    s.set_read_timeout(Some(WAKE))?;
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

#[cfg(not(target_os = "linux"))]
fn serve(sock: &UdpSocket, shared: &Shared, stop: &AtomicBool, ctx: &mut Ctx) -> io::Result<()> {
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
        if let Some(len) = guarded(|| {
            respond(
                &snap,
                &inb[..n],
                peer_ip(peer),
                Transport::Udp,
                &mut out,
                ctx,
            )
        }) && let Err(e) = sock.send_to(&out[..len], peer)
        {
            tracing::debug!("send to {peer}: {e}");
        }
    }
    Ok(())
}

#[cfg(target_os = "linux")]
fn serve(sock: &UdpSocket, shared: &Shared, stop: &AtomicBool, ctx: &mut Ctx) -> io::Result<()> {
    mmsg::serve(sock, shared, stop, ctx)
}

#[cfg(target_os = "linux")]
mod mmsg {
    use std::os::fd::AsRawFd;

    use super::*;

    const BATCH: usize = 32;

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

    pub(super) fn serve(
        sock: &UdpSocket,
        shared: &Shared,
        stop: &AtomicBool,
        ctx: &mut Ctx,
    ) -> io::Result<()> {
        let fd = sock.as_raw_fd();
        let mut inbufs = vec![[0u8; RECV_BUF]; BATCH];
        let mut outbufs = vec![[0u8; SEND_BUF]; BATCH];
        // SAFETY: sockaddr_storage, iovec and mmsghdr are plain C structs
        // for which all-zero bytes are a valid value.
        let mut addrs: Vec<libc::sockaddr_storage> = vec![unsafe { std::mem::zeroed() }; BATCH];
        let mut iov: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; BATCH];
        let mut msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];
        let mut out_iov: Vec<libc::iovec> = vec![unsafe { std::mem::zeroed() }; BATCH];
        let mut out_msgs: Vec<libc::mmsghdr> = vec![unsafe { std::mem::zeroed() }; BATCH];

        while !stop.load(Ordering::Relaxed) {
            for i in 0..BATCH {
                iov[i].iov_base = inbufs[i].as_mut_ptr().cast();
                iov[i].iov_len = RECV_BUF;
                let h = &mut msgs[i].msg_hdr;
                h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                h.msg_iov = &mut iov[i];
                h.msg_iovlen = 1;
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
                h.msg_flags = 0;
                msgs[i].msg_len = 0;
            }
            // SAFETY: every mmsghdr points at live buffers owned by this
            // frame, with lengths matching their allocations.
            let n = unsafe {
                libc::recvmmsg(
                    fd,
                    msgs.as_mut_ptr(),
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
            let snap = shared.load();
            let mut k = 0;
            for i in 0..n {
                let len = msgs[i].msg_len as usize;
                if msgs[i].msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                    ctx.stats.dropped();
                    continue;
                }
                let Some(peer) = to_socket_addr(&addrs[i]) else {
                    continue;
                };
                let out = &mut outbufs[k];
                let Some(rlen) = guarded(|| {
                    respond(
                        &snap,
                        &inbufs[i][..len],
                        peer_ip(peer),
                        Transport::Udp,
                        out,
                        ctx,
                    )
                }) else {
                    continue;
                };
                out_iov[k].iov_base = outbufs[k].as_mut_ptr().cast();
                out_iov[k].iov_len = rlen;
                let h = &mut out_msgs[k].msg_hdr;
                h.msg_name = (&mut addrs[i] as *mut libc::sockaddr_storage).cast();
                h.msg_namelen = msgs[i].msg_hdr.msg_namelen;
                h.msg_iov = &mut out_iov[k];
                h.msg_iovlen = 1;
                h.msg_control = std::ptr::null_mut();
                h.msg_controllen = 0;
                h.msg_flags = 0;
                k += 1;
            }
            drop(snap);
            let mut sent = 0;
            while sent < k {
                // SAFETY: out_msgs[sent..k] point at live buffers as above.
                let r = unsafe {
                    libc::sendmmsg(
                        fd,
                        out_msgs[sent..].as_mut_ptr(),
                        (k - sent) as libc::c_uint,
                        0,
                    )
                };
                if r < 0 {
                    let e = io::Error::last_os_error();
                    if e.kind() == io::ErrorKind::Interrupted {
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
        Ok(())
    }
}
