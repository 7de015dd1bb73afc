//! One webhook's outbox: its settings, its [`Queue`] behind a mutex held
//! only to push or pop, and the task that delivers the head, in order,
//! retrying with back-off. A receiver that is down, slow or answers 500
//! only ever costs this task its time: the sender's push never waits for
//! it.

use std::hash::BuildHasher;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use arc_swap::ArcSwap;
use ring::hmac;
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::queue::{Item, Queue, backoff};
use crate::config::{EventKind, Webhook};
use crate::metrics::{Metrics, WebhookDropLabels, WebhookLabels, WebhookResultLabels};

/// A webhook's settings, as a reload leaves them.
pub(super) struct Hook {
    /// Its place in `[[notify.webhook]]`.
    pub index: usize,
    /// The configuration.
    pub cfg: Webhook,
    /// The URL's host and port: all that logs and metrics name of it.
    pub host: String,
    key: Option<hmac::Key>,
    client: Result<reqwest::Client, String>,
}

impl Hook {
    /// Prepares the HTTP client and the signing key.
    pub fn new(index: usize, cfg: &Webhook) -> Hook {
        let host = reqwest::Url::parse(&cfg.url)
            .ok()
            .and_then(|u| {
                let h = u.host_str()?.to_string();
                Some(match u.port() {
                    Some(p) => format!("{h}:{p}"),
                    None => h,
                })
            })
            .unwrap_or_default();
        let client = reqwest::Client::builder()
            .timeout(cfg.timeout)
            .connect_timeout(cfg.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("signpost-webhook/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot set up the HTTP client: {e}"));
        Hook {
            index,
            host,
            key: cfg
                .secret
                .as_ref()
                .map(|s| hmac::Key::new(hmac::HMAC_SHA256, s.as_bytes())),
            client,
            cfg: cfg.clone(),
        }
    }

    fn labels(&self) -> WebhookLabels {
        WebhookLabels {
            webhook: self.index.to_string(),
            host: self.host.clone(),
        }
    }

    /// How logs name it (never the path or query: they may hold a token).
    fn name(&self) -> String {
        format!("webhook {} ({})", self.index, self.host)
    }
}

/// `sha256=<hex HMAC-SHA256 of body>`, the `X-Signpost-Signature` header.
pub fn signature(key: &hmac::Key, body: &[u8]) -> String {
    let tag = hmac::sign(key, body);
    format!("sha256={}", data_encoding::HEXLOWER.encode(tag.as_ref()))
}

/// A webhook's queue and the handle on its delivery task.
pub(super) struct Outbox {
    /// Its settings; a reload that keeps the URL replaces them.
    pub hook: ArcSwap<Hook>,
    queue: Mutex<Queue>,
    wake: Notify,
    retire: watch::Sender<bool>,
    metrics: Arc<Metrics>,
}

impl Outbox {
    /// Starts the delivery task of a webhook; it runs until `stop` turns
    /// true or the outbox is retired.
    pub fn start(hook: Hook, metrics: Arc<Metrics>, stop: watch::Receiver<bool>) -> Arc<Outbox> {
        let (retire, retired) = watch::channel(false);
        let o = Arc::new(Outbox {
            queue: Mutex::new(Queue::new(hook.cfg.queue)),
            hook: ArcSwap::from_pointee(hook),
            wake: Notify::new(),
            retire,
            metrics,
        });
        o.gauge(0);
        tokio::spawn(deliver_all(o.clone(), stop, retired));
        o
    }

    fn queue(&self) -> MutexGuard<'_, Queue> {
        // the queue is plain data, whole after any panic
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this webhook wants events of `kind`.
    pub fn wants(&self, kind: EventKind) -> bool {
        self.hook.load().cfg.events.contains(&kind)
    }

    /// Queues an event and wakes the task; never waits for delivery.
    pub fn push(&self, kind: EventKind, body: Arc<[u8]>, id: Arc<str>) {
        let (dropped, len) = {
            let mut q = self.queue();
            (q.push(kind, body, id, Instant::now()), q.len())
        };
        self.gauge(len);
        self.dropped(dropped, "full");
        self.wake.notify_one();
    }

    /// New settings for the same URL; queued events stay (a smaller
    /// queue drops its oldest).
    pub fn reconfigure(&self, hook: Hook) {
        let old = self.hook.load();
        if hook.index != old.index {
            self.metrics.webhook_queued.remove(&old.labels());
        }
        let cap = hook.cfg.queue;
        self.hook.store(Arc::new(hook));
        let (dropped, len) = {
            let mut q = self.queue();
            (q.set_cap(cap), q.len())
        };
        self.gauge(len);
        self.dropped(dropped, "full");
    }

    /// Stops the task (the webhook left the configuration); returns how
    /// many events were still waiting.
    pub fn retire(&self) -> usize {
        self.retire.send_replace(true);
        self.metrics
            .webhook_queued
            .remove(&self.hook.load().labels());
        self.queue().len()
    }

    fn gauge(&self, len: usize) {
        self.metrics
            .webhook_queued
            .get_or_create(&self.hook.load().labels())
            .set(len as i64);
    }

    fn dropped(&self, n: usize, reason: &str) {
        if n == 0 {
            return;
        }
        let h = self.hook.load();
        self.metrics
            .webhook_dropped
            .get_or_create(&WebhookDropLabels {
                webhook: h.index.to_string(),
                host: h.host.clone(),
                reason: reason.to_string(),
            })
            .inc_by(n as u64);
        tracing::warn!(
            "{}: {n} event{} given up ({reason})",
            h.name(),
            if n == 1 { "" } else { "s" }
        );
    }

    fn attempt(&self, h: &Hook, result: &str) {
        self.metrics
            .webhook_deliveries
            .get_or_create(&WebhookResultLabels {
                webhook: h.index.to_string(),
                host: h.host.clone(),
                result: result.to_string(),
            })
            .inc();
    }

    /// The head to try, after giving up what waited too long.
    fn head(&self) -> Option<Item> {
        let (expired, head) = {
            let mut q = self.queue();
            (q.expire(Instant::now()), q.head())
        };
        if expired > 0 {
            let len = self.queue().len();
            self.gauge(len);
            self.dropped(expired, "expired");
        }
        head
    }

    fn done(&self, seq: u64) {
        let len = {
            let mut q = self.queue();
            q.done(seq);
            q.len()
        };
        self.gauge(len);
    }
}

/// The delivery task: the head, until it is delivered (or dropped), then
/// the next; after a failure, a back-off before any further try.
async fn deliver_all(
    o: Arc<Outbox>,
    mut stop: watch::Receiver<bool>,
    mut retired: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        let Some(item) = o.head() else {
            tokio::select! {
                () = o.wake.notified() => continue,
                () = ended(&mut stop, &mut retired) => return,
            }
        };
        let hook = o.hook.load_full();
        let result = tokio::select! {
            r = post(&hook, &item) => r,
            () = ended(&mut stop, &mut retired) => return,
        };
        match result {
            Ok(()) => {
                o.attempt(&hook, "ok");
                o.done(item.seq);
                if failures > 0 {
                    tracing::info!("{}: delivering again", hook.name());
                }
                failures = 0;
            }
            Err(why) => {
                o.attempt(&hook, "failed");
                failures = failures.saturating_add(1);
                if failures == 1 {
                    tracing::warn!(
                        "{}: {why}; retrying with back-off (events wait, in order)",
                        hook.name()
                    );
                } else {
                    tracing::debug!("{}: {why} ({failures} failures)", hook.name());
                }
                let wait = backoff(failures, jitter(failures));
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = ended(&mut stop, &mut retired) => return,
                }
            }
        }
    }
}

/// Returns when signpost stops or the webhook leaves the configuration.
async fn ended(stop: &mut watch::Receiver<bool>, retired: &mut watch::Receiver<bool>) {
    tokio::select! {
        r = stop.wait_for(|s| *s) => if r.is_err() {
            tracing::debug!("webhook task: the stop signal is gone");
        },
        r = retired.wait_for(|s| *s) => if r.is_err() {
            tracing::debug!("webhook task: its outbox is gone");
        },
    }
}

/// One try: a 2xx is delivered; another status, no connection or a
/// timeout is a failure, in words.
async fn post(hook: &Hook, item: &Item) -> Result<(), String> {
    let client = hook.client.as_ref().map_err(Clone::clone)?;
    let mut req = client
        .post(&hook.cfg.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header("X-Signpost-Event", item.kind.as_str())
        .header("X-Signpost-Id", &*item.id)
        .body(item.body.to_vec());
    if let Some(key) = &hook.key {
        req = req.header("X-Signpost-Signature", signature(key, &item.body));
    }
    let resp = req.send().await.map_err(|e| failure(&e))?;
    let status = resp.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("status {}", status.as_u16()))
    }
}

/// A failed request in words, without its URL (which may hold a token).
fn failure(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timeout".to_string();
    }
    let mut text = String::new();
    let mut src: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(e);
    while let Some(s) = src {
        text = s.to_string();
        src = s.source();
    }
    let what = if e.is_connect() { "connect" } else { "http" };
    if text.is_empty() {
        what.to_string()
    } else {
        format!("{what}: {text}")
    }
}

/// A number in 0..1 that differs from call to call (`RandomState` is
/// seeded by the operating system); enough to spread retries.
fn jitter(salt: u32) -> f64 {
    let h = std::collections::hash_map::RandomState::new().hash_one(salt);
    (h >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_of_the_body_in_hex() {
        // RFC 4231, test case 2
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        assert_eq!(
            signature(&key, b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // and it checks with ring's own verify
        let body = br#"{"event":"reload"}"#;
        let sig = signature(&key, body);
        let hex = sig.strip_prefix("sha256=").unwrap();
        let tag = data_encoding::HEXLOWER.decode(hex.as_bytes()).unwrap();
        assert!(hmac::verify(&key, body, &tag).is_ok());
        assert!(hmac::verify(&key, b"{}", &tag).is_err());
    }

    #[test]
    fn logs_and_labels_name_only_the_host() {
        crate::os::init_tls();
        let cfg = Webhook {
            url: "https://hooks.example.net:8443/services/T0K3N?x=1".into(),
            events: EventKind::ALL.to_vec(),
            secret: Some("s".into()),
            timeout: Webhook::TIMEOUT,
            queue: 10,
        };
        let h = Hook::new(3, &cfg);
        assert_eq!(h.name(), "webhook 3 (hooks.example.net:8443)");
        assert_eq!(h.labels().host, "hooks.example.net:8443");
        assert!(h.client.is_ok());
    }

    #[test]
    fn jitter_is_in_range() {
        for i in 0..1000 {
            let j = jitter(i);
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }
}
