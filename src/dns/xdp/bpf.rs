//! `bpf(2)` without a BPF toolchain: the two maps, the XDP program
//! (assembled here, instruction by instruction), and its attachment by a
//! `bpf_link`, which detaches by itself when the process dies.
//!
//! The attributes are the kernel's `union bpf_attr`, written field by
//! field into a zeroed 144-byte buffer (libc has no `bpf_attr`).

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

const BPF_MAP_CREATE: u32 = 0;
const BPF_MAP_UPDATE_ELEM: u32 = 2;
const BPF_PROG_LOAD: u32 = 5;
#[cfg(test)]
const BPF_PROG_TEST_RUN: u32 = 10;
const BPF_LINK_CREATE: u32 = 28;

const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_MAP_TYPE_XSKMAP: u32 = 17;
const BPF_PROG_TYPE_XDP: u32 = 6;
const BPF_XDP: u32 = 37;
/// `prog_flags`: the program may see multi-buffer frames (large MTUs).
pub const BPF_F_XDP_HAS_FRAGS: u32 = 32;

/// `XDP_FLAGS_SKB_MODE`: generic XDP, any driver.
pub const XDP_FLAGS_SKB_MODE: u32 = 2;
/// `XDP_FLAGS_DRV_MODE`: native XDP in the driver.
pub const XDP_FLAGS_DRV_MODE: u32 = 4;
/// XDP verdicts.
#[cfg(test)]
pub const XDP_DROP: i32 = 1;
/// Let the kernel's stack have the frame.
pub const XDP_PASS: i32 = 2;

/// Most queues per interface (the XSKMAP's size).
pub const MAX_QUEUES: u32 = 64;
/// Most listen addresses.
const MAX_LISTEN: u32 = 64;

/// A zeroed `union bpf_attr` being filled in.
struct Attr([u8; 144]);

impl Attr {
    fn new() -> Attr {
        Attr([0; 144])
    }
    fn u32(&mut self, off: usize, v: u32) -> &mut Attr {
        self.0[off..off + 4].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn u64(&mut self, off: usize, v: u64) -> &mut Attr {
        self.0[off..off + 8].copy_from_slice(&v.to_ne_bytes());
        self
    }
    fn name(&mut self, off: usize, name: &str) -> &mut Attr {
        let n = name.len().min(15);
        self.0[off..off + n].copy_from_slice(&name.as_bytes()[..n]);
        self
    }
    #[cfg(test)]
    fn get_u32(&self, off: usize) -> u32 {
        let mut b = [0u8; 4];
        b.copy_from_slice(&self.0[off..off + 4]);
        u32::from_ne_bytes(b)
    }
}

fn bpf(cmd: u32, attr: &mut Attr) -> io::Result<i64> {
    // SAFETY: the buffer is a valid, zero-padded bpf_attr of its full
    // size; every pointer in it points to memory alive for the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr.0.as_mut_ptr(),
            attr.0.len(),
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn fd_of(r: i64) -> OwnedFd {
    // SAFETY: the kernel just returned this new descriptor to us alone.
    unsafe { OwnedFd::from_raw_fd(r as i32) }
}

/// A BPF map.
pub struct Map {
    fd: OwnedFd,
}

impl Map {
    /// The XSKMAP: rx queue number -> AF_XDP socket.
    pub fn xsks() -> io::Result<Map> {
        Map::create(BPF_MAP_TYPE_XSKMAP, 4, 4, MAX_QUEUES, "signpost_xsks")
    }

    /// The listen set: [`listen_key`] -> 1.
    pub fn listen() -> io::Result<Map> {
        Map::create(BPF_MAP_TYPE_HASH, 20, 4, MAX_LISTEN, "signpost_listen")
    }

    fn create(kind: u32, key: u32, value: u32, max: u32, name: &str) -> io::Result<Map> {
        let mut a = Attr::new();
        a.u32(0, kind)
            .u32(4, key)
            .u32(8, value)
            .u32(12, max)
            .name(28, name);
        Ok(Map {
            fd: fd_of(bpf(BPF_MAP_CREATE, &mut a)?),
        })
    }

    /// Sets `key` to `value` (sizes as created).
    pub fn update(&self, key: &[u8], value: &[u8]) -> io::Result<()> {
        let mut a = Attr::new();
        a.u32(0, self.fd.as_raw_fd() as u32)
            .u64(8, key.as_ptr() as u64)
            .u64(16, value.as_ptr() as u64);
        bpf(BPF_MAP_UPDATE_ELEM, &mut a).map(|_| ())
    }

    /// The descriptor, as the program refers to it.
    pub fn raw(&self) -> i32 {
        self.fd.as_raw_fd()
    }
}

/// A loaded XDP program.
pub struct Prog {
    fd: OwnedFd,
}

/// Why the kernel refused a program: the errno and the verifier's last lines.
#[derive(Debug)]
pub struct LoadError {
    /// The errno.
    pub err: io::Error,
    /// The last lines of the verifier log.
    pub log: String,
}

impl Prog {
    /// Loads `insns` as an XDP program (licence "MIT": it calls no
    /// GPL-only helper).
    pub fn load(insns: &[u64], flags: u32) -> Result<Prog, LoadError> {
        let license = b"MIT\0";
        let mut log = vec![0u8; 1 << 16];
        let mut a = Attr::new();
        a.u32(0, BPF_PROG_TYPE_XDP)
            .u32(4, insns.len() as u32)
            .u64(8, insns.as_ptr() as u64)
            .u64(16, license.as_ptr() as u64)
            .u32(24, 1)
            .u32(28, log.len() as u32)
            .u64(32, log.as_mut_ptr() as u64)
            .u32(44, flags)
            .name(48, "signpost_dns");
        match bpf(BPF_PROG_LOAD, &mut a) {
            Ok(fd) => Ok(Prog { fd: fd_of(fd) }),
            Err(err) => {
                let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
                let text = String::from_utf8_lossy(&log[..end]);
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(5)..].join(" / ");
                Err(LoadError { err, log: tail })
            }
        }
    }

    /// Attaches the program to `ifindex` (`XDP_FLAGS_*`); it stays
    /// attached while the returned link is open.
    pub fn attach(&self, ifindex: u32, flags: u32) -> io::Result<OwnedFd> {
        let mut a = Attr::new();
        a.u32(0, self.fd.as_raw_fd() as u32)
            .u32(4, ifindex)
            .u32(8, BPF_XDP)
            .u32(12, flags);
        Ok(fd_of(bpf(BPF_LINK_CREATE, &mut a)?))
    }

    /// Runs the program once over `frame` (`BPF_PROG_TEST_RUN`): its verdict.
    #[cfg(test)]
    pub fn test_run(&self, frame: &[u8]) -> io::Result<u32> {
        let mut out = vec![0u8; frame.len() + 512];
        let mut a = Attr::new();
        a.u32(0, self.fd.as_raw_fd() as u32)
            .u32(8, frame.len() as u32)
            .u32(12, out.len() as u32)
            .u64(16, frame.as_ptr() as u64)
            .u64(24, out.as_mut_ptr() as u64)
            .u32(32, 1);
        bpf(BPF_PROG_TEST_RUN, &mut a)?;
        Ok(a.get_u32(4))
    }
}

/// The listen map's key: the address as IPv6 (IPv4 mapped), the port in
/// network order, two zero bytes.
pub fn listen_key(addr: std::net::SocketAddr) -> [u8; 20] {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(a) => a.to_ipv6_mapped(),
        std::net::IpAddr::V6(a) => a,
    };
    let mut k = [0u8; 20];
    k[..16].copy_from_slice(&ip.octets());
    k[16..18].copy_from_slice(&addr.port().to_be_bytes());
    k
}

// ---------------------------------------------------------------- assembler

/// A jump target: a label or a fixed offset.
#[derive(Clone, Copy)]
enum Off {
    N(i16),
    L(&'static str),
}

enum It {
    Label(&'static str),
    Ins(u8, u8, u8, Off, i32),
    /// `BPF_LD | BPF_IMM | BPF_DW` of a map fd (`BPF_PSEUDO_MAP_FD`): two slots.
    LdMap(u8, i32),
}

const LDXW: u8 = 0x61;
const LDXH: u8 = 0x69;
const LDXB: u8 = 0x71;
const MOVX: u8 = 0xbf;
const MOVK: u8 = 0xb7;
const ADDK: u8 = 0x07;
const STW: u8 = 0x62;
const STH: u8 = 0x6a;
const STXW: u8 = 0x63;
const STXH: u8 = 0x6b;
const JGTX: u8 = 0x2d;
const JLTX: u8 = 0xad;
const JEQK: u8 = 0x15;
const JNEK: u8 = 0x55;
const JSETK: u8 = 0x45;
const JA: u8 = 0x05;
const CALL: u8 = 0x85;
const EXIT: u8 = 0x95;

/// One instruction slot: `{u8 code; u8 dst:4, src:4; s16 off; s32 imm}`.
fn encode(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> u64 {
    let mut b = [0u8; 8];
    b[0] = code;
    b[1] = (src << 4) | (dst & 0xf);
    b[2..4].copy_from_slice(&off.to_le_bytes());
    b[4..8].copy_from_slice(&imm.to_le_bytes());
    u64::from_ne_bytes(b)
}

fn assemble(prog: &[It]) -> Vec<u64> {
    let mut labels = Vec::new();
    let mut pc = 0i32;
    for i in prog {
        match i {
            It::Label(l) => labels.push((*l, pc)),
            It::Ins(..) => pc += 1,
            It::LdMap(..) => pc += 2,
        }
    }
    let at = |l: &str| {
        labels
            .iter()
            .find(|(n, _)| *n == l)
            .map(|(_, p)| *p)
            .expect("label defined")
    };
    let mut out = Vec::with_capacity(pc as usize);
    for i in prog {
        match *i {
            It::Label(_) => {}
            It::LdMap(dst, fd) => {
                out.push(encode(0x18, dst, 1, 0, fd));
                out.push(0);
            }
            It::Ins(code, dst, src, off, imm) => {
                let off = match off {
                    Off::N(n) => n,
                    Off::L(l) => (at(l) - out.len() as i32 - 1) as i16,
                };
                out.push(encode(code, dst, src, off, imm));
            }
        }
    }
    out
}

/// The largest frame the program redirects: a 2048-byte UMEM frame less
/// `XDP_PACKET_HEADROOM`; longer ones go to the kernel's sockets.
pub const MAX_FRAME: i32 = 1792;

/// The XDP program: redirects to the rx queue's AF_XDP socket every UDP
/// frame (Ethernet, at most one 802.1Q tag, IPv4 without options or
/// fragments, or IPv6 whose next header is UDP) whose (destination
/// address, port), or (that family's wildcard, port), is in the listen
/// map; passes everything else, and a listed frame on a queue without a
/// socket gets `empty` (`XDP_PASS`; `XDP_DROP` in tests to see matches).
pub fn program(xsks: i32, listen: i32, empty: i32) -> Vec<u64> {
    use It::{Ins as I, Label, LdMap};
    use Off::{L, N};
    const K: i16 = -24; // the 20-byte key on the stack at fp-24
    let z = N(0);
    assemble(&[
        I(MOVX, 6, 1, z, 0),    // r6 = ctx
        I(LDXW, 2, 6, N(0), 0), // r2 = data
        I(LDXW, 3, 6, N(4), 0), // r3 = data_end
        I(MOVX, 4, 2, z, 0),    // no Ethernet header -> pass
        I(ADDK, 4, 0, z, 14),
        I(JGTX, 4, 3, L("pass"), 0),
        I(MOVX, 4, 2, z, 0), // longer than a UMEM frame holds -> pass
        I(ADDK, 4, 0, z, MAX_FRAME),
        I(JLTX, 4, 3, L("pass"), 0),
        I(LDXH, 5, 2, N(12), 0), // ethertype (network order read little-endian)
        I(JNEK, 5, 0, L("l3"), 0x0081), // not 802.1Q
        I(MOVX, 4, 2, z, 0),
        I(ADDK, 4, 0, z, 18),
        I(JGTX, 4, 3, L("pass"), 0),
        I(LDXH, 5, 2, N(16), 0), // the encapsulated ethertype
        I(ADDK, 2, 0, z, 4),     // skip the tag: the offsets below stay
        Label("l3"),
        I(JEQK, 5, 0, L("ipv4"), 0x0008),
        I(JEQK, 5, 0, L("ipv6"), 0xdd86),
        I(JA, 0, 0, L("pass"), 0),
        Label("ipv4"),
        I(MOVX, 4, 2, z, 0),
        I(ADDK, 4, 0, z, 42),
        I(JGTX, 4, 3, L("pass"), 0),
        I(LDXB, 5, 2, N(14), 0), // version/IHL: no options
        I(JNEK, 5, 0, L("pass"), 0x45),
        I(LDXH, 5, 2, N(20), 0), // frag_off: MF or an offset -> pass
        I(JSETK, 5, 0, L("pass"), 0xff3f),
        I(LDXB, 5, 2, N(23), 0), // protocol
        I(JNEK, 5, 0, L("pass"), 17),
        I(MOVK, 7, 0, z, -65536), // key word 2 of ::ffff:0:0/96
        I(STW, 10, 0, N(K), 0),
        I(STW, 10, 0, N(K + 4), 0),
        I(STXW, 10, 7, N(K + 8), 0),
        I(LDXW, 5, 2, N(30), 0), // daddr
        I(STXW, 10, 5, N(K + 12), 0),
        I(LDXH, 5, 2, N(36), 0), // dest port
        I(STXH, 10, 5, N(K + 16), 0),
        I(JA, 0, 0, L("lookup"), 0),
        Label("ipv6"),
        I(MOVX, 4, 2, z, 0),
        I(ADDK, 4, 0, z, 62),
        I(JGTX, 4, 3, L("pass"), 0),
        I(LDXB, 5, 2, N(20), 0), // next header: UDP only
        I(JNEK, 5, 0, L("pass"), 17),
        I(MOVK, 7, 0, z, 0), // the IPv6 wildcard's word 2
        I(LDXW, 5, 2, N(38), 0),
        I(STXW, 10, 5, N(K), 0),
        I(LDXW, 5, 2, N(42), 0),
        I(STXW, 10, 5, N(K + 4), 0),
        I(LDXW, 5, 2, N(46), 0),
        I(STXW, 10, 5, N(K + 8), 0),
        I(LDXW, 5, 2, N(50), 0),
        I(STXW, 10, 5, N(K + 12), 0),
        I(LDXH, 5, 2, N(56), 0), // dest port
        I(STXH, 10, 5, N(K + 16), 0),
        Label("lookup"),
        I(STH, 10, 0, N(K + 18), 0),
        LdMap(1, listen),
        I(MOVX, 2, 10, z, 0),
        I(ADDK, 2, 0, z, K as i32),
        I(CALL, 0, 0, z, 1), // bpf_map_lookup_elem
        I(JNEK, 0, 0, L("redirect"), 0),
        I(STW, 10, 0, N(K), 0), // else the family's wildcard
        I(STW, 10, 0, N(K + 4), 0),
        I(STXW, 10, 7, N(K + 8), 0),
        I(STW, 10, 0, N(K + 12), 0),
        LdMap(1, listen),
        I(MOVX, 2, 10, z, 0),
        I(ADDK, 2, 0, z, K as i32),
        I(CALL, 0, 0, z, 1),
        I(JEQK, 0, 0, L("pass"), 0),
        Label("redirect"),
        I(LDXW, 2, 6, N(16), 0), // rx_queue_index
        LdMap(1, xsks),
        I(MOVK, 3, 0, z, empty),
        I(CALL, 0, 0, z, 51), // bpf_redirect_map
        I(EXIT, 0, 0, z, 0),
        Label("pass"),
        I(MOVK, 0, 0, z, XDP_PASS),
        I(EXIT, 0, 0, z, 0),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bytes of the listing the 6.18 verifier accepted in the research
    /// (`xdp_dns(xsk_fd=3, listen_fd=4)`), slot by slot.
    #[test]
    fn program_matches_the_verified_listing() {
        let golden: Vec<String> = include_str!("golden.txt")
            .lines()
            .map(str::to_string)
            .collect();
        let got: Vec<String> = program(3, 4, XDP_PASS)
            .iter()
            .map(|i| i.to_ne_bytes().iter().map(|b| format!("{b:02x}")).collect())
            .collect();
        assert_eq!(got.len(), 78);
        assert_eq!(got, golden);
    }

    #[test]
    fn encoding() {
        // mov r6, r1
        assert_eq!(
            encode(MOVX, 6, 1, 0, 0).to_ne_bytes(),
            [0xbf, 0x16, 0, 0, 0, 0, 0, 0]
        );
        // jgt r4, r3, +70
        assert_eq!(
            encode(JGTX, 4, 3, 70, 0).to_ne_bytes(),
            [0x2d, 0x34, 70, 0, 0, 0, 0, 0]
        );
        // st_w [r10-24], 0: negative offset little-endian
        assert_eq!(
            encode(STW, 10, 0, -24, 0).to_ne_bytes(),
            [0x62, 0x0a, 0xe8, 0xff, 0, 0, 0, 0]
        );
        assert_eq!(
            encode(MOVK, 7, 0, 0, -65536).to_ne_bytes(),
            [0xb7, 7, 0, 0, 0, 0, 0xff, 0xff]
        );
    }

    #[test]
    fn listen_keys() {
        let k = listen_key("198.18.0.1:53".parse().unwrap());
        assert_eq!(
            &k[..16],
            &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 18, 0, 1]
        );
        assert_eq!(&k[16..], &[0, 53, 0, 0]);
        let k = listen_key("[::]:5300".parse().unwrap());
        assert_eq!(&k[..16], &[0; 16]);
        assert_eq!(&k[16..], &[0x14, 0xb4, 0, 0]);
        let k = listen_key("0.0.0.0:53".parse().unwrap());
        assert_eq!(&k[8..12], &[0, 0, 0xff, 0xff]);
    }
}
