//! Re-signing: when a signature window ends, or a key's timing point
//! (publish, activate, inactive, delete) passes, the zones are signed
//! anew beside the loop and the new signatures swapped in. A failure
//! keeps the signatures served (they stay valid for `refresh` more) and
//! is tried again a minute later.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::Control;
use crate::state::Compiled;

/// How long after a timing point re-signing starts.
const SLACK: Duration = Duration::from_millis(100);

/// Wait before trying a failed re-signing again.
const RETRY: Duration = Duration::from_secs(60);

/// Re-signing under way or planned.
pub(super) struct Signing {
    /// A re-signing is being made.
    busy: bool,
    /// A failed one is tried again then.
    retry_at: Option<Instant>,
    done_tx: mpsc::UnboundedSender<Resigned>,
    /// Finished re-signings.
    pub done_rx: mpsc::UnboundedReceiver<Resigned>,
}

/// A configuration signed anew beside the loop.
pub(super) struct Resigned {
    /// What it was signed from; stale if a reload swapped meanwhile.
    base: Arc<Compiled>,
    result: Result<Compiled, String>,
}

impl Signing {
    pub fn new() -> Signing {
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        Signing {
            busy: false,
            retry_at: None,
            done_tx,
            done_rx,
        }
    }
}

impl Control {
    /// When the loop must wake to re-sign.
    pub(super) fn next_signing(&self) -> Option<Instant> {
        if self.signing.busy {
            return None;
        }
        if let Some(t) = self.signing.retry_at {
            return Some(t);
        }
        let at = self.compiled.dnssec.as_ref()?.next_event;
        // an absolute moment, however often the loop asks: a little after
        // the second the timing point names, so that it has passed
        let at = std::time::UNIX_EPOCH + Duration::from_secs(at.max(0) as u64) + SLACK;
        let wait = at
            .duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO);
        Some(Instant::now() + wait.min(Duration::from_secs(86_400 * 365)))
    }

    /// Signs the zones anew on a blocking thread.
    pub(super) fn start_signing(&mut self) {
        self.signing.busy = true;
        self.signing.retry_at = None;
        let base = self.compiled.clone();
        let metrics = self.metrics.clone();
        let tx = self.signing.done_tx.clone();
        tokio::task::spawn_blocking(move || {
            let result = match base.resigned(crate::dnssec::unix_now(), &metrics) {
                Some(r) => r,
                None => Err("no zone is signed".into()),
            };
            if tx.send(Resigned { base, result }).is_err() {
                tracing::debug!("zones signed after shutdown");
            }
        });
    }

    /// Serves the new signatures, or keeps the old and says why.
    pub(super) fn apply_signing(&mut self, r: Resigned) {
        self.signing.busy = false;
        if !Arc::ptr_eq(&r.base, &self.compiled) {
            tracing::debug!("a reload came first; it signed the zones itself");
            return;
        }
        match r.result {
            Ok(c) => {
                let c = Arc::new(c);
                if let Some(d) = &c.dnssec {
                    for z in &d.status {
                        tracing::info!(
                            "zone {} signed anew: keys {}, signatures valid until {}",
                            z.zone,
                            z.keys
                                .iter()
                                .map(|k| format!("{} {}", k.tag, k.state))
                                .collect::<Vec<_>>()
                                .join(", "),
                            crate::text::rfc3339(
                                std::time::UNIX_EPOCH
                                    + Duration::from_secs(z.expiration.max(0) as u64)
                            ),
                        );
                    }
                }
                let old = std::mem::replace(&mut self.compiled, c);
                super::reload::retire(old);
                self.publish();
            }
            Err(e) => {
                tracing::error!(
                    "signing the zones anew failed: {e}; the signatures served stay until they expire, trying again in {}s",
                    RETRY.as_secs()
                );
                self.signing.retry_at = Some(Instant::now() + RETRY);
            }
        }
    }

    /// The signature expiry of each signed zone, for the metrics.
    pub(super) fn export_signing(&self) {
        let zones: Vec<(String, i64)> = self
            .compiled
            .dnssec
            .as_ref()
            .map(|d| {
                d.status
                    .iter()
                    .map(|z| (z.zone.clone(), z.expiration))
                    .collect()
            })
            .unwrap_or_default();
        if let Ok(mut m) = self.metrics.dnssec_expiration.lock() {
            *m = zones;
        }
    }
}
