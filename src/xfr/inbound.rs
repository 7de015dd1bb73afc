//! The transfer client (RFC 5936, RFC 1995): takes a zone from its
//! primary over TCP, as an IXFR from the serial held (applied to the
//! records held) or an AXFR, every message's TSIG checked when the zone
//! names a key. The caller (control) checks the result against SPEC §3
//! and keeps it on disk.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, Name, RData, Record, RecordType, SerialNumber, TSigner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most messages one transfer may take (a bound on a primary that never
/// ends its stream).
const MAX_MESSAGES: usize = 100_000;

/// Most records one transfer may bring (a bound on memory).
const MAX_RECORDS: usize = 2_000_000;

/// What a transfer brought.
#[derive(Debug)]
pub enum Fetched {
    /// The primary has nothing newer than this serial.
    UpToDate(u32),
    /// The whole zone at `serial`: its records, the SOA first and once.
    Zone {
        /// The SOA serial.
        serial: u32,
        /// How it came: "AXFR", "IXFR" (incremental) or "IXFR, full".
        how: &'static str,
        /// The records.
        records: Vec<Record>,
    },
}

/// Transfers `zone` from `primary`: an IXFR from `have` (the serial and
/// records held) when there is a copy, else an AXFR. Every step is
/// bounded by `limit`.
pub async fn fetch(
    primary: SocketAddr,
    zone: &Name,
    tsig: Option<&TSigner>,
    have: Option<(u32, &[Record])>,
    limit: Duration,
) -> Result<Fetched, String> {
    tokio::time::timeout(limit, fetch_inner(primary, zone, tsig, have))
        .await
        .map_err(|_| format!("no complete transfer within {}s", limit.as_secs()))?
}

async fn fetch_inner(
    primary: SocketAddr,
    zone: &Name,
    tsig: Option<&TSigner>,
    have: Option<(u32, &[Record])>,
) -> Result<Fetched, String> {
    let mut q = Message::new(super::random_id()?, MessageType::Query, OpCode::Query);
    let ixfr = have.and_then(|(serial, records)| {
        let soa = records
            .iter()
            .find(|r| r.record_type() == RecordType::SOA)?;
        let mut soa = soa.clone();
        if let RData::SOA(s) = &mut soa.data {
            s.serial = serial;
        }
        Some(soa)
    });
    let t = if ixfr.is_some() {
        RecordType::IXFR
    } else {
        RecordType::AXFR
    };
    let mut question = Query::query(zone.clone(), t);
    question.set_query_class(DNSClass::IN);
    q.add_query(question);
    if let Some(soa) = ixfr {
        q.add_authority(soa);
    }
    let mut verifier = match tsig {
        Some(s) => Some(
            q.finalize(s, super::now())
                .map_err(|e| format!("signing the request: {e}"))?
                .ok_or("signing the request gave no verifier")?,
        ),
        None => None,
    };
    let bytes = q.to_vec().map_err(|e| format!("the request: {e}"))?;
    let mut stream = TcpStream::connect(primary)
        .await
        .map_err(|e| format!("connect to {primary}: {e}"))?;
    let mut framed = (bytes.len() as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&bytes);
    stream
        .write_all(&framed)
        .await
        .map_err(|e| format!("send to {primary}: {e}"))?;

    let mut records: Vec<Record> = Vec::new();
    let mut buf = vec![0u8; 65535];
    for _ in 0..MAX_MESSAGES {
        let mut len = [0u8; 2];
        stream
            .read_exact(&mut len)
            .await
            .map_err(|e| format!("the transfer stream ended early: {e}"))?;
        let n = u16::from_be_bytes(len) as usize;
        stream
            .read_exact(&mut buf[..n])
            .await
            .map_err(|e| format!("the transfer stream ended early: {e}"))?;
        let m = Message::from_vec(&buf[..n]).map_err(|e| format!("a malformed message: {e}"))?;
        if m.id != q.id || m.message_type != MessageType::Response {
            return Err("a message that is not the answer to the request".into());
        }
        if m.response_code != ResponseCode::NoError {
            let tsig = m
                .signature()
                .and_then(|s| s.data.error.as_ref())
                .map(|e| format!(" (TSIG {e:?})"))
                .unwrap_or_default();
            return Err(format!("the primary answered {}{tsig}", m.response_code));
        }
        if let Some(v) = verifier.as_mut() {
            v.verify(&buf[..n])
                .map_err(|e| format!("TSIG of the primary's answer: {e}"))?;
        }
        records.extend(m.answers.iter().cloned());
        if records.len() > MAX_RECORDS {
            return Err(format!("more than {MAX_RECORDS} records"));
        }
        if let Some(done) = complete(&records, have.map(|(s, _)| s)) {
            return done.and_then(|d| finish(d, records, have));
        }
    }
    Err(format!("more than {MAX_MESSAGES} messages"))
}

/// The forms of an answer.
enum Form {
    UpToDate(u32),
    Full(u32),
    Incremental(u32),
}

/// Whether `records` (all received so far) are a complete answer, and
/// of which form.
fn complete(records: &[Record], asked: Option<u32>) -> Option<Result<Form, String>> {
    let serial = |r: &Record| match &r.data {
        RData::SOA(s) => Some(s.serial),
        _ => None,
    };
    let first = match records.first().map(serial) {
        Some(Some(s)) => s,
        Some(None) => return Some(Err("the transfer does not start with the SOA".into())),
        None => return None,
    };
    if records.len() == 1 {
        // a message of one SOA answers an IXFR from a client up to date
        return match asked {
            Some(h) if !newer(first, h) => Some(Ok(Form::UpToDate(first))),
            Some(_) => Some(Err(
                "the primary answered the IXFR with its SOA alone; asking for AXFR next".into(),
            )),
            None => None,
        };
    }
    let last = serial(records.last()?)?;
    if last != first {
        return None;
    }
    let soas = records.iter().filter(|r| serial(r).is_some()).count();
    if serial(&records[1]).is_some() {
        // incremental: SOA new, (SOA from, deletions, SOA to, additions)*, SOA new
        (soas % 2 == 0 && soas >= 4).then_some(Ok(Form::Incremental(first)))
    } else {
        Some(Ok(Form::Full(first)))
    }
}

/// The zone from a complete answer.
fn finish(
    form: Form,
    records: Vec<Record>,
    have: Option<(u32, &[Record])>,
) -> Result<Fetched, String> {
    match form {
        Form::UpToDate(s) => Ok(Fetched::UpToDate(s)),
        Form::Full(serial) => {
            let mut records = records;
            records.pop(); // the closing SOA
            let how = if have.is_some() { "IXFR, full" } else { "AXFR" };
            Ok(Fetched::Zone {
                serial,
                how,
                records,
            })
        }
        Form::Incremental(serial) => {
            let (_, held) = have.ok_or("an incremental answer to an AXFR")?;
            let mut zone: Vec<Record> = held.to_vec();
            // skip the opening SOA; then (SOA, deletions, SOA, additions)*
            let body = &records[1..records.len() - 1];
            let mut i = 0;
            while i < body.len() {
                if body[i].record_type() != RecordType::SOA {
                    return Err("an incremental transfer out of order".into());
                }
                i += 1;
                while i < body.len() && body[i].record_type() != RecordType::SOA {
                    let del = &body[i];
                    zone.retain(|r| {
                        !(r.name == del.name
                            && r.record_type() == del.record_type()
                            && r.data == del.data)
                    });
                    i += 1;
                }
                let to = body
                    .get(i)
                    .ok_or("an incremental transfer without its new SOA")?;
                zone.retain(|r| r.record_type() != RecordType::SOA);
                zone.insert(0, to.clone());
                i += 1;
                while i < body.len() && body[i].record_type() != RecordType::SOA {
                    let add = &body[i];
                    if !zone.iter().any(|r| {
                        r.name == add.name
                            && r.record_type() == add.record_type()
                            && r.data == add.data
                    }) {
                        zone.push(add.clone());
                    }
                    i += 1;
                }
            }
            Ok(Fetched::Zone {
                serial,
                how: "IXFR",
                records: zone,
            })
        }
    }
}

/// Whether `have` is older than `serial` (RFC 1982).
pub fn newer(serial: u32, have: u32) -> bool {
    SerialNumber::new(serial) > SerialNumber::new(have)
}

/// A copy kept by [`store`], read back: its serial and records, the SOA
/// first (for IXFR after a restart).
pub fn read_copy(path: &Path) -> Option<(u32, Vec<Record>)> {
    let display = path.display().to_string();
    let bytes = crate::os::read_input(path).ok()?;
    let sets = crate::zone::parse_wire(&bytes, &display).ok()?;
    let mut records = Vec::new();
    let mut serial = None;
    for s in sets {
        for rd in s.rdatas {
            if let RData::SOA(soa) = &rd {
                serial = Some(soa.serial);
            }
            records.push(Record::from_rdata(s.name.clone(), s.ttl, rd));
        }
    }
    records.sort_by_key(|r| r.record_type() != RecordType::SOA);
    Some((serial?, records))
}

/// Why a transfer was not kept.
pub enum Store {
    /// It breaks a zone rule (the reason).
    Rejected(String),
    /// It could not be written (the error).
    Io(String),
}

/// Writes the records beside the copy (in wire form: they read back
/// exactly as they came), checks them as the zone loader will (a record
/// at a service name, out-of-zone data, no SOA...), then puts them in
/// the copy's place.
pub fn store(
    zone: &str,
    path: &Path,
    records: &[Record],
    services: &[String],
) -> Result<(), Store> {
    let bytes = crate::zone::write_wire(records).map_err(Store::Rejected)?;
    let tmp: PathBuf = path.with_extension("xfr.new");
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Store::Io(format!("{}: {e}", dir.display())))?;
    }
    let display = tmp.display().to_string();
    let checked = crate::zone::parse_wire(&bytes, &display)
        .map_err(|e| e.reason)
        .and_then(|sets| {
            let names: Vec<(&str, u32)> = services
                .iter()
                .enumerate()
                .map(|(i, s)| (s.as_str(), i as u32))
                .collect();
            crate::zone::Table::build(
                vec![crate::zone::ZoneInput {
                    name: zone,
                    file: &display,
                    rrsets: sets,
                }],
                &names,
            )
            .map(|_| ())
            .map_err(|es| {
                es.iter()
                    .map(|e| e.reason.clone())
                    .collect::<Vec<_>>()
                    .join("; ")
            })
        });
    if let Err(why) = checked {
        return Err(Store::Rejected(why));
    }
    std::fs::write(&tmp, &bytes).map_err(|e| Store::Io(format!("{}: {e}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(|e| Store::Io(format!("{}: {e}", path.display())))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::rr::rdata::{A, SOA};

    fn soa(serial: u32) -> Record {
        let n = Name::from_ascii("example.test.").unwrap();
        Record::from_rdata(
            n.clone(),
            300,
            RData::SOA(SOA::new(n.clone(), n, serial, 3600, 600, 604800, 60)),
        )
    }

    fn a(name: &str, last: u8) -> Record {
        Record::from_rdata(
            Name::from_ascii(name).unwrap(),
            300,
            RData::A(A::new(192, 0, 2, last)),
        )
    }

    #[test]
    fn a_full_transfer_ends_with_its_soa() {
        let mut r = vec![soa(5), a("www.example.test.", 1)];
        assert!(complete(&r, None).is_none(), "not ended yet");
        r.push(soa(5));
        let Some(Ok(Form::Full(5))) = complete(&r, None) else {
            panic!("a full transfer");
        };
        let Ok(Fetched::Zone {
            serial,
            records,
            how,
        }) = finish(Form::Full(5), r, None)
        else {
            panic!("a zone");
        };
        assert_eq!((serial, records.len(), how), (5, 2, "AXFR"));
    }

    #[test]
    fn one_soa_answers_an_ixfr_from_a_client_up_to_date() {
        assert!(matches!(
            complete(&[soa(5)], Some(5)),
            Some(Ok(Form::UpToDate(5)))
        ));
        assert!(matches!(
            complete(&[soa(5)], Some(7)),
            Some(Ok(Form::UpToDate(5)))
        ));
        assert!(matches!(complete(&[soa(6)], Some(5)), Some(Err(_))));
        assert!(complete(&[soa(6)], None).is_none());
    }

    #[test]
    fn an_incremental_transfer_is_applied_to_the_copy() {
        let held = vec![soa(5), a("www.example.test.", 1), a("old.example.test.", 2)];
        // 5 -> 6: delete old, add new
        let r = vec![
            soa(6),
            soa(5),
            a("old.example.test.", 2),
            soa(6),
            a("new.example.test.", 3),
        ];
        assert!(
            complete(&r, Some(5)).is_none(),
            "the closing SOA is missing"
        );
        let mut r = r;
        r.push(soa(6));
        let Some(Ok(Form::Incremental(6))) = complete(&r, Some(5)) else {
            panic!("an incremental transfer");
        };
        let Ok(Fetched::Zone {
            serial,
            records,
            how,
        }) = finish(Form::Incremental(6), r, Some((5, &held)))
        else {
            panic!("a zone");
        };
        assert_eq!((serial, how), (6, "IXFR"));
        let names: Vec<String> = records.iter().map(|r| r.name.to_ascii()).collect();
        assert!(names.contains(&"new.example.test.".to_string()));
        assert!(!names.contains(&"old.example.test.".to_string()));
        assert!(matches!(&records[0].data, RData::SOA(s) if s.serial == 6));
        assert_eq!(records.len(), 3);
    }

    #[test]
    fn serials_compare_in_rfc_1982_arithmetic() {
        assert!(newer(6, 5));
        assert!(!newer(5, 5));
        assert!(newer(1, u32::MAX));
        assert!(!newer(u32::MAX, 1));
    }
}
