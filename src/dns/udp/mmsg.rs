//! The kernel's side of a [`Batch`] (Linux): `recvmmsg` and `sendmmsg`
//! take arrays of message headers that point at I/O vectors, socket
//! addresses and control-message space, and those point at the batch's
//! buffers. [`Kernel`] owns those arrays and points them at a batch at the
//! start of each call, for that call only; every raw pointer and every
//! `unsafe` of the UDP workers is in this file.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};

use socket2::Socket;

use super::RECV_BUF;
use super::batch::{BATCH, Batch, Datagram, Local, Reply};
use super::gso::GsoPolicy;

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

/// Short sleeps (adaptive coalescing) need a small timer slack: 5 us
/// instead of the default 50 us, for the calling thread.
pub(super) fn set_timer_slack() {
    // SAFETY: PR_SET_TIMERSLACK only changes this thread's slack.
    if unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 5_000 as libc::c_ulong) } != 0 {
        tracing::debug!("PR_SET_TIMERSLACK: {}", io::Error::last_os_error());
    }
}

/// The arrays `recvmmsg` and `sendmmsg` read and write, [`BATCH`] entries
/// each; allocated once per worker.
///
/// Receiving, entry `i` of the `recv_` arrays and of `names` belongs to
/// datagram `i` of the batch (as in [`Batch`]); `names[i]` and the
/// length in `recv_msgs[i]` stay there until the next receive, and the
/// answers to datagram `i` are sent to them. Sending, entry `g` of
/// `send_msgs` and `send_cmsgs` is the batch's group `g`, and `send_iov`
/// holds the groups' replies one after the other. The pointers in these
/// arrays are set at the start of [`Kernel::recv`] and [`Kernel::send`]
/// and not used after either returns.
pub(super) struct Kernel {
    names: Box<[libc::sockaddr_storage]>,
    recv_iov: Box<[libc::iovec]>,
    recv_msgs: Box<[libc::mmsghdr]>,
    recv_cmsgs: Box<[[u64; CMSG_WORDS]]>,
    send_iov: Box<[libc::iovec]>,
    send_msgs: Box<[libc::mmsghdr]>,
    send_cmsgs: Box<[[u64; CMSG_WORDS]]>,
}

impl Kernel {
    pub fn new() -> Kernel {
        fn zeroed<T>() -> T {
            // SAFETY: only used for sockaddr_storage, iovec and mmsghdr:
            // plain C structs for which all-zero bytes are a valid value.
            unsafe { std::mem::zeroed() }
        }
        Kernel {
            names: (0..BATCH).map(|_| zeroed()).collect(),
            recv_iov: (0..BATCH).map(|_| zeroed()).collect(),
            recv_msgs: (0..BATCH).map(|_| zeroed()).collect(),
            recv_cmsgs: vec![[0u64; CMSG_WORDS]; BATCH].into_boxed_slice(),
            send_iov: (0..BATCH).map(|_| zeroed()).collect(),
            send_msgs: (0..BATCH).map(|_| zeroed()).collect(),
            send_cmsgs: vec![[0u64; CMSG_WORDS]; BATCH].into_boxed_slice(),
        }
    }

    /// Receives up to [`BATCH`] datagrams into `batch.queries` (waiting
    /// for the first) and describes them in `batch.received`; returns how
    /// many.
    pub fn recv(&mut self, fd: RawFd, batch: &mut Batch) -> io::Result<usize> {
        let entries = self
            .recv_msgs
            .iter_mut()
            .zip(self.recv_iov.iter_mut())
            .zip(self.names.iter_mut())
            .zip(self.recv_cmsgs.iter_mut())
            .zip(batch.queries.iter_mut());
        for ((((m, iov), name), cmsg), query) in entries {
            iov.iov_base = query.as_mut_ptr().cast();
            iov.iov_len = RECV_BUF;
            let h = &mut m.msg_hdr;
            h.msg_name = (name as *mut libc::sockaddr_storage).cast();
            h.msg_namelen = std::mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            h.msg_iov = iov;
            h.msg_iovlen = 1;
            h.msg_control = cmsg.as_mut_ptr().cast();
            h.msg_controllen = CMSG_WORDS * 8;
            h.msg_flags = 0;
            m.msg_len = 0;
        }
        // SAFETY: every header was just pointed at buffers that live as
        // long as this call (in `self` and `batch`), with the lengths of
        // those buffers; there are BATCH headers.
        let n = unsafe {
            libc::recvmmsg(
                fd,
                self.recv_msgs.as_mut_ptr(),
                BATCH as libc::c_uint,
                libc::MSG_WAITFORONE,
                std::ptr::null_mut(),
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = n as usize;
        batch.received.clear();
        for (m, name) in self.recv_msgs[..n].iter().zip(self.names.iter()) {
            batch.received.push(Datagram {
                len: m.msg_len as usize,
                truncated: m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
                // port 0 cannot be answered (and would fail a whole GSO send)
                peer: to_socket_addr(name).filter(|p| p.port() != 0),
                local: local_of(&m.msg_hdr),
            });
        }
        Ok(n)
    }

    /// Sends the batch's groups, one message each. A GSO message the
    /// kernel refuses (which can come from one destination's route) is
    /// sent one datagram at a time, and `gso` decides whether to keep
    /// segmenting.
    pub fn send(&mut self, fd: RawFd, batch: &Batch, gso: &mut GsoPolicy) {
        let count = self.point_at_groups(batch);
        let mut sent = 0;
        while sent < count {
            // SAFETY: send_msgs[..count] were just pointed at buffers that
            // live as long as this call (in `self` and `batch`).
            let r = unsafe {
                libc::sendmmsg(
                    fd,
                    self.send_msgs[sent..count].as_mut_ptr(),
                    (count - sent) as libc::c_uint,
                    0,
                )
            };
            if r >= 0 {
                sent += r as usize;
                continue;
            }
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            let members = &batch.replies[batch.groups[sent].clone()];
            if members.len() > 1
                && let Some(
                    errno @ (libc::EIO | libc::EINVAL | libc::ENOPROTOOPT | libc::EOPNOTSUPP),
                ) = e.raw_os_error()
            {
                self.send_one_by_one(fd, batch, members);
                if let Some(off) = gso.refused(errno, std::time::Instant::now()) {
                    tracing::info!("UDP GSO refused ({e}); sending answers one by one for {off:?}");
                } else {
                    tracing::debug!("UDP GSO refused for one client ({e}); sent unsegmented");
                }
            } else {
                // a bad destination fails only its own message: skip it
                tracing::debug!("sendmmsg: {e}");
            }
            sent += 1;
        }
    }

    /// Points `send_msgs[g]` at group `g` of the batch: its replies as
    /// I/O vectors, the address of the datagram its first reply answers,
    /// UDP_SEGMENT when it has several replies, and the source address.
    /// Returns the number of groups.
    fn point_at_groups(&mut self, batch: &Batch) -> usize {
        debug_assert!(batch.groups.len() <= BATCH);
        let mut free_iov: &mut [libc::iovec] = &mut self.send_iov;
        let entries = self.send_msgs.iter_mut().zip(self.send_cmsgs.iter_mut());
        for (g, (m, cmsg)) in batch.groups.iter().zip(entries) {
            let members = &batch.replies[g.clone()];
            let (iovs, rest) = std::mem::take(&mut free_iov).split_at_mut(members.len());
            free_iov = rest;
            for (iov, r) in iovs.iter_mut().zip(members) {
                *iov = answer_iov(batch, r);
            }
            let first = members[0];
            let h = &mut m.msg_hdr;
            h.msg_name = (&raw const self.names[first.slot]).cast_mut().cast();
            h.msg_namelen = self.recv_msgs[first.slot].msg_hdr.msg_namelen;
            h.msg_iov = iovs.as_mut_ptr();
            h.msg_iovlen = members.len();
            h.msg_flags = 0;
            let segment = (members.len() > 1).then_some(first.len as u16);
            write_cmsgs(h, cmsg, segment, first.local);
        }
        batch.groups.len()
    }

    /// Sends the replies of one group each on its own, keeping the source
    /// address but not the segmentation.
    fn send_one_by_one(&self, fd: RawFd, batch: &Batch, members: &[Reply]) {
        let to = members[0].slot;
        let mut cmsg = [0u64; CMSG_WORDS];
        for r in members {
            let mut iov = answer_iov(batch, r);
            // SAFETY: a plain C struct; all-zero bytes are a valid value.
            let mut h: libc::msghdr = unsafe { std::mem::zeroed() };
            h.msg_name = (&raw const self.names[to]).cast_mut().cast();
            h.msg_namelen = self.recv_msgs[to].msg_hdr.msg_namelen;
            h.msg_iov = &mut iov;
            h.msg_iovlen = 1;
            write_cmsgs(&mut h, &mut cmsg, None, r.local);
            // SAFETY: `h` points at `iov`, `cmsg` and `self.names`, and
            // `iov` at the batch's answer buffer, all alive here.
            if unsafe { libc::sendmsg(fd, &h, 0) } < 0 {
                tracing::debug!("sendmsg: {}", io::Error::last_os_error());
            }
        }
    }
}

/// The I/O vector of a reply's answer (which the kernel only reads).
fn answer_iov(batch: &Batch, r: &Reply) -> libc::iovec {
    let answer = &batch.answers[r.slot][..r.len];
    libc::iovec {
        iov_base: answer.as_ptr().cast_mut().cast(),
        iov_len: answer.len(),
    }
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
                let pi = std::ptr::read_unaligned(libc::CMSG_DATA(cm).cast::<libc::in_pktinfo>());
                // ipi_spec_dst is the local address the datagram
                // reached (ipi_addr is the header's destination, which
                // for a broadcast is no address to answer from)
                return Local::V4(pi.ipi_spec_dst.s_addr.to_ne_bytes());
            }
            if c.cmsg_level == libc::IPPROTO_IPV6 && c.cmsg_type == libc::IPV6_PKTINFO {
                let pi = std::ptr::read_unaligned(libc::CMSG_DATA(cm).cast::<libc::in6_pktinfo>());
                return Local::V6(pi.ipi6_addr.s6_addr, pi.ipi6_ifindex);
            }
            cm = libc::CMSG_NXTHDR(h, cm);
        }
    }
    Local::None
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
