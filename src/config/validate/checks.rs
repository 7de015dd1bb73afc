//! `[checks.NAME]`: health-check profiles.

use std::collections::BTreeMap;
use std::time::Duration;

use super::{Errs, parse_duration};
use crate::config::raw::RawCheck;
use crate::config::{Check, CheckKind, key_segment, normalize_name};

/// `[checks]`, by name; a check of an unknown type is left out.
pub(super) fn validate_checks(
    raw: &BTreeMap<String, RawCheck>,
    errs: &mut Errs<'_>,
) -> BTreeMap<String, Check> {
    let mut checks = BTreeMap::new();
    for (name, c) in raw {
        let key = format!("checks.{}", key_segment(name));
        if let Some(check) = validate_check(&key, c, errs) {
            checks.insert(name.clone(), check);
        }
    }
    checks
}

/// One check profile (`key` is `checks.NAME`).
fn validate_check(key: &str, c: &RawCheck, errs: &mut Errs<'_>) -> Option<Check> {
    let kind = match c.kind.as_str() {
        "http" => CheckKind::Http,
        "https" => CheckKind::Https,
        "tcp" => CheckKind::Tcp,
        other => {
            errs.push(
                format!("{key}.type"),
                format!("unknown check type {other:?} (expected http, https or tcp)"),
            );
            return None;
        }
    };
    let port = match u16::try_from(c.port) {
        Ok(p) if p > 0 => p,
        _ => {
            errs.push(
                format!("{key}.port"),
                format!("{} is not a port (1-65535)", c.port),
            );
            0
        }
    };
    let (interval, timeout) = validate_timing(key, c, errs);
    let http = kind != CheckKind::Tcp;
    let (path, expect) = validate_http_keys(key, kind, c, errs);
    Some(Check {
        kind,
        port,
        path,
        host: c.host.clone(),
        expect,
        body: c.body.clone(),
        interval: interval.unwrap_or(Duration::from_secs(5)),
        timeout: timeout.unwrap_or(Duration::from_secs(2)),
        rise: c.rise,
        fall: c.fall,
        insecure: c.insecure.unwrap_or(false),
        load_header: c.load_header.clone().filter(|_| http),
    })
}

/// `interval`, `timeout`, `rise` and `fall`; a duration that does not
/// parse is `None`.
fn validate_timing(
    key: &str,
    c: &RawCheck,
    errs: &mut Errs<'_>,
) -> (Option<Duration>, Option<Duration>) {
    let interval = parse_duration(&c.interval)
        .map_err(|e| errs.push(format!("{key}.interval"), e))
        .ok();
    let timeout = parse_duration(&c.timeout)
        .map_err(|e| errs.push(format!("{key}.timeout"), e))
        .ok();
    if let Some(i) = interval
        && (i < Duration::from_millis(100) || i > Duration::from_secs(3600))
    {
        errs.push(format!("{key}.interval"), "must be between 100ms and 1h");
    }
    if let (Some(i), Some(t)) = (interval, timeout) {
        if t.is_zero() {
            errs.push(format!("{key}.timeout"), "must be longer than 0");
        } else if t >= i {
            errs.push(
                format!("{key}.timeout"),
                format!("{} must be shorter than interval {}", c.timeout, c.interval),
            );
        }
    }
    if c.rise < 1 || c.rise > 100 {
        errs.push(
            format!("{key}.rise"),
            format!("{} is not between 1 and 100", c.rise),
        );
    }
    if c.fall < 1 || c.fall > 100 {
        errs.push(
            format!("{key}.fall"),
            format!("{} is not between 1 and 100", c.fall),
        );
    }
    (interval, timeout)
}

/// The keys only http and https checks take: the path probed (`/` when
/// not set) and the accepted status codes.
fn validate_http_keys(
    key: &str,
    kind: CheckKind,
    c: &RawCheck,
    errs: &mut Errs<'_>,
) -> (String, Vec<u16>) {
    let http = kind != CheckKind::Tcp;
    if !http {
        for (set, k) in [
            (c.path.is_some(), "path"),
            (c.host.is_some(), "host"),
            (c.expect.is_some(), "expect"),
            (c.body.is_some(), "body"),
            (c.insecure.is_some(), "insecure"),
        ] {
            if set {
                errs.push(
                    format!("{key}.{k}"),
                    "only http and https checks take this key",
                );
            }
        }
    }
    if kind == CheckKind::Http && c.insecure.is_some() {
        errs.push(format!("{key}.insecure"), "only https checks take this key");
    }
    if let Some(h) = &c.load_header {
        if !http {
            errs.push(
                format!("{key}.load_header"),
                "only http and https checks take this key (a tcp check reads no headers)",
            );
        } else if h.is_empty()
            || !h
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        {
            errs.push(
                format!("{key}.load_header"),
                format!("{h:?} is not an HTTP header name"),
            );
        }
    }
    let path = c.path.clone().unwrap_or_else(|| "/".to_string());
    if http && (!path.starts_with('/') || path.bytes().any(|b| b.is_ascii_control() || b == b' ')) {
        errs.push(
            format!("{key}.path"),
            format!("{path:?} must start with '/' and hold no spaces"),
        );
    }
    if let Some(h) = &c.host
        && (normalize_name(h).is_none() || h.contains('*'))
    {
        errs.push(format!("{key}.host"), format!("{h:?} is not a host name"));
    }
    let mut expect = Vec::new();
    for (i, code) in c.expect.iter().flatten().enumerate() {
        match u16::try_from(*code) {
            Ok(v) if (100..=599).contains(&v) => expect.push(v),
            _ => errs.push(
                format!("{key}.expect[{i}]"),
                format!("{code} is not an HTTP status (100-599)"),
            ),
        }
    }
    if c.expect.as_ref().is_some_and(|e| e.is_empty()) {
        errs.push(
            format!("{key}.expect"),
            "must list at least one status (omit it for any 2xx)",
        );
    }
    if c.body.as_ref().is_some_and(|b| b.is_empty()) {
        errs.push(
            format!("{key}.body"),
            "must not be empty (omit it to skip the body test)",
        );
    }
    (path, expect)
}
