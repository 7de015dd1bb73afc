//! Zone transfers, control's side (SPEC §10): each zone taken from a
//! primary is transferred at start, when its SOA refresh (or, after a
//! failure, retry) timer runs out, and when the primary NOTIFYs; a good
//! transfer is checked against the zone rules, kept on disk beside the
//! state file and served through a reload. When the serial of a zone with
//! `notify` addresses changes, each is NOTIFYed until it acknowledges.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::rr::{Name, RData, Record, RecordType};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Control;
use crate::config::{Config, Zone};
use crate::metrics::ZoneResultLabels;
use crate::state::Compiled;
use crate::xfr::inbound::{self, Fetched};

/// A transfer gives up after this long.
const TRANSFER_LIMIT: Duration = Duration::from_secs(60);
/// Shortest wait between two checks of a primary (a SOA refresh of 0).
const MIN_WAIT: Duration = Duration::from_secs(5);
/// Wait after a failure when no SOA says how long.
const DEFAULT_RETRY: Duration = Duration::from_secs(60);

/// Record types signpost makes itself and does not keep from a primary.
const DNSSEC_TYPES: [RecordType; 7] = [
    RecordType::RRSIG,
    RecordType::NSEC,
    RecordType::NSEC3,
    RecordType::NSEC3PARAM,
    RecordType::DNSKEY,
    RecordType::CDS,
    RecordType::CDNSKEY,
];

/// One zone taken from a primary.
struct Inbound {
    due: Instant,
    busy: bool,
    /// The copy served: serial and records (for IXFR).
    have: Option<(u32, Arc<Vec<Record>>)>,
    refresh: Duration,
    retry: Duration,
    /// A NOTIFY came while a transfer was under way: another one follows.
    again: bool,
    status: TransferStatus,
}

/// What the status shows of a zone's source.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq, utoipa::ToSchema)]
pub struct TransferStatus {
    /// The primary.
    pub primary: String,
    /// The serial of the copy served, if any.
    #[schema(value_type = Option<u64>, maximum = 4294967295_u64)]
    pub serial: Option<u32>,
    /// When the last transfer (or check) succeeded.
    pub last_ok: Option<String>,
    /// How the last transfer came (AXFR, IXFR, up to date).
    pub last_result: Option<String>,
    /// The last failure, if the last try failed.
    pub error: Option<String>,
}

/// A transfer finished beside the loop.
pub(super) struct Done {
    zone: String,
    result: Result<Outcome, String>,
}

enum Outcome {
    UpToDate(u32),
    Stored {
        serial: u32,
        how: &'static str,
        records: Arc<Vec<Record>>,
    },
    Rejected(String),
}

/// A NOTIFY round finished.
pub(super) struct Notified {
    zone: String,
    to: SocketAddr,
    result: Result<u32, String>,
}

/// Control's transfer state.
pub(super) struct Transfers {
    inbound: HashMap<String, Inbound>,
    done_tx: mpsc::UnboundedSender<Done>,
    /// Finished transfers.
    pub done_rx: mpsc::UnboundedReceiver<Done>,
    /// NOTIFYs from primaries, passed on by the answer path.
    pub refresh_tx: mpsc::UnboundedSender<String>,
    /// See `refresh_tx`.
    pub refresh_rx: mpsc::UnboundedReceiver<String>,
    /// The serial each zone's secondaries were last told of.
    told: HashMap<String, u32>,
    sending: HashMap<(String, SocketAddr), tokio::task::AbortHandle>,
    notified_tx: mpsc::UnboundedSender<Notified>,
    /// Finished NOTIFY rounds.
    pub notified_rx: mpsc::UnboundedReceiver<Notified>,
}

impl Transfers {
    pub fn new(config: &Config) -> Transfers {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let (refresh_tx, refresh_rx) = mpsc::unbounded_channel();
        let (notified_tx, notified_rx) = mpsc::unbounded_channel();
        let mut t = Transfers {
            inbound: HashMap::new(),
            done_tx,
            done_rx,
            refresh_tx,
            refresh_rx,
            told: HashMap::new(),
            sending: HashMap::new(),
            notified_tx,
            notified_rx,
        };
        t.configure(config);
        t
    }

    /// The zones taken from primaries in `config`: new ones are due now,
    /// kept ones keep their state.
    pub fn configure(&mut self, config: &Config) {
        let mut next = HashMap::new();
        for z in &config.zones {
            let Some(p) = &z.primary else {
                continue;
            };
            let kept = self
                .inbound
                .remove(&z.name)
                .filter(|i| i.status.primary == p.addr.to_string());
            let entry = kept.unwrap_or_else(|| {
                let have = read_copy(z);
                let (refresh, retry) = have
                    .as_ref()
                    .map_or((MIN_WAIT, DEFAULT_RETRY), |(_, r)| timers(r));
                Inbound {
                    due: Instant::now(),
                    busy: false,
                    status: TransferStatus {
                        primary: p.addr.to_string(),
                        serial: have.as_ref().map(|(s, _)| *s),
                        ..TransferStatus::default()
                    },
                    have,
                    refresh,
                    retry,
                    again: false,
                }
            });
            next.insert(z.name.clone(), entry);
        }
        self.inbound = next;
    }

    /// The status of a zone taken from a primary.
    pub fn status(&self, zone: &str) -> Option<TransferStatus> {
        self.inbound.get(zone).map(|i| i.status.clone())
    }
}

/// The copy on disk, read back as records (for IXFR after a restart).
fn read_copy(z: &Zone) -> Option<(u32, Arc<Vec<Record>>)> {
    let (serial, records) = inbound::read_copy(&z.file)?;
    Some((serial, Arc::new(records)))
}

/// The SOA's refresh and retry, bounded below.
fn timers(records: &[Record]) -> (Duration, Duration) {
    records
        .iter()
        .find_map(|r| match &r.data {
            RData::SOA(s) => Some((
                Duration::from_secs(u64::from(s.refresh.max(0) as u32)).max(MIN_WAIT),
                Duration::from_secs(u64::from(s.retry.max(0) as u32)).max(MIN_WAIT),
            )),
            _ => None,
        })
        .unwrap_or((DEFAULT_RETRY, DEFAULT_RETRY))
}

impl Control {
    /// When the loop must wake to transfer a zone.
    pub(super) fn next_transfer(&self) -> Option<Instant> {
        self.transfers
            .inbound
            .values()
            .filter(|i| !i.busy)
            .map(|i| i.due)
            .min()
    }

    /// A NOTIFY from a zone's primary: transfer it now.
    pub(super) fn primary_notified(&mut self, zone: String) {
        if let Some(i) = self.transfers.inbound.get_mut(&zone) {
            self.metrics
                .notify_received
                .get_or_create(&ZoneResultLabels {
                    zone: zone.clone(),
                    result: "accepted".into(),
                })
                .inc();
            tracing::info!("zone {zone}: NOTIFY from its primary {}", i.status.primary);
            i.due = Instant::now();
            // the transfer under way may have asked before the change
            i.again = i.busy;
        }
    }

    /// Starts the transfers that are due.
    pub(super) fn start_transfers(&mut self) {
        let now = Instant::now();
        let config = self.compiled.config.clone();
        for z in &config.zones {
            let Some(p) = &z.primary else {
                continue;
            };
            let Some(i) = self.transfers.inbound.get_mut(&z.name) else {
                continue;
            };
            if i.busy || i.due > now {
                continue;
            }
            i.busy = true;
            let tsig = p
                .tsig
                .as_ref()
                .and_then(|k| config.tsig.get(k))
                .map(|k| k.signer());
            let tsig = match tsig.transpose() {
                Ok(t) => t,
                Err(e) => {
                    i.busy = false;
                    i.due = now + DEFAULT_RETRY;
                    i.status.error = Some(e);
                    continue;
                }
            };
            let have = i.have.clone();
            let tx = self.transfers.done_tx.clone();
            let zone = z.clone();
            let addr = p.addr;
            let services: Vec<String> = config
                .services
                .iter()
                .filter(|s| s.zone == z.name)
                .map(|s| s.name.clone())
                .collect();
            tokio::spawn(async move {
                let result = transfer(&zone, addr, tsig.as_ref(), have, &services).await;
                let _ = tx.send(Done {
                    zone: zone.name.clone(),
                    result,
                });
            });
        }
    }

    /// A transfer finished: count it, keep its state, serve a new copy.
    pub(super) fn transfer_done(&mut self, d: Done) {
        let Some(i) = self.transfers.inbound.get_mut(&d.zone) else {
            return; // the zone left the configuration meanwhile
        };
        i.busy = false;
        let again = std::mem::take(&mut i.again);
        let mut reload = false;
        let now = Instant::now();
        let label = |result: &str| ZoneResultLabels {
            zone: d.zone.clone(),
            result: result.into(),
        };
        match d.result {
            Ok(Outcome::UpToDate(serial)) => {
                self.metrics
                    .xfr_in
                    .get_or_create(&label("up_to_date"))
                    .inc();
                tracing::debug!("zone {}: up to date at serial {serial}", d.zone);
                i.status.last_ok = Some(crate::text::now_rfc3339());
                i.status.last_result = Some("up to date".into());
                i.status.error = None;
                i.due = now + i.refresh;
            }
            Ok(Outcome::Stored {
                serial,
                how,
                records,
            }) => {
                self.metrics.xfr_in.get_or_create(&label("ok")).inc();
                tracing::info!(
                    "zone {}: {how} from {} to serial {serial}, {} records",
                    d.zone,
                    i.status.primary,
                    records.len()
                );
                let (refresh, retry) = timers(&records);
                i.refresh = refresh;
                i.retry = retry;
                i.have = Some((serial, records));
                i.status.serial = Some(serial);
                i.status.last_ok = Some(crate::text::now_rfc3339());
                i.status.last_result = Some(how.into());
                i.status.error = None;
                i.due = now + refresh;
                reload = true;
            }
            Ok(Outcome::Rejected(why)) => {
                self.metrics.xfr_in.get_or_create(&label("rejected")).inc();
                tracing::error!(
                    "zone {}: the transfer from {} is rejected ({why}); the previous copy keeps serving",
                    d.zone,
                    i.status.primary
                );
                i.status.error = Some(format!("rejected: {why}"));
                i.due = now + i.retry;
            }
            Err(e) => {
                self.metrics.xfr_in.get_or_create(&label("failed")).inc();
                tracing::warn!(
                    "zone {}: transfer from {} failed: {e}; trying again in {}s",
                    d.zone,
                    i.status.primary,
                    i.retry.as_secs()
                );
                i.status.error = Some(e);
                i.due = now + i.retry;
            }
        }
        if again {
            // a NOTIFY arrived during the transfer: ask again at once
            i.due = now;
        }
        if reload {
            self.request_reload(format!("transfer of {}", d.zone), None);
        }
    }

    /// NOTIFYs the secondaries of every zone whose serial is not the one
    /// they were last told of.
    pub(super) fn notify_secondaries(&mut self) {
        let c = self.compiled.clone();
        for (zi, t) in c.transfers.iter().enumerate() {
            let (Some(t), Some(z)) = (t, c.config.zones.get(zi)) else {
                continue;
            };
            if t.notify.is_empty() || self.transfers.told.get(&z.name) == Some(&t.serial) {
                continue;
            }
            self.transfers.told.insert(z.name.clone(), t.serial);
            let key = t.tsig.as_ref().map(|(k, _)| k);
            let msg = match crate::xfr::notify::message(&z.name, &t.soa, key) {
                Ok(m) => m,
                Err(e) => {
                    tracing::error!("zone {}: cannot make a NOTIFY: {e}", z.name);
                    continue;
                }
            };
            for &to in &t.notify {
                let tx = self.transfers.notified_tx.clone();
                let (zone, msg) = (z.name.clone(), msg.clone());
                let task = tokio::spawn(async move {
                    let result = crate::xfr::notify::send(&msg, to).await;
                    let _ = tx.send(Notified { zone, to, result });
                });
                // a newer serial replaces a NOTIFY still unanswered
                if let Some(old) = self
                    .transfers
                    .sending
                    .insert((z.name.clone(), to), task.abort_handle())
                {
                    old.abort();
                }
            }
            tracing::info!(
                "zone {}: serial {}, NOTIFY to {}",
                z.name,
                t.serial,
                t.notify
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }

    /// A reload that changed what a zone's transfers carry (its static
    /// records or a service's fallback) under the same serial is served,
    /// but the secondaries will not take it: say so.
    pub(super) fn warn_same_serial(old: &Compiled, new: &Compiled) {
        for (zi, t) in new.transfers.iter().enumerate() {
            let (Some(t), Some(z)) = (t, new.config.zones.get(zi)) else {
                continue;
            };
            let before = old
                .config
                .zones
                .iter()
                .position(|o| o.name == z.name)
                .and_then(|oi| old.transfers.get(oi)?.as_ref());
            if let Some(b) = before
                && b.serial == t.serial
                && !b.same_data(t)
            {
                tracing::warn!(
                    "zone {}: the static records or fallbacks changed but the serial is still {}; secondaries keep the old data until it grows",
                    z.name,
                    t.serial
                );
            }
        }
    }

    /// A NOTIFY round finished.
    pub(super) fn notified(&mut self, n: Notified) {
        self.transfers.sending.remove(&(n.zone.clone(), n.to));
        let result = match &n.result {
            Ok(tries) => {
                tracing::debug!(
                    "zone {}: {} acknowledged the NOTIFY after {tries} tries",
                    n.zone,
                    n.to
                );
                "acknowledged"
            }
            Err(e) => {
                tracing::warn!("zone {}: NOTIFY to {}: {e}", n.zone, n.to);
                "failed"
            }
        };
        self.metrics
            .notify_sent
            .get_or_create(&ZoneResultLabels {
                zone: n.zone,
                result: result.into(),
            })
            .inc();
    }
}

/// One transfer: fetched (IXFR from the copy held, AXFR when the primary
/// will not), checked against the zone rules, and stored beside the copy.
async fn transfer(
    zone: &Zone,
    primary: SocketAddr,
    tsig: Option<&hickory_proto::rr::TSigner>,
    have: Option<(u32, Arc<Vec<Record>>)>,
    services: &[String],
) -> Result<Outcome, String> {
    let apex = Name::from_ascii(&zone.name).map_err(|e| e.to_string())?;
    let held = have.as_ref().map(|(s, r)| (*s, r.as_slice()));
    let fetched = match inbound::fetch(primary, &apex, tsig, held, TRANSFER_LIMIT).await {
        Err(e) if held.is_some() && e.contains("asking for AXFR") => {
            inbound::fetch(primary, &apex, tsig, None, TRANSFER_LIMIT).await?
        }
        r => r?,
    };
    let (serial, how, mut records) = match fetched {
        Fetched::UpToDate(s) => return Ok(Outcome::UpToDate(s)),
        Fetched::Zone {
            serial,
            how,
            records,
        } => (serial, how, records),
    };
    if let Some((h, _)) = &have
        && !inbound::newer(serial, *h)
    {
        return Ok(Outcome::UpToDate(*h));
    }
    // signpost signs itself: the primary's DNSSEC records are not kept
    records.retain(|r| !DNSSEC_TYPES.contains(&r.record_type()));
    let path = zone.file.clone();
    let name = zone.name.clone();
    let services = services.to_vec();
    let records = Arc::new(records);
    let kept = records.clone();
    tokio::task::spawn_blocking(move || inbound::store(&name, &path, &kept, &services))
        .await
        .map_err(|e| format!("storing the copy: {e}"))?
        .map(|()| Outcome::Stored {
            serial,
            how,
            records,
        })
        .or_else(|why| match why {
            inbound::Store::Rejected(w) => Ok(Outcome::Rejected(w)),
            inbound::Store::Io(e) => Err(e),
        })
}
