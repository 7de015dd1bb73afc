//! A query frame in, its reply written over it: Ethernet (one 802.1Q tag
//! kept as it is), IPv4 or IPv6, UDP. Pure code, no system calls.
//!
//! The XDP program vouches only for the layout; the lengths are checked
//! here. The query's UDP checksum is never checked or reused: on veth it
//! is only partial (checksum offload), and NICs check it in hardware.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::ops::Range;

/// Smallest DNS message: the 12-byte header.
const DNS_HEADER: usize = 12;

/// Where a query sits in its frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// Start of the IP header.
    pub l3: usize,
    /// Start of the UDP header.
    pub l4: usize,
    /// IPv4 (else IPv6).
    pub v4: bool,
    /// The DNS message.
    pub payload: Range<usize>,
    /// The client.
    pub src: IpAddr,
}

fn be16(f: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([f[at], f[at + 1]])
}

/// The query in `f`, or None when the frame is not one to answer here
/// (not UDP over IPv4 without options and fragments or over IPv6 without
/// extension headers, inconsistent lengths, a DNS message shorter than its
/// header, or source port 0).
pub fn parse(f: &[u8]) -> Option<Query> {
    if f.len() < 14 {
        return None;
    }
    let (l3, ethertype) = match be16(f, 12) {
        0x8100 if f.len() >= 18 => (18, be16(f, 16)),
        0x8100 => return None,
        t => (14, t),
    };
    let (l4, v4, ip_payload, src) = match ethertype {
        0x0800 => {
            if f.len() < l3 + 20
                || f[l3] != 0x45
                || be16(f, l3 + 6) & 0x3fff != 0
                || f[l3 + 9] != 17
            {
                return None;
            }
            let total = usize::from(be16(f, l3 + 2));
            if total < 28 || l3 + total > f.len() {
                return None;
            }
            let s: [u8; 4] = f[l3 + 12..l3 + 16].try_into().ok()?;
            (l3 + 20, true, total - 20, IpAddr::V4(Ipv4Addr::from(s)))
        }
        0x86dd => {
            if f.len() < l3 + 40 || f[l3] >> 4 != 6 || f[l3 + 6] != 17 {
                return None;
            }
            let payload = usize::from(be16(f, l3 + 4));
            if l3 + 40 + payload > f.len() {
                return None;
            }
            let s: [u8; 16] = f[l3 + 8..l3 + 24].try_into().ok()?;
            (l3 + 40, false, payload, IpAddr::V6(Ipv6Addr::from(s)))
        }
        _ => return None,
    };
    if ip_payload < 8 {
        return None;
    }
    let ulen = usize::from(be16(f, l4 + 4));
    if ulen < 8 + DNS_HEADER || ulen > ip_payload || be16(f, l4) == 0 {
        return None;
    }
    Some(Query {
        l3,
        l4,
        v4,
        payload: l4 + 8..l4 + ulen,
        src: src.to_canonical(),
    })
}

/// One's-complement sum of `data` (as big-endian 16-bit words, an odd
/// last byte padded with zero) added to `acc`, not folded.
fn sum(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// Turns the query frame `f` into its reply, whose DNS message of `n`
/// bytes is already at `f[q.l4 + 8..]`: swaps the MAC addresses, the IP
/// addresses and the ports, sets the lengths, TTL / hop limit 64, and
/// computes the IPv4 header checksum and the UDP checksum from scratch.
/// Returns the reply frame's length.
pub fn write_reply(f: &mut [u8], q: &Query, n: usize) -> usize {
    let (l3, l4) = (q.l3, q.l4);
    let ulen = 8 + n;
    for i in 0..6 {
        f.swap(i, 6 + i);
    }
    for i in 0..2 {
        f.swap(l4 + i, l4 + 2 + i);
    }
    f[l4 + 4..l4 + 6].copy_from_slice(&(ulen as u16).to_be_bytes());
    f[l4 + 6..l4 + 8].copy_from_slice(&[0, 0]);
    let pseudo = if q.v4 {
        for i in 0..4 {
            f.swap(l3 + 12 + i, l3 + 16 + i);
        }
        f[l3 + 2..l3 + 4].copy_from_slice(&((20 + ulen) as u16).to_be_bytes());
        f[l3 + 4..l3 + 8].copy_from_slice(&[0, 0, 0x40, 0]); // id 0, DF
        f[l3 + 8] = 64;
        f[l3 + 10..l3 + 12].copy_from_slice(&[0, 0]);
        let c = fold(sum(&f[l3..l3 + 20], 0));
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
        sum(&f[l3 + 12..l3 + 20], 17 + ulen as u64)
    } else {
        for i in 0..16 {
            f.swap(l3 + 8 + i, l3 + 24 + i);
        }
        f[l3 + 4..l3 + 6].copy_from_slice(&(ulen as u16).to_be_bytes());
        f[l3 + 7] = 64;
        sum(&f[l3 + 8..l3 + 40], 17 + ulen as u64)
    };
    let c = match fold(sum(&f[l4..l4 + ulen], pseudo)) {
        0 => 0xffff,
        c => c,
    };
    f[l4 + 6..l4 + 8].copy_from_slice(&c.to_be_bytes());
    l4 + ulen
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    const MAC_C: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const MAC_S: [u8; 6] = [2, 0, 0, 0, 0, 1];

    /// A query frame: client -> server, `vlan` tagged or not, UDP to
    /// `dport`, with `dns` as payload and a wrong (partial) checksum.
    pub(crate) fn frame(src: IpAddr, dst: IpAddr, vlan: bool, dport: u16, dns: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&MAC_S);
        f.extend_from_slice(&MAC_C);
        if vlan {
            f.extend_from_slice(&[0x81, 0, 0, 7]);
        }
        let ulen = (8 + dns.len()) as u16;
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                f.extend_from_slice(&[0x08, 0, 0x45, 0]);
                f.extend_from_slice(&(20 + ulen).to_be_bytes());
                f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 63, 17, 0xab, 0xcd]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
                f.extend_from_slice(&ulen.to_be_bytes());
                f.extend_from_slice(&[17, 63]);
                f.extend_from_slice(&s.octets());
                f.extend_from_slice(&d.octets());
            }
            _ => panic!("mixed families"),
        }
        f.extend_from_slice(&[0xc3, 0x50]); // source port 50000
        f.extend_from_slice(&dport.to_be_bytes());
        f.extend_from_slice(&ulen.to_be_bytes());
        f.extend_from_slice(&[0x12, 0x34]); // a partial checksum, as on veth
        f.extend_from_slice(dns);
        f
    }

    /// RFC 1071 checksum, the textbook way (a different code path from `sum`).
    fn rfc1071(bytes: &[u8]) -> u16 {
        let mut s: u32 = 0;
        let mut i = 0;
        while i < bytes.len() {
            let hi = u32::from(bytes[i]) << 8;
            let lo = bytes.get(i + 1).map_or(0, |&b| u32::from(b));
            s += hi | lo;
            i += 2;
        }
        while s > 0xffff {
            s = (s >> 16) + (s & 0xffff);
        }
        !(s as u16)
    }

    fn query() -> Vec<u8> {
        let mut q = vec![0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x03www\x07example\x00\x00\x01\x00\x01");
        q
    }

    fn v4(a: &str) -> IpAddr {
        a.parse().unwrap()
    }

    #[test]
    fn parses_v4_v6_vlan() {
        let c4 = v4("198.18.0.2");
        let s4 = v4("198.18.0.1");
        let c6 = v4("2001:db8::2");
        let s6 = v4("2001:db8::1");
        for (src, dst, vlan, l3, l4) in [
            (c4, s4, false, 14, 34),
            (c4, s4, true, 18, 38),
            (c6, s6, false, 14, 54),
            (c6, s6, true, 18, 58),
        ] {
            let f = frame(src, dst, vlan, 53, &query());
            let q = parse(&f).expect("a query");
            assert_eq!((q.l3, q.l4, q.v4, q.src), (l3, l4, src.is_ipv4(), src));
            assert_eq!(&f[q.payload.clone()], &query()[..]);
        }
    }

    #[test]
    fn ethernet_padding_is_ignored() {
        let mut f = frame(v4("198.18.0.2"), v4("198.18.0.1"), false, 53, &query());
        f.extend_from_slice(&[0; 20]);
        let q = parse(&f).unwrap();
        assert_eq!(q.payload.len(), query().len());
    }

    #[test]
    fn refuses_what_it_must_not_answer() {
        let good = frame(v4("198.18.0.2"), v4("198.18.0.1"), false, 53, &query());
        let bad = |edit: &dyn Fn(&mut Vec<u8>)| {
            let mut f = good.clone();
            edit(&mut f);
            parse(&f)
        };
        assert!(bad(&|_| ()).is_some());
        assert!(bad(&|f| f[14] = 0x46).is_none(), "IP options");
        assert!(bad(&|f| f[20] = 0x20).is_none(), "more fragments");
        assert!(bad(&|f| f[21] = 0x01).is_none(), "fragment offset");
        assert!(bad(&|f| f[23] = 6).is_none(), "TCP");
        assert!(bad(&|f| f[12] = 0x08 + 1).is_none(), "not IP");
        assert!(
            bad(&|f| f[34..36].copy_from_slice(&[0, 0])).is_none(),
            "source port 0"
        );
        assert!(
            bad(&|f| f[38..40].copy_from_slice(&[0, 19])).is_none(),
            "UDP too short for DNS"
        );
        assert!(
            bad(&|f| f[38..40].copy_from_slice(&[0x10, 0])).is_none(),
            "UDP longer than IP"
        );
        assert!(
            bad(&|f| f[16..18].copy_from_slice(&[0x10, 0])).is_none(),
            "IP longer than frame"
        );
        assert!(bad(&|f| f.truncate(40)).is_none(), "truncated");
        assert!(parse(&good[..14]).is_none());
        let mut v6 = frame(v4("2001:db8::2"), v4("2001:db8::1"), false, 53, &query());
        v6[20] = 44; // a fragment header
        assert!(parse(&v6).is_none());
    }

    #[test]
    fn reply_headers_and_checksums() {
        let answer = b"\xab\xcd\x84\x00\x00\x01\x00\x01\x00\x00\x00\x00\x03www\x07example\x00\x00\x01\x00\x01\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04\xc6\x12\x00\x63x";
        for (src, dst, vlan) in [
            (v4("198.18.0.2"), v4("198.18.0.1"), false),
            (v4("198.18.0.2"), v4("198.18.0.1"), true),
            (v4("2001:db8::2"), v4("2001:db8::1"), false),
            (v4("2001:db8::2"), v4("2001:db8::1"), true),
        ] {
            let mut f = frame(src, dst, vlan, 53, &query());
            let q = parse(&f).unwrap();
            f.resize(2048, 0xee);
            f[q.l4 + 8..q.l4 + 8 + answer.len()].copy_from_slice(answer);
            let len = write_reply(&mut f, &q, answer.len());
            let r = &f[..len];
            assert_eq!(&r[..6], &MAC_C);
            assert_eq!(&r[6..12], &MAC_S);
            if vlan {
                assert_eq!(&r[12..16], &[0x81, 0, 0, 7]);
            }
            let (l3, l4) = (q.l3, q.l4);
            assert_eq!(&r[l4..l4 + 4], &[0, 53, 0xc3, 0x50]);
            let ulen = 8 + answer.len();
            assert_eq!(usize::from(be16(r, l4 + 4)), ulen);
            assert_eq!(len, l4 + ulen);
            assert_eq!(&r[l4 + 8..], answer);
            // the pseudo-header, built independently
            let mut pseudo = Vec::new();
            if q.v4 {
                assert_eq!(&r[l3 + 12..l3 + 16], &[198, 18, 0, 1]);
                assert_eq!(&r[l3 + 16..l3 + 20], &[198, 18, 0, 2]);
                assert_eq!(usize::from(be16(r, l3 + 2)), 20 + ulen);
                assert_eq!(r[l3 + 8], 64);
                assert_eq!(rfc1071(&r[l3..l3 + 20]), 0, "IPv4 header checksum");
                pseudo.extend_from_slice(&r[l3 + 12..l3 + 20]);
                pseudo.extend_from_slice(&[0, 17]);
                pseudo.extend_from_slice(&(ulen as u16).to_be_bytes());
            } else {
                assert_eq!(
                    IpAddr::from(<[u8; 16]>::try_from(&r[l3 + 8..l3 + 24]).unwrap()),
                    dst
                );
                assert_eq!(
                    IpAddr::from(<[u8; 16]>::try_from(&r[l3 + 24..l3 + 40]).unwrap()),
                    src
                );
                assert_eq!(usize::from(be16(r, l3 + 4)), ulen);
                assert_eq!(r[l3 + 7], 64);
                pseudo.extend_from_slice(&r[l3 + 8..l3 + 40]);
                pseudo.extend_from_slice(&(ulen as u32).to_be_bytes());
                pseudo.extend_from_slice(&[0, 0, 0, 17]);
            }
            assert_ne!(be16(r, l4 + 6), 0);
            pseudo.extend_from_slice(&r[l4..l4 + ulen]);
            assert_eq!(rfc1071(&pseudo), 0, "UDP checksum verifies");
        }
    }

    #[test]
    fn zero_checksum_is_sent_as_ffff() {
        assert_eq!(fold(0xffff), 0);
        // a UDP message whose checksum folds to 0 is sent as 0xffff: find
        // one by varying the last payload byte
        let src = v4("198.18.0.2");
        let dst = v4("198.18.0.1");
        let mut seen = false;
        for b in 0..=255u8 {
            for c in 0..=255u8 {
                let mut dns = query();
                dns.push(b);
                dns.push(c);
                let mut f = frame(src, dst, false, 53, &dns);
                let q = parse(&f).unwrap();
                let n = q.payload.len();
                let len = write_reply(&mut f, &q, n);
                if be16(&f, q.l4 + 6) == 0xffff {
                    seen = true;
                    let mut p = f[q.l3 + 12..q.l3 + 20].to_vec();
                    p.extend_from_slice(&[0, 17]);
                    p.extend_from_slice(&((len - q.l4) as u16).to_be_bytes());
                    p.extend_from_slice(&f[q.l4..len]);
                    assert_eq!(rfc1071(&p), 0);
                }
                assert_ne!(be16(&f, q.l4 + 6), 0);
            }
            if seen {
                break;
            }
        }
        assert!(seen, "some payload's checksum came out as 0 -> 0xffff");
    }
}
