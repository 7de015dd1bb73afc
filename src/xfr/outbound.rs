//! AXFR and IXFR out (RFC 5936, RFC 1995) over TCP: who may transfer, the
//! TSIG check of the request (RFC 8945), the zone's records cut into
//! messages of about [`MESSAGE_BYTES`](super::MESSAGE_BYTES), each signed
//! with the MAC of the one before. An IXFR is answered with the whole zone,
//! or with its SOA alone when the client is up to date. The records come
//! ready-made from the snapshot ([`crate::state::Transfer`]).

use std::net::IpAddr;

use hickory_proto::op::Message;
use hickory_proto::rr::rdata::tsig::{TSIG, TsigError, make_tsig_record};
use hickory_proto::rr::{RData, Record, SerialNumber, TSigResponseContext, TSigner};
use hickory_proto::serialize::binary::{BinEncodable, BinEncoder};

use super::{FUDGE, MESSAGE_BYTES, flags, now};
use crate::state::Snapshot;

/// RCODEs used here.
mod rcode {
    pub const FORMERR: u16 = 1;
    pub const NOTAUTH: u16 = 9;
    pub const REFUSED: u16 = 5;
}

/// The outcome of a transfer request, for the log and the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// The whole zone was sent (AXFR, or IXFR answered in full).
    Full,
    /// IXFR from a client up to date: the SOA alone.
    UpToDate,
    /// Not allowed: REFUSED.
    Refused,
    /// TSIG missing or wrong: NOTAUTH.
    NotAuth,
    /// Malformed: FORMERR.
    FormErr,
}

impl Outcome {
    /// Label for metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Full => "full",
            Outcome::UpToDate => "up_to_date",
            Outcome::Refused => "refused",
            Outcome::NotAuth => "notauth",
            Outcome::FormErr => "formerr",
        }
    }
}

/// Answers a transfer request from `src`: the messages to send, in order
/// (each without the TCP length prefix), and what happened.
pub fn serve(snap: &Snapshot, packet: &[u8], src: IpAddr) -> (Vec<Vec<u8>>, Outcome, String) {
    let Some(question_end) = question_end(packet) else {
        return (
            error(packet, packet.len().min(12), rcode::FORMERR),
            Outcome::FormErr,
            String::new(),
        );
    };
    let qname = packet[12..question_end - 4].to_ascii_lowercase();
    let data = &snap.data;
    let zi = data.table.zones.iter().position(|z| *z.apex == *qname);
    // a metrics label: a zone served here, never a name a client made up
    let zone_text = match zi {
        Some(i) => data.table.zones[i].name.clone(),
        None => "other".to_string(),
    };
    let Some(t) = zi
        .and_then(|i| data.transfers.get(i))
        .and_then(Option::as_ref)
    else {
        return (
            error(packet, question_end, rcode::REFUSED),
            Outcome::Refused,
            zone_text,
        );
    };
    if !t.allow.iter().any(|n| n.contains(&src)) {
        return (
            error(packet, question_end, rcode::REFUSED),
            Outcome::Refused,
            zone_text,
        );
    }
    let request = match Message::from_vec(packet) {
        Ok(m) => m,
        Err(_) => {
            return (
                error(packet, question_end, rcode::FORMERR),
                Outcome::FormErr,
                zone_text,
            );
        }
    };
    // TSIG: the zone's key, or none
    let mut sign = None;
    match (&t.tsig, request.signature()) {
        (None, None) => {}
        (Some(_), None) => {
            return (
                error(packet, question_end, rcode::NOTAUTH),
                Outcome::NotAuth,
                zone_text,
            );
        }
        (key, Some(sig)) => match check_tsig(key.as_ref(), packet, sig) {
            Ok(ok) => sign = Some(ok),
            Err(e) => {
                let mut m = error(packet, question_end, rcode::NOTAUTH);
                if let Some(tsig) = e {
                    append_record(&mut m[0], &tsig);
                }
                return (m, Outcome::NotAuth, zone_text);
            }
        },
    }
    // IXFR from a client as new as we are: the SOA alone
    let client_serial = request.authorities.iter().find_map(|r| match &r.data {
        RData::SOA(soa) => Some(soa.serial),
        _ => None,
    });
    let up_to_date = transfer_type(packet) == Some(251)
        && client_serial.is_some_and(|c| SerialNumber::new(c) >= SerialNumber::new(t.serial));
    let records: Vec<&[u8]> = if up_to_date {
        vec![&t.soa]
    } else {
        std::iter::once(&*t.soa)
            .chain(t.records.iter().map(|r| &**r))
            .chain(std::iter::once(&*t.soa))
            .collect()
    };
    let mut messages = pack(packet, question_end, &records);
    if let Some((signer, request_mac)) = sign
        && let Err(e) = sign_stream(&mut messages, &signer, request_mac, request.id)
    {
        tracing::warn!("transfer of {zone_text} to {src}: cannot sign: {e}");
        return (
            error(packet, question_end, rcode::NOTAUTH),
            Outcome::NotAuth,
            zone_text,
        );
    }
    let outcome = if up_to_date {
        Outcome::UpToDate
    } else {
        Outcome::Full
    };
    (messages, outcome, zone_text)
}

/// The question's type, as [`super::transfer_type`].
fn transfer_type(packet: &[u8]) -> Option<u16> {
    super::transfer_type(packet)
}

/// The end of the (single) question.
fn question_end(packet: &[u8]) -> Option<usize> {
    let end = super::name_end(packet, 12)? + 4;
    (end <= packet.len()).then_some(end)
}

/// A verified request: the signer and the request's MAC; or why not,
/// with the TSIG record the answer carries (BADKEY, BADSIG, BADTIME).
#[allow(clippy::type_complexity)]
fn check_tsig(
    key: Option<&(crate::config::TsigKey, TSigner)>,
    packet: &[u8],
    sig: &Record<TSIG>,
) -> Result<(TSigner, Vec<u8>), Option<Box<Record<TSIG>>>> {
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let now = now();
    let Some((_, signer)) =
        key.filter(|(_, s)| *s.signer_name() == sig.name && s.algorithm() == &sig.data.algorithm)
    else {
        let unsigned = unsigned_tsig(sig, id, now, TsigError::BadKey);
        return Err(Some(Box::new(unsigned)));
    };
    match signer.verify_message_byte(packet, None, true) {
        Ok((mac, _, window)) if window.contains(&now) => Ok((signer.clone(), mac)),
        Ok((mac, signed_at, _)) => {
            // BADTIME: signed, with our time in Other Data (RFC 8945 §5.2.3)
            let stub = TSIG::new(
                signer.algorithm().clone(),
                signed_at,
                FUDGE,
                Vec::new(),
                id,
                Some(TsigError::BadTime),
                now.to_be_bytes()[2..8].to_vec(),
            );
            let unsigned = error(packet, question_end(packet).unwrap_or(12), rcode::NOTAUTH);
            let mac = signer
                .encode_response_tbs(&mac, &unsigned[0], &stub)
                .ok()
                .and_then(|tbs| signer.sign(&tbs).ok())
                .unwrap_or_default();
            Err(Some(Box::new(make_tsig_record(
                signer.signer_name().clone(),
                stub.set_mac(mac),
            ))))
        }
        Err(_) => Err(Some(Box::new(unsigned_tsig(
            sig,
            id,
            now,
            TsigError::BadSig,
        )))),
    }
}

/// An unsigned TSIG record carrying `error`, with the request's key name
/// and algorithm (as Knot and NSD answer).
fn unsigned_tsig(sig: &Record<TSIG>, id: u16, now: u64, error: TsigError) -> Record<TSIG> {
    let stub = TSIG::new(
        sig.data.algorithm.clone(),
        now,
        FUDGE,
        Vec::new(),
        id,
        Some(error),
        Vec::new(),
    );
    make_tsig_record(sig.name.clone(), stub)
}

/// A one-message error answer: the header and the question.
fn error(packet: &[u8], question_end: usize, code: u16) -> Vec<Vec<u8>> {
    let mut m = Vec::with_capacity(question_end.max(12));
    m.extend_from_slice(packet.get(..2).unwrap_or(&[0, 0]));
    // the opcode and RD of the request
    let op = u16::from(packet.get(2).copied().unwrap_or(0) & 0x79) << 8;
    m.extend_from_slice(&(flags::QR | op | code).to_be_bytes());
    let has_q = question_end > 12;
    m.extend_from_slice(&u16::from(has_q).to_be_bytes());
    m.extend_from_slice(&[0; 6]);
    if has_q {
        m.extend_from_slice(&packet[12..question_end]);
    }
    vec![m]
}

/// Cuts `records` (whole wire records) into messages: each has the
/// request's ID and question, AA, and up to [`MESSAGE_BYTES`] of records.
fn pack(packet: &[u8], question_end: usize, records: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < records.len() || out.is_empty() {
        let mut m = Vec::with_capacity(MESSAGE_BYTES + 512);
        m.extend_from_slice(&packet[..2]);
        let rd = u16::from(packet[2] & 0x01) << 8;
        m.extend_from_slice(&(flags::QR | flags::AA | rd).to_be_bytes());
        m.extend_from_slice(&1u16.to_be_bytes());
        m.extend_from_slice(&[0; 6]);
        m.extend_from_slice(&packet[12..question_end]);
        let start = m.len();
        let mut n = 0u16;
        while i < records.len() && (n == 0 || m.len() - start + records[i].len() <= MESSAGE_BYTES) {
            m.extend_from_slice(records[i]);
            n += 1;
            i += 1;
        }
        m[6..8].copy_from_slice(&n.to_be_bytes());
        out.push(m);
    }
    out
}

/// Signs each message (RFC 8945 §5.3.1): the first with the request's
/// MAC, each next one with the MAC of the one before.
fn sign_stream(
    messages: &mut [Vec<u8>],
    signer: &TSigner,
    request_mac: Vec<u8>,
    id: u16,
) -> Result<(), String> {
    let now = now();
    let mut prev_mac = Vec::new();
    for (i, m) in messages.iter_mut().enumerate() {
        let record = if i == 0 {
            let ctx = TSigResponseContext::new(id, now, signer.clone(), request_mac.clone(), None);
            *ctx.sign(m).map_err(|e| e.to_string())?
        } else {
            let mut tbs = Vec::with_capacity(prev_mac.len() + m.len() + 10);
            tbs.extend_from_slice(&(prev_mac.len() as u16).to_be_bytes());
            tbs.extend_from_slice(&prev_mac);
            tbs.extend_from_slice(m);
            tbs.extend_from_slice(&now.to_be_bytes()[2..8]);
            tbs.extend_from_slice(&signer.fudge().to_be_bytes());
            let mac = signer.sign(&tbs).map_err(|e| e.to_string())?;
            let stub = TSIG::new(
                signer.algorithm().clone(),
                now,
                signer.fudge(),
                mac,
                id,
                None,
                Vec::new(),
            );
            make_tsig_record(signer.signer_name().clone(), stub)
        };
        prev_mac = record.data.mac.clone();
        append_record(m, &record);
    }
    Ok(())
}

/// Appends a record to a message's additional section.
pub(super) fn append_record(m: &mut Vec<u8>, r: &Record<TSIG>) {
    let mut buf = Vec::new();
    let mut enc = BinEncoder::new(&mut buf);
    if r.emit(&mut enc).is_err() {
        return;
    }
    m.extend_from_slice(&buf);
    let ar = u16::from_be_bytes([m[10], m[11]]).saturating_add(1);
    m[10..12].copy_from_slice(&ar.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query(t: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        q.extend_from_slice(b"\x07example\x04test\x00");
        q.extend_from_slice(&t.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        q
    }

    #[test]
    fn transfer_requests_are_told_apart() {
        assert_eq!(crate::xfr::transfer_type(&query(252)), Some(252));
        assert_eq!(crate::xfr::transfer_type(&query(251)), Some(251));
        assert_eq!(crate::xfr::transfer_type(&query(1)), None);
        let mut answer = query(252);
        answer[2] |= 0x80;
        assert_eq!(crate::xfr::transfer_type(&answer), None);
        let mut notify = query(252);
        notify[2] = 4 << 3;
        assert_eq!(crate::xfr::transfer_type(&notify), None);
        assert_eq!(crate::xfr::transfer_type(&query(252)[..20]), None);
    }

    #[test]
    fn records_are_cut_into_messages_each_with_the_question() {
        let q = query(252);
        let qend = question_end(&q).unwrap();
        let big = vec![0u8; 1000];
        let records: Vec<&[u8]> = (0..40).map(|_| big.as_slice()).collect();
        let m = pack(&q, qend, &records);
        assert_eq!(m.len(), 3, "16 KB of records per message");
        let total: u16 = m.iter().map(|m| u16::from_be_bytes([m[6], m[7]])).sum();
        assert_eq!(total, 40);
        for msg in &m {
            assert_eq!(&msg[..2], &[0x12, 0x34]);
            assert_eq!(msg[2] & 0x84, 0x84, "QR and AA");
            assert_eq!(&msg[12..qend], &q[12..qend]);
            assert!(msg.len() <= MESSAGE_BYTES + qend);
        }
        // nothing to send is still one message
        assert_eq!(pack(&q, qend, &[]).len(), 1);
    }

    #[test]
    fn errors_keep_the_id_and_question() {
        let q = query(252);
        let qend = question_end(&q).unwrap();
        let m = &error(&q, qend, rcode::REFUSED)[0];
        assert_eq!(&m[..2], &q[..2]);
        assert_eq!(m[3] & 0x0f, 5);
        assert_eq!(u16::from_be_bytes([m[4], m[5]]), 1);
        assert_eq!(&m[12..], &q[12..qend]);
    }
}
