//! Zone transfers (SPEC §10): AXFR and IXFR out over the TCP listener to
//! the zone's `allow` list, signed with TSIG (RFC 8945) when the zone
//! names a key ([`outbound`]); NOTIFY (RFC 1996) out to secondaries and
//! in from a primary ([`notify`]); and the transfer client that takes a
//! zone's static records from its primary ([`inbound`]). TSIG's MACs and
//! the message formats are hickory-proto's; control drives the timers.

pub mod inbound;
pub mod notify;
pub mod outbound;

/// Seconds of clock difference a TSIG signature may show.
pub const FUDGE: u16 = crate::config::TsigKey::FUDGE;

/// Most bytes of records in one transfer message (Knot uses about 16 KB):
/// room is left for the header, the question and the TSIG record.
pub const MESSAGE_BYTES: usize = 16_000;

/// Now, in Unix seconds (TSIG times).
pub fn now() -> u64 {
    crate::dnssec::unix_now().max(0) as u64
}

/// DNS header flags used here.
pub mod flags {
    /// Response.
    pub const QR: u16 = 0x8000;
    /// Authoritative answer.
    pub const AA: u16 = 0x0400;
}

/// Opcode NOTIFY (RFC 1996).
pub const OPCODE_NOTIFY: u8 = 4;

/// The opcode of a message, if it has a header.
pub fn opcode(packet: &[u8]) -> Option<u8> {
    Some((packet.get(2)? >> 3) & 0x0f)
}

/// True when `packet` is a query (QR clear, opcode QUERY) for AXFR or
/// IXFR with one question: a transfer request.
pub fn is_transfer(packet: &[u8]) -> bool {
    transfer_type(packet).is_some()
}

/// The question's type when `packet` asks for AXFR (252) or IXFR (251).
pub fn transfer_type(packet: &[u8]) -> Option<u16> {
    if packet.len() < 12 || packet[2] & 0x80 != 0 || opcode(packet)? != 0 {
        return None;
    }
    if u16::from_be_bytes([packet[4], packet[5]]) != 1 {
        return None;
    }
    let end = name_end(packet, 12)?;
    let t = u16::from_be_bytes([*packet.get(end)?, *packet.get(end + 1)?]);
    matches!(t, 251 | 252).then_some(t)
}

/// The end of an uncompressed name starting at `i`.
fn name_end(p: &[u8], i: usize) -> Option<usize> {
    Some(i + crate::zone::wire_name_len(p, i)?)
}

/// A message ID nobody can guess from the last one (ring's system
/// randomness).
pub fn random_id() -> Result<u16, String> {
    use ring::rand::SecureRandom;
    let mut b = [0u8; 2];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| "no system randomness for a message ID")?;
    Ok(u16::from_be_bytes(b))
}
