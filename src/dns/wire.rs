//! DNS message parsing and writing for the answer path: a query parser that
//! copies nothing but the lowercase question name into a stack buffer, and
//! a bounded writer for responses. Every read is bounds-checked; malformed
//! input is an error value, never a panic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::zone::rtype;

/// DNS header flag bits (in the 16-bit flags word).
pub mod flags {
    /// Response.
    pub const QR: u16 = 0x8000;
    /// Authoritative answer.
    pub const AA: u16 = 0x0400;
    /// Truncated.
    pub const TC: u16 = 0x0200;
    /// Recursion desired.
    pub const RD: u16 = 0x0100;
    /// Checking disabled.
    pub const CD: u16 = 0x0010;
}

/// Response codes.
pub mod rcode {
    /// No error.
    pub const NOERROR: u8 = 0;
    /// Format error.
    pub const FORMERR: u8 = 1;
    /// Server failure.
    pub const SERVFAIL: u8 = 2;
    /// Name does not exist.
    pub const NXDOMAIN: u8 = 3;
    /// Not implemented.
    pub const NOTIMP: u8 = 4;
    /// Refused.
    pub const REFUSED: u8 = 5;
    /// Bad EDNS version (extended, 16).
    pub const BADVERS: u16 = 16;
}

/// EDNS option code of Client Subnet (RFC 7871).
pub const OPT_ECS: u16 = 8;
/// EDNS option code of the Name Server Identifier (RFC 5001).
pub const OPT_NSID: u16 = 3;
/// EDNS option code of edns-tcp-keepalive (RFC 7828).
pub const OPT_KEEPALIVE: u16 = 11;
pub use crate::model::MAX_NSID;
/// The largest UDP payload this server sends (DNS flag day 2020).
pub const MAX_UDP_PAYLOAD: u16 = 1232;

/// An EDNS Client Subnet option from a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ecs {
    /// 1 = IPv4, 2 = IPv6.
    pub family: u16,
    /// Source prefix length.
    pub source: u8,
    /// The address (zero-padded).
    pub addr: IpAddr,
    /// Address octets as sent (`ceil(source / 8)` of them).
    pub addr_len: u8,
}

/// The OPT record of a query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Edns {
    /// Requestor's UDP payload size.
    pub payload: u16,
    /// EDNS version.
    pub version: u8,
    /// DNSSEC OK bit.
    pub dnssec_ok: bool,
    /// Compact answers OK bit (RFC 9824): NXDOMAIN may be said as such
    /// beside a compact denial.
    pub compact_ok: bool,
    /// Client subnet, if present and valid.
    pub ecs: Option<Ecs>,
    /// The query asked for the server's NSID (RFC 5001).
    pub nsid: bool,
    /// The query carried edns-tcp-keepalive (RFC 7828).
    pub keepalive: bool,
}

impl Edns {
    /// The server's own OPT without options, for error responses whose
    /// query's OPT could not be used (FORMERR, BADVERS).
    pub const PLAIN: Edns = Edns {
        payload: MAX_UDP_PAYLOAD,
        version: 0,
        dnssec_ok: false,
        compact_ok: false,
        ecs: None,
        nsid: false,
        keepalive: false,
    };
}

/// A parsed query.
pub struct Query<'a> {
    /// The whole packet.
    pub packet: &'a [u8],
    /// Message ID.
    pub id: u16,
    /// Flags word.
    pub flags: u16,
    /// Opcode.
    pub opcode: u8,
    /// Lowercase question name, wire format.
    name: [u8; 255],
    name_len: u8,
    /// Label start offsets in `name`, including the root label.
    labels: [u8; 128],
    label_count: u8,
    /// Question type.
    pub qtype: u16,
    /// Question class.
    pub qclass: u16,
    /// Offset just past the question.
    pub question_end: usize,
    /// The OPT record.
    pub edns: Option<Edns>,
}

impl Query<'_> {
    /// Lowercase wire question name.
    pub fn name(&self) -> &[u8] {
        &self.name[..self.name_len as usize]
    }

    /// Label offsets of [`Query::name`].
    pub fn labels(&self) -> &[u8] {
        &self.labels[..self.label_count as usize]
    }

    /// The question as sent (name, type, class).
    pub fn question(&self) -> &[u8] {
        &self.packet[12..self.question_end]
    }
}

/// Why a packet is not a query we answer normally.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// Send nothing (too short to answer, or a response).
    Drop,
    /// FORMERR; `question_end` > 12 when the question could be echoed.
    FormErr {
        /// Offset past the question, or 12 if none.
        question_end: usize,
        /// The query carried an OPT record (whose options were wrong): the
        /// reply carries one too (RFC 6891 §7).
        opt: bool,
    },
    /// NOTIMP for an opcode other than QUERY.
    NotImp {
        /// Offset past the question, or 12 if none.
        question_end: usize,
        /// The query's OPT record, if it had a valid one (echoed).
        edns: Option<Edns>,
    },
    /// BADVERS for EDNS version > 0.
    BadVers {
        /// Offset past the question.
        question_end: usize,
    },
}

fn u16_at(p: &[u8], i: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*p.get(i)?, *p.get(i + 1)?]))
}

/// Parses a query. On error the caller answers per [`ParseError`].
pub fn parse(packet: &[u8]) -> Result<Query<'_>, ParseError> {
    if packet.len() < 12 {
        return Err(ParseError::Drop);
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let flags_word = u16::from_be_bytes([packet[2], packet[3]]);
    if flags_word & flags::QR != 0 {
        return Err(ParseError::Drop);
    }
    let opcode = ((flags_word >> 11) & 0xf) as u8;
    let qdcount = u16::from_be_bytes([packet[4], packet[5]]);
    let ancount = u16::from_be_bytes([packet[6], packet[7]]);
    let nscount = u16::from_be_bytes([packet[8], packet[9]]);
    let arcount = u16::from_be_bytes([packet[10], packet[11]]);
    const NO_Q: ParseError = ParseError::FormErr {
        question_end: 12,
        opt: false,
    };
    let no_q = if opcode == 0 {
        NO_Q
    } else {
        ParseError::NotImp {
            question_end: 12,
            edns: None,
        }
    };
    if qdcount != 1 {
        return Err(no_q);
    }
    let mut q = Query {
        packet,
        id,
        flags: flags_word,
        opcode,
        name: [0; 255],
        name_len: 0,
        labels: [0; 128],
        label_count: 0,
        qtype: 0,
        qclass: 0,
        question_end: 12,
        edns: None,
    };
    // Question name: no compression allowed (nothing precedes it to point at).
    let mut i = 12;
    let mut n = 0usize;
    loop {
        let len = *packet.get(i).ok_or(no_q)? as usize;
        if len & 0xc0 != 0 {
            return Err(no_q);
        }
        if n + 1 + len > 255 || q.label_count as usize >= 128 {
            return Err(no_q);
        }
        q.labels[q.label_count as usize] = n as u8;
        q.label_count += 1;
        q.name[n] = len as u8;
        let label = packet.get(i + 1..i + 1 + len).ok_or(no_q)?;
        for (d, s) in q.name[n + 1..n + 1 + len].iter_mut().zip(label) {
            *d = s.to_ascii_lowercase();
        }
        n += 1 + len;
        i += 1 + len;
        if len == 0 {
            break;
        }
    }
    q.name_len = n as u8;
    q.qtype = u16_at(packet, i).ok_or(no_q)?;
    q.qclass = u16_at(packet, i + 2).ok_or(no_q)?;
    i += 4;
    q.question_end = i;
    let edns = additional(packet, i, ancount, nscount, arcount);
    if opcode != 0 {
        return Err(ParseError::NotImp {
            question_end: i,
            edns: edns.ok().flatten(),
        });
    }
    q.edns = edns.map_err(|opt| ParseError::FormErr {
        question_end: i,
        opt,
    })?;
    if let Some(e) = q.edns
        && e.version > 0
    {
        return Err(ParseError::BadVers {
            question_end: q.question_end,
        });
    }
    Ok(q)
}

/// Steps over the answer and authority sections (empty in a normal query)
/// and finds the OPT record in the additional section. The error says
/// whether an OPT record was there (its contents were wrong).
fn additional(p: &[u8], mut i: usize, an: u16, ns: u16, ar: u16) -> Result<Option<Edns>, bool> {
    for _ in 0..(u32::from(an) + u32::from(ns)) {
        i = skip_rr(p, i).ok_or(false)?;
    }
    let mut edns = None;
    for _ in 0..ar {
        let start = i;
        let name_end = skip_name(p, i).ok_or(edns.is_some())?;
        let rtype = u16_at(p, name_end).ok_or(edns.is_some())?;
        let end = skip_rr(p, i).ok_or(edns.is_some() || rtype == rtype::OPT)?;
        if rtype == rtype::OPT {
            if edns.is_some() || name_end != start + 1 || p[start] != 0 {
                // two OPT records, or one not owned by the root
                return Err(true);
            }
            edns = Some(parse_opt(p, name_end, end).ok_or(true)?);
        }
        i = end;
    }
    Ok(edns)
}

/// Most compression pointers followed in one name: real names need one or
/// two; the bound keeps a crafted chain from costing more than a few steps.
const MAX_POINTERS: usize = 16;

/// Skips a possibly compressed name; returns the offset after it. The
/// pointer chain is followed only to validate it: every pointer must point
/// strictly backwards, at most [`MAX_POINTERS`] of them, and the name must
/// stay within 255 bytes.
fn skip_name(p: &[u8], mut i: usize) -> Option<usize> {
    let mut total = 0usize;
    let mut hops = 0;
    let mut end = None;
    loop {
        let len = *p.get(i)? as usize;
        match len & 0xc0 {
            0x00 => {
                i += 1 + len;
                total += 1 + len;
                if total > 255 || i > p.len() {
                    return None;
                }
                if len == 0 {
                    return Some(end.unwrap_or(i));
                }
            }
            0xc0 => {
                let target = (u16_at(p, i)? & 0x3fff) as usize;
                hops += 1;
                if target >= i || target < 12 || hops > MAX_POINTERS {
                    return None;
                }
                end.get_or_insert(i + 2);
                i = target;
            }
            _ => return None,
        }
    }
}

fn skip_rr(p: &[u8], i: usize) -> Option<usize> {
    let j = skip_name(p, i)?;
    let rdlen = u16_at(p, j + 8)? as usize;
    let end = j + 10 + rdlen;
    (end <= p.len()).then_some(end)
}

/// Parses OPT fields starting at its TYPE (offset `t`) up to `end`.
fn parse_opt(p: &[u8], t: usize, end: usize) -> Option<Edns> {
    let payload = u16_at(p, t + 2)?;
    let ext = p.get(t + 4..t + 8)?;
    let version = ext[1];
    let dnssec_ok = ext[2] & 0x80 != 0;
    let compact_ok = ext[2] & 0x40 != 0;
    let mut i = t + 10;
    let mut ecs = None;
    let mut nsid = false;
    let mut keepalive = false;
    while i < end {
        let code = u16_at(p, i)?;
        let len = u16_at(p, i + 2)? as usize;
        let data = p.get(i + 4..i + 4 + len)?;
        if i + 4 + len > end {
            return None;
        }
        if code == OPT_KEEPALIVE {
            keepalive = true;
        }
        if code == OPT_NSID {
            // its payload in a query should be empty; what it holds is ignored
            nsid = true;
        }
        if code == OPT_ECS {
            if ecs.is_some() {
                return None;
            }
            ecs = Some(parse_ecs(data)?);
        }
        i += 4 + len;
    }
    Some(Edns {
        payload,
        version,
        dnssec_ok,
        compact_ok,
        ecs,
        nsid,
        keepalive,
    })
}

/// RFC 7871 §6: FORMERR for an unknown family, a prefix longer than the
/// family allows, the wrong number of address octets, bits set beyond
/// the source prefix, or a SCOPE PREFIX-LENGTH other than 0 (it must be 0
/// in queries).
fn parse_ecs(d: &[u8]) -> Option<Ecs> {
    let family = u16_at(d, 0)?;
    let source = *d.get(2)?;
    if *d.get(3)? != 0 {
        return None;
    }
    let addr = d.get(4..)?;
    let max = match family {
        1 => 32,
        2 => 128,
        _ => return None,
    };
    if source > max {
        return None;
    }
    let octets = source.div_ceil(8) as usize;
    if addr.len() != octets {
        return None;
    }
    if source % 8 != 0 {
        let mask = 0xffu8 >> (source % 8);
        if addr[octets - 1] & mask != 0 {
            return None;
        }
    }
    let ip = if family == 1 {
        let mut b = [0u8; 4];
        b[..octets].copy_from_slice(addr);
        IpAddr::V4(Ipv4Addr::from(b))
    } else {
        let mut b = [0u8; 16];
        b[..octets].copy_from_slice(addr);
        IpAddr::V6(Ipv6Addr::from(b))
    };
    Some(Ecs {
        family,
        source,
        addr: ip,
        addr_len: octets as u8,
    })
}

/// The output buffer was too small for what was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

/// A bounded response writer.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    len: usize,
    limit: usize,
}

impl<'a> Writer<'a> {
    /// A writer over `buf` that refuses to write past `limit` bytes.
    pub fn new(buf: &'a mut [u8], limit: usize) -> Writer<'a> {
        let limit = limit.min(buf.len());
        Writer { buf, len: 0, limit }
    }

    /// Bytes written.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True if nothing was written.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Rewinds to `len` bytes.
    pub fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }

    /// Raises or lowers the limit (within the buffer).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.min(self.buf.len());
    }

    /// Appends bytes.
    pub fn put(&mut self, b: &[u8]) -> Result<(), Full> {
        let end = self.len + b.len();
        if end > self.limit {
            return Err(Full);
        }
        self.buf[self.len..end].copy_from_slice(b);
        self.len = end;
        Ok(())
    }

    /// Appends a big-endian u16.
    pub fn u16(&mut self, v: u16) -> Result<(), Full> {
        self.put(&v.to_be_bytes())
    }

    /// Appends a big-endian u32.
    pub fn u32(&mut self, v: u32) -> Result<(), Full> {
        self.put(&v.to_be_bytes())
    }

    /// Overwrites a u16 at `at` (inside what was written).
    pub fn set_u16(&mut self, at: usize, v: u16) {
        if at + 2 <= self.len {
            self.buf[at..at + 2].copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Reads back a u16 at `at`.
    pub fn get_u16(&self, at: usize) -> u16 {
        u16_at(&self.buf[..self.len], at).unwrap_or(0)
    }

    /// A compression pointer to `offset`.
    pub fn pointer(&mut self, offset: usize) -> Result<(), Full> {
        self.u16(0xc000 | (offset as u16 & 0x3fff))
    }

    /// The written bytes.
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

#[cfg(test)]
mod tests;
