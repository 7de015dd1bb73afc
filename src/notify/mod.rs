//! Webhook notifications (SPEC §11): health, drain, dial, reload and
//! cluster events POSTed as JSON to each `[[notify.webhook]]`.
//!
//! **What.** [`Notifier::send`] takes an [`Event`] from the control loop
//! (or any room above), stamps it with the time and this node's name,
//! writes its JSON body once, and appends it to the outbox of every
//! webhook that wants its kind. Each outbox has a task of its own that
//! POSTs its events one at a time, in order, signed with HMAC-SHA256
//! when the webhook has a secret (`X-Signpost-Signature`).
//!
//! **Why this way.** A receiver that is down, slow, or answers 500 is the
//! normal case, not an edge: it must never delay an answer or the control
//! loop. So `send` never awaits: it takes each outbox's mutex only to
//! push (the task holds it only to look at or pop the head), and never
//! touches the network. The answer path does not come here at all.
//!
//! **How it fails.** A failed delivery (a status other than 2xx, no
//! connection, the webhook's `timeout`) is retried, the same event again,
//! after a back-off of 0.5 s doubling to 30 s (with jitter); the events
//! behind it wait, so a receiver sees them in order. An outbox holds at
//! most `queue` events: a full one drops its oldest for the newest, and
//! an event not delivered within an hour is given up; both are counted
//! (`signpost_webhook_dropped_total`) and logged. Events still queued
//! when signpost stops are lost: they live in memory only.
//!
//! **Reloads.** [`Notifier::configure`] follows a new configuration: a
//! webhook whose URL stays keeps its outbox and its queued events (with
//! the new secret, events, timeout and bound), a new one gets an outbox,
//! a removed one's task stops.

mod event;
mod outbox;
mod queue;

use std::sync::Arc;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::config::{Config, Webhook};
use crate::metrics::Metrics;
pub use event::{
    ClusterAction, ClusterChange, Dial, DialAction, Drain, DrainAction, Event, Health, HealthKind,
    Reload,
};
pub use outbox::signature;
use outbox::{Hook, Outbox};
pub use queue::MAX_AGE;

/// The handle every sender holds: cheap to clone, never blocks.
#[derive(Clone)]
pub struct Notifier {
    inner: Arc<Inner>,
}

struct Inner {
    /// `node` in every body.
    node: String,
    metrics: Arc<Metrics>,
    stop: watch::Receiver<bool>,
    outboxes: ArcSwap<Vec<Arc<Outbox>>>,
    /// Numbers the events of this process, for `X-Signpost-Id`.
    sent: std::sync::atomic::AtomicU64,
    /// Makes ids unique across restarts.
    started: u64,
}

/// The name events carry as `node`: `[cluster] node`, else the host's
/// name, else `signpost`.
pub fn node_name(config: &Config) -> String {
    config
        .cluster
        .as_ref()
        .map(|c| c.node.clone())
        .or_else(crate::os::hostname)
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "signpost".to_string())
}

impl Notifier {
    /// Starts an outbox per webhook; their tasks end when `stop` turns
    /// true. Must be called inside the tokio runtime.
    pub fn start(
        webhooks: &[Webhook],
        node: String,
        metrics: Arc<Metrics>,
        stop: watch::Receiver<bool>,
    ) -> Notifier {
        let started = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let n = Notifier {
            inner: Arc::new(Inner {
                node,
                metrics,
                stop,
                outboxes: ArcSwap::from_pointee(Vec::new()),
                sent: std::sync::atomic::AtomicU64::new(0),
                started,
            }),
        };
        n.configure(webhooks);
        n
    }

    /// The name events carry as `node`.
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Follows a reload: outboxes are matched by URL, so a kept webhook
    /// keeps its queued events; removed ones stop.
    pub fn configure(&self, webhooks: &[Webhook]) {
        let inner = &self.inner;
        let mut old: Vec<Arc<Outbox>> = inner.outboxes.load().iter().cloned().collect();
        let mut new = Vec::with_capacity(webhooks.len());
        for (i, w) in webhooks.iter().enumerate() {
            match old.iter().position(|o| o.hook.load().cfg.url == w.url) {
                Some(at) => {
                    let o = old.swap_remove(at);
                    let h = o.hook.load();
                    if h.index != i || h.cfg != *w {
                        o.reconfigure(Hook::new(i, w));
                    }
                    new.push(o);
                }
                None => new.push(Outbox::start(
                    Hook::new(i, w),
                    inner.metrics.clone(),
                    inner.stop.clone(),
                )),
            }
        }
        for o in old {
            let lost = o.retire();
            let h = o.hook.load();
            if lost > 0 {
                tracing::warn!(
                    "webhook {} ({}) left the configuration with {lost} events undelivered",
                    h.index,
                    h.host
                );
            }
        }
        inner.outboxes.store(Arc::new(new));
    }

    /// Queues `event` for every webhook that wants it; returns at once.
    pub fn send(&self, event: Event) {
        let inner = &self.inner;
        let outboxes = inner.outboxes.load();
        let kind = event.kind();
        let mut to = outboxes.iter().filter(|o| o.wants(kind)).peekable();
        if to.peek().is_none() {
            return;
        }
        let body: Arc<[u8]> = match event.body(SystemTime::now(), &inner.node) {
            Ok(b) => b.into(),
            Err(e) => {
                tracing::error!("cannot write a {} event as JSON: {e}", kind.as_str());
                return;
            }
        };
        let n = inner
            .sent
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id: Arc<str> = format!("{}-{:x}-{n}", inner.node, inner.started).into();
        for o in to {
            o.push(kind, body.clone(), id.clone());
        }
    }
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("node", &self.inner.node)
            .field("webhooks", &self.inner.outboxes.load().len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EventKind;
    use crate::metrics::{WebhookDropLabels, WebhookLabels};

    fn hook(url: &str, events: &[EventKind], queue: usize) -> Webhook {
        Webhook {
            url: url.to_string(),
            events: events.to_vec(),
            secret: None,
            timeout: Webhook::TIMEOUT,
            queue,
        }
    }

    fn labels(i: usize, url: &str) -> WebhookLabels {
        let host = reqwest::Url::parse(url).unwrap();
        WebhookLabels {
            webhook: i.to_string(),
            host: format!("{}:{}", host.host_str().unwrap(), host.port().unwrap()),
        }
    }

    #[tokio::test]
    async fn a_reload_keeps_the_queue_of_a_kept_url_and_filters_by_kind() {
        crate::os::init_tls();
        // ports nobody listens on: every try fails, so events stay queued
        let closed = || {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/hook", l.local_addr().unwrap())
        };
        let (a, b, c) = (closed(), closed(), closed());
        let metrics = Arc::new(Metrics::new());
        let (stop_tx, stop) = watch::channel(false);
        let n = Notifier::start(
            &[
                hook(&a, &EventKind::ALL, 10),
                hook(&b, &[EventKind::Reload], 10),
            ],
            "ns1".into(),
            metrics.clone(),
            stop,
        );
        let queued = |l: &WebhookLabels| metrics.webhook_queued.get_or_create(l).get();
        for g in 0..3 {
            n.send(Event::reload_ok("test", g));
        }
        n.send(Event::region_health("eu", false, None));
        assert_eq!(queued(&labels(0, &a)), 4);
        assert_eq!(queued(&labels(1, &b)), 3, "no health events for b");

        // a stays with a smaller queue, b goes, c comes
        n.configure(&[hook(&c, &EventKind::ALL, 10), hook(&a, &EventKind::ALL, 2)]);
        assert_eq!(
            queued(&labels(1, &a)),
            2,
            "a kept its newest two, as webhook 1"
        );
        let full = WebhookDropLabels {
            webhook: "1".into(),
            host: labels(1, &a).host,
            reason: "full".into(),
        };
        assert_eq!(metrics.webhook_dropped.get_or_create(&full).get(), 2);
        assert_eq!(queued(&labels(0, &c)), 0);
        let text = metrics.encode();
        assert!(
            !text.contains(&labels(1, &b).host),
            "b's gauge is gone:\n{text}"
        );
        stop_tx.send_replace(true);
    }
}
