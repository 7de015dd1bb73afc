//! NOTIFY (RFC 1996). Out: when a zone's serial grows, each `notify`
//! address is told, over UDP, signed with the zone's TSIG key when it has
//! one, and told again with a growing wait until it acknowledges. In: a
//! zone taken from a primary accepts a NOTIFY from that primary (over UDP
//! or TCP, with its key when one is set) and asks control to transfer now.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use hickory_proto::op::{Message, ResponseCode};
use hickory_proto::rr::TSigResponseContext;
use tokio::net::UdpSocket;

use super::{OPCODE_NOTIFY, flags, now};
use crate::config::TsigKey;
use crate::state::Snapshot;

/// First wait for an acknowledgement; it doubles up to [`MAX_WAIT`].
const FIRST_WAIT: Duration = Duration::from_secs(1);
/// Longest wait between two tries.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// After this long without an acknowledgement, give up until the next change.
const GIVE_UP: Duration = Duration::from_secs(3600);

/// The NOTIFY message for `zone`: its SOA record (whole, in wire form) in
/// the answer section.
pub fn message(zone: &str, soa: &[u8], tsig: Option<&TsigKey>) -> Result<Vec<u8>, String> {
    let apex = crate::zone::text_wire(zone);
    let apex = apex.as_slice();
    let mut m = Vec::with_capacity(12 + apex.len() + 4 + soa.len());
    let id = super::random_id()?;
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&((u16::from(OPCODE_NOTIFY) << 11) | flags::AA).to_be_bytes());
    m.extend_from_slice(&[0, 1, 0, 1, 0, 0, 0, 0]);
    m.extend_from_slice(apex);
    m.extend_from_slice(&[0, 6, 0, 1]); // SOA IN
    m.extend_from_slice(soa);
    let Some(key) = tsig else {
        return Ok(m);
    };
    let signer = key.signer()?;
    let mut msg = Message::from_vec(&m).map_err(|e| format!("NOTIFY: {e}"))?;
    msg.finalize(&signer, now())
        .map_err(|e| format!("signing NOTIFY: {e}"))?;
    msg.to_vec().map_err(|e| format!("NOTIFY: {e}"))
}

/// Sends `msg` to `to` until it is acknowledged (a NOERROR answer with
/// its ID), waiting 1 s, 2 s, ... up to a minute between tries, for at
/// most an hour. `Ok(tries)` once acknowledged.
pub async fn send(msg: &[u8], to: SocketAddr) -> Result<u32, String> {
    let bind: SocketAddr = if to.is_ipv4() {
        "0.0.0.0:0".parse().map_err(|_| "bind")?
    } else {
        "[::]:0".parse().map_err(|_| "bind")?
    };
    let sock = UdpSocket::bind(bind)
        .await
        .map_err(|e| format!("a socket for NOTIFY: {e}"))?;
    let id = [msg[0], msg[1]];
    let started = tokio::time::Instant::now();
    let mut wait = FIRST_WAIT;
    let mut tries = 0u32;
    let mut last = String::from("no answer");
    let mut buf = [0u8; 4096];
    while started.elapsed() < GIVE_UP {
        tries += 1;
        let deadline = tokio::time::Instant::now() + wait;
        if let Err(e) = sock.send_to(msg, to).await {
            last = format!("send: {e}");
        } else {
            loop {
                match tokio::time::timeout_at(deadline, sock.recv_from(&mut buf)).await {
                    Err(_) => break,
                    Ok(Err(e)) => {
                        last = format!("receive: {e}");
                        break;
                    }
                    Ok(Ok((n, from))) => {
                        if from != to || n < 12 || buf[..2] != id || buf[2] & 0x80 == 0 {
                            continue;
                        }
                        let rcode = buf[3] & 0x0f;
                        if rcode == 0 {
                            return Ok(tries);
                        }
                        last = format!("answered {}", ResponseCode::from(0, rcode).to_str());
                        break;
                    }
                }
            }
        }
        // back off: 1 s, 2 s, 4 s, ... 1 min between tries
        tokio::time::sleep_until(deadline).await;
        wait = (wait * 2).min(MAX_WAIT);
    }
    Err(format!("{last} after {tries} tries in an hour"))
}

/// A NOTIFY that arrived: answered here, passed to control when it comes
/// from the zone's primary (with the zone's key, when it has one).
/// Returns the answer's length.
pub fn receive(snap: &Snapshot, packet: &[u8], src: IpAddr, out: &mut [u8]) -> Option<usize> {
    if packet.len() < 12 || packet[2] & 0x80 != 0 {
        return None; // an answer to a NOTIFY of ours, or noise
    }
    let msg = Message::from_vec(packet).ok();
    let qend = super::name_end(packet, 12).map(|e| e + 4);
    let zone = msg
        .as_ref()
        .and_then(|m| m.queries.first())
        .map(|q| q.name().to_lowercase().to_ascii());
    let data = &snap.data;
    let z = zone
        .as_ref()
        .and_then(|n| data.config.zones.iter().find(|z| z.name == *n));
    let (code, signer) = match (msg.as_ref(), z, z.and_then(|z| z.primary.as_ref())) {
        (None, _, _) => (ResponseCode::FormErr, None),
        (_, None, _) => (ResponseCode::NotAuth, None),
        (_, Some(_), None) => (ResponseCode::Refused, None),
        (Some(m), Some(_), Some(p)) if p.addr.ip().to_canonical() == src => {
            match p.tsig.as_ref().and_then(|k| data.config.tsig.get(k)) {
                None => (ResponseCode::NoError, None),
                Some(key) => match (key.signer(), m.signature()) {
                    (Ok(s), Some(_)) => match s.verify_message_byte(packet, None, true) {
                        Ok((mac, _, window)) if window.contains(&now()) => {
                            (ResponseCode::NoError, Some((s, mac)))
                        }
                        _ => (ResponseCode::NotAuth, None),
                    },
                    _ => (ResponseCode::NotAuth, None),
                },
            }
        }
        _ => (ResponseCode::Refused, None),
    };
    if code == ResponseCode::NoError
        && let (Some(tx), Some(name)) = (&snap.refresh, &zone)
    {
        // control transfers the zone; a full queue means one is pending
        let _ = tx.send(name.clone());
    }
    // the answer: header and question, AA, signed when the NOTIFY was
    let qend = qend.filter(|&e| e <= packet.len()).unwrap_or(12);
    let len = qend;
    let head = out.get_mut(..len)?;
    head.copy_from_slice(&packet[..len]);
    // RD copied (RFC 1035); AA only on an accepted NOTIFY
    let rd = u16::from_be_bytes([packet[2], packet[3]]) & 0x0100;
    let aa = if code == ResponseCode::NoError {
        flags::AA
    } else {
        0
    };
    let f = flags::QR | aa | rd | (u16::from(OPCODE_NOTIFY) << 11) | u16::from(code);
    head[2..4].copy_from_slice(&f.to_be_bytes());
    head[4..6].copy_from_slice(&u16::from(qend > 12).to_be_bytes());
    head[6..12].copy_from_slice(&[0; 6]);
    let mut m = out[..len].to_vec();
    if let Some((s, mac)) = signer {
        let id = u16::from_be_bytes([packet[0], packet[1]]);
        if let Ok(rec) = TSigResponseContext::new(id, now(), s, mac, None).sign(&m) {
            super::outbound::append_record(&mut m, &rec);
        }
    }
    let n = m.len();
    out.get_mut(..n)?.copy_from_slice(&m);
    Some(n)
}
