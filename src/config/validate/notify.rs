//! `[[notify.webhook]]`: where events are sent (SPEC §11). Each node has
//! its own, like `[server]`: webhooks change no answer, so they are left
//! out of the configuration hash nodes compare.

use std::path::Path;

use super::{Errs, parse_duration, resolve};
use crate::config::raw::{RawNotify, RawWebhook};
use crate::config::{EventKind, Webhook};

/// `[notify]`: its webhooks, in file order.
pub(super) fn validate_notify(n: &RawNotify, base: &Path, errs: &mut Errs<'_>) -> Vec<Webhook> {
    let mut out: Vec<Webhook> = Vec::new();
    for (i, w) in n.webhook.iter().enumerate() {
        let key = format!("notify.webhook[{i}]");
        let before = errs.list.len();
        let hook = validate_webhook(w, &key, base, errs);
        if let Some(j) = out.iter().position(|o| o.url == w.url) {
            errs.push(
                format!("{key}.url"),
                format!("the same URL as notify.webhook[{j}]: list a receiver once, with every event it wants"),
            );
        }
        if errs.list.len() == before {
            out.push(hook);
        }
    }
    out
}

fn validate_webhook(w: &RawWebhook, key: &str, base: &Path, errs: &mut Errs<'_>) -> Webhook {
    check_url(&w.url, &format!("{key}.url"), errs);
    let events = match &w.events {
        None => EventKind::ALL.to_vec(),
        Some(list) if list.is_empty() => {
            errs.push(
                format!("{key}.events"),
                "lists no event; omit it for every event",
            );
            Vec::new()
        }
        Some(list) => {
            let mut kinds = Vec::new();
            for name in list {
                match EventKind::parse(name) {
                    Some(k) => kinds.push(k),
                    None => errs.push(
                        format!("{key}.events"),
                        format!(
                            "unknown event {name:?} (known: {})",
                            EventKind::ALL.map(EventKind::as_str).join(", ")
                        ),
                    ),
                }
            }
            kinds.sort_unstable();
            kinds.dedup();
            kinds
        }
    };
    let secret = match (&w.secret, &w.secret_file) {
        (None, None) => None,
        (Some(_), Some(_)) => {
            errs.push(key, "set secret or secret_file, not both");
            None
        }
        (Some(s), None) => Some(s.clone()),
        (None, Some(f)) => match crate::os::read_input_text(&resolve(base, f)) {
            Ok(s) => Some(s.trim_end_matches(['\r', '\n']).to_string()),
            Err(e) => {
                errs.push(format!("{key}.secret_file"), format!("{f}: {e}"));
                None
            }
        },
    };
    if secret.as_deref() == Some("") {
        errs.push(
            key,
            "the secret is empty; make one with `openssl rand -hex 32`, or leave it out for unsigned deliveries",
        );
    }
    let timeout = match parse_duration(&w.timeout) {
        Ok(d) if d.is_zero() || d > Webhook::MAX_TIMEOUT => {
            errs.push(
                format!("{key}.timeout"),
                "must be longer than 0 and at most 1m",
            );
            Webhook::TIMEOUT
        }
        Ok(d) => d,
        Err(e) => {
            errs.push(format!("{key}.timeout"), e);
            Webhook::TIMEOUT
        }
    };
    let queue = match usize::try_from(w.queue) {
        Ok(q) if (1..=Webhook::MAX_QUEUE).contains(&q) => q,
        _ => {
            errs.push(
                format!("{key}.queue"),
                format!("{} is not between 1 and {}", w.queue, Webhook::MAX_QUEUE),
            );
            Webhook::QUEUE
        }
    };
    Webhook {
        url: w.url.clone(),
        events,
        secret,
        timeout,
        queue,
    }
}

/// An `http://` or `https://` URL with a host.
fn check_url(url: &str, key: &str, errs: &mut Errs<'_>) {
    let example = "write e.g. \"https://hooks.example.net/signpost\"";
    match reqwest::Url::parse(url) {
        Ok(u) if !matches!(u.scheme(), "http" | "https") => errs.push(
            key,
            format!("{:?} is not http or https; {example}", u.scheme()),
        ),
        Ok(u) if u.host_str().is_none_or(str::is_empty) => {
            errs.push(key, format!("the URL has no host; {example}"))
        }
        Ok(u) if u.fragment().is_some() => errs.push(key, "a URL sent to has no #fragment"),
        Ok(_) => {}
        // the URL may hold a token: the parser's reason is enough
        Err(e) => errs.push(key, format!("not a URL ({e}); {example}")),
    }
}
