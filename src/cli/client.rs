//! The commands that ask a running server through its admin API: `ctl`
//! and `explain` (which can also decide offline from a configuration).

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::render::{render_audit, render_explain, render_reload, render_status, render_target};
use super::{Admin, CtlCommand, QType};
use crate::metrics::Metrics;
use crate::state::{self, Snapshot};
use crate::steer::Family;

/// What `signpost explain` was asked.
pub struct ExplainArgs<'a> {
    /// Service name.
    pub name: &'a str,
    /// Client address.
    pub client: IpAddr,
    /// A or AAAA.
    pub qtype: QType,
    /// What-if: regions taken as down.
    pub down: &'a [String],
    /// Decide offline from this configuration.
    pub config: Option<&'a Path>,
    /// Raw JSON.
    pub json: bool,
}

/// `signpost explain`.
pub fn explain(a: &ExplainArgs<'_>, admin: &Admin) -> i32 {
    let family = match a.qtype {
        QType::A => Family::V4,
        QType::Aaaa => Family::V6,
    };
    let down: Vec<String> = a
        .down
        .iter()
        .flat_map(|d| crate::explain::parse_down(d))
        .collect();
    let v = if let Some(path) = a.config {
        let metrics = Metrics::new();
        let compiled = match state::load(path, &metrics) {
            Ok(c) => c,
            Err(errors) => {
                eprintln!("{errors}");
                return 1;
            }
        };
        let snap = Snapshot::all_up(Arc::new(compiled), 0);
        match crate::explain::explain_what_if(&snap, a.name, family, a.client, &down) {
            Ok(e) => serde_json::to_value(e).unwrap_or(Value::Null),
            Err(e) => {
                eprintln!("error: {e}");
                return 1;
            }
        }
    } else {
        let t = match a.qtype {
            QType::A => "A",
            QType::Aaaa => "AAAA",
        };
        let what_if = if down.is_empty() {
            String::new()
        } else {
            format!("&down={}", encode(&down.join(",")))
        };
        let url = format!(
            "{}/v1/explain?name={}&type={t}&client={}{what_if}",
            admin.url.trim_end_matches('/'),
            encode(a.name),
            a.client
        );
        match call(reqwest::Method::GET, &url, admin) {
            Ok(v) => v,
            Err(code) => return code,
        }
    };
    if a.json {
        print_json(&v)
    } else {
        print!("{}", render_explain(&v));
        0
    }
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn print_json(v: &Value) -> i32 {
    match serde_json::to_string_pretty(v) {
        Ok(s) => {
            println!("{s}");
            0
        }
        Err(e) => {
            eprintln!("error: {e}");
            1
        }
    }
}

/// How long `ctl` waits for an answer, except for a reload (which takes
/// as long as compiling the new configuration takes).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// After this long, a waiting `ctl reload` says it is still working.
const RELOAD_PROGRESS: Duration = Duration::from_secs(2);

/// One admin API call; `Err(exit code)` after printing why.
fn call(method: reqwest::Method, url: &str, admin: &Admin) -> Result<Value, i32> {
    call_with(method, url, admin, Some(CALL_TIMEOUT), None)
}

/// [`call`] with a timeout of its own (`None`: wait for the answer, and
/// say so on stderr every few seconds), and a line to add when the server
/// refuses with 409 Conflict (a safety rule).
fn call_with(
    method: reqwest::Method,
    url: &str,
    admin: &Admin,
    timeout: Option<Duration>,
    conflict_hint: Option<&str>,
) -> Result<Value, i32> {
    crate::os::init_tls();
    let Some(rt) = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()
    else {
        eprintln!("error: cannot start the runtime");
        return Err(2);
    };
    rt.block_on(async {
        let mut client = reqwest::Client::builder()
            .connect_timeout(CALL_TIMEOUT)
            .no_proxy();
        if let Some(t) = timeout {
            client = client.timeout(t);
        }
        let client = client.build()
            .map_err(|e| {
                eprintln!("error: {e}");
                1
            })?;
        let mut req = client.request(method, url);
        if let Some(t) = &admin.token {
            req = req.bearer_auth(t);
        }
        let sent = req.send();
        tokio::pin!(sent);
        let started = tokio::time::Instant::now();
        let mut next_note = started + RELOAD_PROGRESS;
        let resp = loop {
            tokio::select! {
                r = &mut sent => break r,
                _ = tokio::time::sleep_until(next_note), if timeout.is_none() => {
                    eprintln!(
                        "still working after {}s (a new GeoIP database or many services take a while)...",
                        started.elapsed().as_secs()
                    );
                    next_note += Duration::from_secs(10);
                }
            }
        }
        .map_err(|e| {
            eprintln!("error: cannot reach the admin API at {}: {e}", admin.url);
            1
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| {
            eprintln!("error: reading the response: {e}");
            1
        })?;
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            Ok(v)
        } else {
            let msg = v
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string();
            eprintln!(
                "error: {} {}",
                status.as_u16(),
                if msg.is_empty() { v.to_string() } else { msg }
            );
            if let Some(list) = v.get("errors").and_then(Value::as_array) {
                for e in list {
                    eprintln!("  {}", e.as_str().unwrap_or_default());
                }
            }
            if let (reqwest::StatusCode::CONFLICT, Some(hint)) = (status, conflict_hint) {
                eprintln!("{hint}");
            }
            Err(1)
        }
    })
}

/// `signpost ctl`.
pub fn ctl(cmd: CtlCommand, json: bool, admin: &Admin) -> i32 {
    let (method, path) = match request(&cmd) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let base = admin.url.trim_end_matches('/');
    let timeout = match cmd {
        CtlCommand::Reload => None,
        _ => Some(CALL_TIMEOUT),
    };
    let hint = "The drain was not made: the service would keep too few regions in answers. Check its other regions first (signpost ctl status), or add --force to drain anyway.";
    let v = match call_with(method, &format!("{base}{path}"), admin, timeout, Some(hint)) {
        Ok(v) => v,
        Err(code) => return code,
    };
    if json {
        return print_json(&v);
    }
    print_reply(cmd, &v);
    0
}

/// The call a `ctl` command makes: the method and the path with its query;
/// `Err(exit code)` after printing why not.
fn request(cmd: &CtlCommand) -> Result<(reqwest::Method, String), i32> {
    Ok(match cmd {
        CtlCommand::Status => (reqwest::Method::GET, "/v1/status".to_string()),
        CtlCommand::Audit => (reqwest::Method::GET, "/v1/audit".to_string()),
        CtlCommand::Drain {
            region,
            endpoint,
            duration,
            force,
            at,
        } => {
            let mut q: Vec<String> = Vec::new();
            if let Some(d) = duration {
                q.push(format!("for={}", encode(d)));
            }
            if *force {
                q.push("force=true".to_string());
            }
            if let Some(t) = at {
                q.push(format!("at={}", encode(&start_time(t)?)));
            }
            let q = if q.is_empty() {
                String::new()
            } else {
                format!("?{}", q.join("&"))
            };
            match (region, endpoint) {
                (_, Some(e)) => (reqwest::Method::POST, format!("/v1/endpoints/{e}/drain{q}")),
                (Some(r), None) => (
                    reqwest::Method::POST,
                    format!("/v1/regions/{}/drain{q}", encode(r)),
                ),
                (None, None) => return Err(usage("drain needs a region or --endpoint")),
            }
        }
        CtlCommand::Undrain { region, endpoint } => match (region, endpoint) {
            (_, Some(e)) => (reqwest::Method::DELETE, format!("/v1/endpoints/{e}/drain")),
            (Some(r), None) => (
                reqwest::Method::DELETE,
                format!("/v1/regions/{}/drain", encode(r)),
            ),
            (None, None) => return Err(usage("undrain needs a region or --endpoint")),
        },
        CtlCommand::Dial {
            region,
            value,
            duration,
        } => {
            let mut q = format!("?value={value}");
            if let Some(d) = duration {
                q.push_str(&format!("&for={}", encode(d)));
            }
            (
                reqwest::Method::POST,
                format!("/v1/regions/{}/dial{q}", encode(region)),
            )
        }
        CtlCommand::Undial { region } => (
            reqwest::Method::DELETE,
            format!("/v1/regions/{}/dial", encode(region)),
        ),
        CtlCommand::Fail { region } => (
            reqwest::Method::POST,
            format!("/v1/lab/{}/fail", encode(region)),
        ),
        CtlCommand::Recover { region } => (
            reqwest::Method::POST,
            format!("/v1/lab/{}/recover", encode(region)),
        ),
        CtlCommand::Load { region, value } => (
            reqwest::Method::POST,
            format!("/v1/lab/{}/load?value={value}", encode(region)),
        ),
        CtlCommand::Slow { region, delay } => (
            reqwest::Method::POST,
            format!("/v1/lab/{}/slow?delay={}", encode(region), encode(delay)),
        ),
        CtlCommand::Reload => (reqwest::Method::POST, "/v1/reload".to_string()),
    })
}

/// A `ctl` command's reply, for people.
fn print_reply(cmd: CtlCommand, v: &Value) {
    match cmd {
        CtlCommand::Status => {
            print!("{}", render_status(v));
        }
        CtlCommand::Audit => {
            print!("{}", render_audit(v));
        }
        CtlCommand::Drain { at: Some(_), .. } => {
            println!(
                "scheduled a drain of {} at {} for {}; it is checked against the safety rule again when it starts (signpost ctl status lists it; undrain cancels it)",
                render_target(v.get("scheduled")),
                v.get("starts").and_then(Value::as_str).unwrap_or("?"),
                v.get("for").and_then(Value::as_str).unwrap_or("?")
            );
        }
        CtlCommand::Dial { region, .. } => match v.get("value").and_then(Value::as_f64) {
            Some(x) if x < 1.0 => println!(
                "dialled region {region} to {x}: it keeps {:.0}% of its clients, the rest go to their next region{}",
                x * 100.0,
                v.get("for")
                    .and_then(Value::as_str)
                    .map_or(String::new(), |d| format!(", for {d}"))
            ),
            _ => println!("region {region} is not dialled: it keeps all its clients"),
        },
        CtlCommand::Undial { region } => {
            println!("region {region} is not dialled: it keeps all its clients");
        }
        CtlCommand::Drain { .. } => {
            let what = render_target(v.get("drained"));
            match v.get("for").and_then(Value::as_str) {
                Some(d) => println!("drained {what} for {d}; it returns to answers by itself then"),
                None => println!("drained {what} until undrained; answers move away now"),
            }
        }
        CtlCommand::Undrain { .. } => {
            println!(
                "undrained {}; it returns to answers while its probes pass",
                render_target(v.get("undrained"))
            );
        }
        CtlCommand::Load { region, value } => {
            println!(
                "lab: {region} reports load {value} (capacity 100); least-loaded answers shift within a couple of probe intervals"
            );
        }
        CtlCommand::Slow { region, delay } => {
            if delay.trim() == "0" {
                println!("lab: {region} answers without delay again");
            } else {
                println!(
                    "lab: {region} answers its probes {delay} later; fastest answers move as its smoothed latency rises"
                );
            }
        }
        CtlCommand::Fail { region } => {
            println!(
                "lab: {region} now answers 503 on its health check; answers move once the check sees it"
            );
        }
        CtlCommand::Recover { region } => {
            println!(
                "lab: {region} answers 200 again; it returns to answers after `rise` good checks"
            );
        }
        CtlCommand::Reload => {
            print!("{}", render_reload(v));
        }
    }
}

/// A scheduled drain's start as the API takes it (RFC 3339): as given,
/// or `+DURATION` from now.
fn start_time(t: &str) -> Result<String, i32> {
    match t.trim().strip_prefix('+') {
        Some(rel) => match humantime::parse_duration(rel.trim()) {
            Ok(d) => {
                Ok(humantime::format_rfc3339_seconds(std::time::SystemTime::now() + d).to_string())
            }
            Err(e) => Err(usage(&format!(
                "--at {t:?}: not a duration after '+' ({e}); write e.g. +30m"
            ))),
        },
        None => Ok(t.trim().to_string()),
    }
}

fn usage(msg: &str) -> i32 {
    eprintln!("error: {msg}");
    1
}
