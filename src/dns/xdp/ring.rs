//! One AF_XDP socket with its own UMEM: the frame memory, the fill and
//! completion rings (frames lent to and returned by the kernel) and the
//! RX and TX rings, all mmapped, in copy or zero-copy mode as the kernel
//! picks (need-wakeup on).
//!
//! The rings are single-producer single-consumer queues shared with the
//! kernel: the producer writes entries, then publishes its index with a
//! release store; the consumer reads the index with an acquire load. The
//! ring memory must be unmapped before the socket is closed, or the
//! socket (and its queue) stays bound.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Bytes per UMEM frame (one page holds two).
pub const FRAME: u32 = 2048;
/// Frames per socket: 4 MiB of locked memory.
pub const FRAMES: u32 = 2048;
/// Entries per ring.
pub const RING: u32 = 1024;
/// `XDP_MAX_TX_SKB_BUDGET` (Linux 6.17+): frames sent per `sendto` in
/// copy mode (32 before).
const XDP_MAX_TX_SKB_BUDGET: libc::c_int = 9;

/// Which step of setting up a socket failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// `socket(AF_XDP)`.
    Socket,
    /// `mmap` of the frames or `XDP_UMEM_REG`.
    Umem,
    /// Ring sizes, offsets and mmaps.
    Rings,
    /// `bind` to the queue.
    Bind,
}

/// A mapped ring: `esize`-byte entries after the producer and consumer indexes.
struct Ring {
    prod: *const AtomicU32,
    cons: *const AtomicU32,
    flags: *const AtomicU32,
    desc: *mut u8,
    mask: u32,
    map: *mut libc::c_void,
    map_len: usize,
}

impl Ring {
    fn prod(&self) -> &AtomicU32 {
        // SAFETY: points into the ring's mapping, alive as long as self.
        unsafe { &*self.prod }
    }
    fn cons(&self) -> &AtomicU32 {
        // SAFETY: as above.
        unsafe { &*self.cons }
    }
    fn needs_wakeup(&self) -> bool {
        // SAFETY: as above.
        unsafe { &*self.flags }.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }
    /// Entry `i` (any index: it wraps) of a ring of `T`s (`xdp_desc`
    /// for rx/tx, a u64 frame address for fill/completion).
    fn entry<T>(&self, i: u32) -> *mut T {
        // SAFETY: masked, so inside the ring's entries; `desc` is aligned
        // for both entry types.
        unsafe { self.desc.cast::<T>().add((i & self.mask) as usize) }
    }
}

/// An AF_XDP socket bound to one queue of one interface.
pub struct Xsk {
    fd: OwnedFd,
    umem: *mut u8,
    umem_len: usize,
    rx: Ring,
    tx: Ring,
    fill: Ring,
    comp: Ring,
    /// Frames owned by us and not in any ring.
    free: Vec<u64>,
    /// Replies in the TX ring the kernel has not been kicked for.
    queued: u32,
}

// SAFETY: the raw pointers are to mappings owned by this value alone; it
// is moved to its worker thread once and used there only.
unsafe impl Send for Xsk {}

fn check(r: libc::c_int) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn setopt<T>(fd: RawFd, opt: libc::c_int, v: &T) -> io::Result<()> {
    // SAFETY: v is a valid T of the size passed.
    check(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_XDP,
            opt,
            (v as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    })
}

fn map_ring(fd: RawFd, off: &libc::xdp_ring_offset, pgoff: u64, esize: usize) -> io::Result<Ring> {
    let len = off.desc as usize + RING as usize * esize;
    // SAFETY: a fresh shared mapping of the socket's ring; checked below.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_POPULATE,
            fd,
            pgoff as libc::off_t,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    let b = p.cast::<u8>();
    // SAFETY: the offsets come from the kernel and lie inside the mapping.
    unsafe {
        Ok(Ring {
            prod: b.add(off.producer as usize).cast(),
            cons: b.add(off.consumer as usize).cast(),
            flags: b.add(off.flags as usize).cast(),
            desc: b.add(off.desc as usize),
            mask: RING - 1,
            map: p,
            map_len: len,
        })
    }
}

/// The pieces made so far, undone in order if a later step fails.
struct Partial {
    fd: Option<OwnedFd>,
    umem: *mut u8,
    umem_len: usize,
    rings: Vec<Ring>,
}

impl Drop for Partial {
    fn drop(&mut self) {
        for r in &self.rings {
            // SAFETY: our own mapping, unmapped once.
            unsafe { libc::munmap(r.map, r.map_len) };
        }
        if !self.umem.is_null() {
            // SAFETY: as above.
            unsafe { libc::munmap(self.umem.cast(), self.umem_len) };
        }
    }
}

impl Xsk {
    /// A socket on queue `queue` of interface `ifindex`, its fill ring
    /// stocked. `EBUSY` on bind (the queue's last socket is still being
    /// released) is retried for up to a second.
    pub fn new(ifindex: u32, queue: u32) -> Result<Xsk, (Step, io::Error)> {
        // SAFETY: plain socket call.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err((Step::Socket, io::Error::last_os_error()));
        }
        // SAFETY: the descriptor is new and ours.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let raw = fd.as_raw_fd();
        let umem_len = (FRAME * FRAMES) as usize;
        // SAFETY: an anonymous private mapping; checked below.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                umem_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err((Step::Umem, io::Error::last_os_error()));
        }
        let mut part = Partial {
            fd: Some(fd),
            umem: p.cast(),
            umem_len,
            rings: Vec::new(),
        };
        let reg = libc::xdp_umem_reg {
            addr: p as u64,
            len: umem_len as u64,
            chunk_size: FRAME,
            headroom: 0,
            flags: 0,
            tx_metadata_len: 0,
        };
        setopt(raw, libc::XDP_UMEM_REG, &reg).map_err(|e| (Step::Umem, e))?;
        for opt in [
            libc::XDP_UMEM_FILL_RING,
            libc::XDP_UMEM_COMPLETION_RING,
            libc::XDP_RX_RING,
            libc::XDP_TX_RING,
        ] {
            setopt(raw, opt, &RING).map_err(|e| (Step::Rings, e))?;
        }
        // Best effort: older kernels send 32 per sendto and say ENOPROTOOPT.
        let _ = setopt(raw, XDP_MAX_TX_SKB_BUDGET, &64u32);
        // SAFETY: all-zero is a valid xdp_mmap_offsets.
        let mut off: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
        // SAFETY: off is writable for len bytes.
        check(unsafe {
            libc::getsockopt(
                raw,
                libc::SOL_XDP,
                libc::XDP_MMAP_OFFSETS,
                (&mut off as *mut libc::xdp_mmap_offsets).cast(),
                &mut len,
            )
        })
        .map_err(|e| (Step::Rings, e))?;
        let desc = std::mem::size_of::<libc::xdp_desc>();
        for (o, pgoff, esize) in [
            (&off.rx, libc::XDP_PGOFF_RX_RING as u64, desc),
            (&off.tx, libc::XDP_PGOFF_TX_RING as u64, desc),
            (&off.fr, libc::XDP_UMEM_PGOFF_FILL_RING, 8),
            (&off.cr, libc::XDP_UMEM_PGOFF_COMPLETION_RING, 8),
        ] {
            let r = map_ring(raw, o, pgoff, esize).map_err(|e| (Step::Rings, e))?;
            part.rings.push(r);
        }
        let mut rings = std::mem::take(&mut part.rings).into_iter();
        let (Some(rx), Some(tx), Some(fill), Some(comp)) =
            (rings.next(), rings.next(), rings.next(), rings.next())
        else {
            unreachable!("four rings mapped");
        };
        // From here the Xsk owns (and unmaps) everything.
        let umem = std::mem::replace(&mut part.umem, std::ptr::null_mut());
        let Some(fd) = part.fd.take() else {
            unreachable!("the socket is still there");
        };
        drop(part);
        let mut x = Xsk {
            fd,
            umem,
            umem_len,
            rx,
            tx,
            fill,
            comp,
            free: (0..FRAMES).rev().map(|i| u64::from(i * FRAME)).collect(),
            queued: 0,
        };
        x.refill();
        let sa = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: libc::XDP_USE_NEED_WAKEUP,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: 0,
        };
        let start = Instant::now();
        loop {
            // SAFETY: sa is a valid sockaddr_xdp of the size passed.
            let r = check(unsafe {
                libc::bind(
                    x.fd.as_raw_fd(),
                    (&sa as *const libc::sockaddr_xdp).cast(),
                    std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            });
            match r {
                Ok(()) => return Ok(x),
                Err(e)
                    if e.raw_os_error() == Some(libc::EBUSY)
                        && start.elapsed() < Duration::from_secs(1) =>
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => return Err((Step::Bind, e)),
            }
        }
    }

    /// The socket, for the XSKMAP and `poll`.
    pub fn raw(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Whether the kernel is in zero-copy mode (`XDP_OPTIONS`).
    pub fn zero_copy(&self) -> bool {
        let mut o = libc::xdp_options { flags: 0 };
        let mut len = std::mem::size_of::<libc::xdp_options>() as libc::socklen_t;
        // SAFETY: o is writable for len bytes.
        let r = unsafe {
            libc::getsockopt(
                self.raw(),
                libc::SOL_XDP,
                libc::XDP_OPTIONS,
                (&mut o as *mut libc::xdp_options).cast(),
                &mut len,
            )
        };
        r == 0 && o.flags & libc::XDP_OPTIONS_ZEROCOPY != 0
    }

    /// The socket's loss counters (`XDP_STATISTICS`), in the order of
    /// [`crate::metrics::XDP_LOST`]; None if the kernel does not say.
    pub fn lost(&self) -> Option<[u64; 4]> {
        // SAFETY: all-zero is a valid xdp_statistics.
        let mut s: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: s is writable for len bytes.
        check(unsafe {
            libc::getsockopt(
                self.raw(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&mut s as *mut libc::xdp_statistics).cast(),
                &mut len,
            )
        })
        .ok()?;
        Some([
            s.rx_dropped,
            s.rx_ring_full,
            s.rx_fill_ring_empty_descs,
            s.tx_invalid_descs,
        ])
    }

    /// Moves free frames into the fill ring, as many as it takes.
    pub fn refill(&mut self) {
        let r = &self.fill;
        let prod = r.prod().load(Ordering::Relaxed);
        let room = RING - prod.wrapping_sub(r.cons().load(Ordering::Acquire));
        let n = room.min(self.free.len() as u32);
        for i in 0..n {
            let a = self.free.pop().unwrap_or_default();
            // SAFETY: slot inside the ring's entries (masked), 8-aligned.
            unsafe {
                let p = r.entry::<u64>(prod.wrapping_add(i));
                p.write(a);
            }
        }
        r.prod().store(prod.wrapping_add(n), Ordering::Release);
        // A zero-copy driver that ran out of fill frames waits to be told
        // there are more (copy mode never asks).
        if n > 0 && r.needs_wakeup() {
            // SAFETY: a zero-length receive with no buffer: the RX wake-up.
            unsafe {
                libc::recvfrom(
                    self.raw(),
                    std::ptr::null_mut(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null_mut(),
                    std::ptr::null_mut(),
                )
            };
        }
    }

    /// Takes back the frames the kernel has finished sending.
    pub fn reap(&mut self) {
        let r = &self.comp;
        let cons = r.cons().load(Ordering::Relaxed);
        let prod = r.prod().load(Ordering::Acquire);
        let n = prod.wrapping_sub(cons);
        for i in 0..n {
            // SAFETY: as in refill.
            let a = unsafe { r.entry::<u64>(cons.wrapping_add(i)).read() };
            // the address sent (after the headroom) -> its chunk
            self.free.push(a & !u64::from(FRAME - 1));
        }
        r.cons().store(prod, Ordering::Release);
    }

    /// Up to `max` received frames into `out` as (address, length); the
    /// caller must [`release`](Xsk::release) them after use.
    pub fn receive(&mut self, out: &mut Vec<(u64, u32)>, max: usize) -> u32 {
        out.clear();
        let r = &self.rx;
        let cons = r.cons().load(Ordering::Relaxed);
        let n = r
            .prod()
            .load(Ordering::Acquire)
            .wrapping_sub(cons)
            .min(max as u32);
        for i in 0..n {
            // SAFETY: as in refill; 16-byte descriptors.
            let d = unsafe { r.entry::<libc::xdp_desc>(cons.wrapping_add(i)).read() };
            out.push((d.addr, d.len));
        }
        n
    }

    /// Gives the `n` descriptors last read back to the kernel.
    pub fn release(&mut self, n: u32) {
        let c = self.rx.cons();
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Release);
    }

    /// The frame at UMEM address `addr`, from there to the end of its chunk.
    pub fn frame(&mut self, addr: u64) -> &mut [u8] {
        let base = (addr & !u64::from(FRAME - 1)) as usize;
        let off = addr as usize;
        if base + (FRAME as usize) > self.umem_len {
            return &mut [];
        }
        // SAFETY: inside the UMEM; the kernel gave this frame to us (it is
        // in no ring), so no one else touches it.
        unsafe { std::slice::from_raw_parts_mut(self.umem.add(off), base + FRAME as usize - off) }
    }

    /// Returns a frame not sent to the free list.
    pub fn recycle(&mut self, addr: u64) {
        self.free.push(addr & !u64::from(FRAME - 1));
    }

    /// Queues replies in the TX ring without telling the kernel (see
    /// [`flush`](Xsk::flush)); frames that do not fit are recycled
    /// (dropped). Returns how many were queued.
    pub fn transmit(&mut self, descs: &[(u64, u32)]) -> usize {
        let r = &self.tx;
        let prod = r.prod().load(Ordering::Relaxed);
        let room = RING - prod.wrapping_sub(r.cons().load(Ordering::Acquire));
        let n = descs.len().min(room as usize);
        for (i, &(addr, len)) in descs[..n].iter().enumerate() {
            // SAFETY: as in refill.
            unsafe {
                r.entry::<libc::xdp_desc>(prod.wrapping_add(i as u32))
                    .write(libc::xdp_desc {
                        addr,
                        len,
                        options: 0,
                    });
            }
        }
        r.prod()
            .store(prod.wrapping_add(n as u32), Ordering::Release);
        for &(addr, _) in &descs[n..] {
            self.recycle(addr);
        }
        self.queued += n as u32;
        n
    }

    /// Replies queued since the last [`flush`](Xsk::flush).
    pub fn queued(&self) -> u32 {
        self.queued
    }

    /// Kicks the kernel to send what is queued: `sendto` while it says
    /// more are waiting (copy mode sends a budget of frames per call);
    /// bounded. One kick per batch of replies rather than per receive
    /// batch: in copy mode each `sendto` is a syscall and a trip through
    /// the driver, so the worker queues while queries keep arriving and
    /// flushes before it would wait (or once a batch is full).
    pub fn flush(&mut self) {
        if self.queued == 0 {
            return;
        }
        self.queued = 0;
        if !self.tx.needs_wakeup() {
            return;
        }
        for _ in 0..1024 {
            // SAFETY: a zero-length send with no buffer: the TX wake-up.
            let r = unsafe {
                libc::sendto(
                    self.raw(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if r >= 0 {
                return;
            }
            match io::Error::last_os_error().raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::EINTR) => continue,
                _ => return,
            }
        }
    }

    /// Waits up to `timeout` for frames (and wakes the kernel's fill side).
    pub fn wait(&self, timeout: Duration) {
        let mut p = libc::pollfd {
            fd: self.raw(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, timeout.as_millis() as libc::c_int) };
    }
}

impl Drop for Xsk {
    fn drop(&mut self) {
        for r in [&self.rx, &self.tx, &self.fill, &self.comp] {
            // SAFETY: our own mappings, unmapped once, before the close.
            unsafe { libc::munmap(r.map, r.map_len) };
        }
        // SAFETY: as above.
        unsafe { libc::munmap(self.umem.cast(), self.umem_len) };
    }
}
