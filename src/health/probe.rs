//! Probes: one HTTP(S) request or TCP connect, reported as pass/fail with a
//! reason and the latency. Thresholds are the tracker's business.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::config::CheckKind;
use crate::state::Target;

/// Largest body read when a check looks for a substring.
const MAX_BODY: usize = 64 * 1024;

/// The outcome of one probe.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ProbeResult {
    /// Passed.
    pub ok: bool,
    /// The probe could not run for a reason of this host (no file
    /// descriptors, no source address): says nothing about the endpoint
    /// (SPEC §5).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub local: bool,
    /// The load the check's `load_header` reported, on a passing probe.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<f64>,
    /// Why a passing probe of a check with `load_header` brought no load.
    #[serde(skip)]
    pub load_missing: Option<String>,
    /// What happened (`status 200`, `connect refused`, `timeout`, ...).
    pub reason: String,
    /// Time from start to verdict.
    #[serde(serialize_with = "ser_ms", rename = "latency_ms")]
    #[schema(value_type = f64)]
    pub latency: Duration,
    /// When it finished.
    #[serde(serialize_with = "ser_time")]
    #[schema(value_type = String)]
    pub at: SystemTime,
}

impl ProbeResult {
    /// A failure without a probe (the prober could not be built): it
    /// counts against the endpoint, which stays down until it can be
    /// probed (fail closed).
    pub fn not_probed(reason: String) -> ProbeResult {
        ProbeResult {
            ok: false,
            local: false,
            load: None,
            load_missing: None,
            reason,
            latency: Duration::ZERO,
            at: SystemTime::now(),
        }
    }
}

fn ser_ms<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_f64((d.as_secs_f64() * 1e6).round() / 1e3)
}

fn ser_time<S: serde::Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&humantime::format_rfc3339_millis(*t).to_string())
}

/// Probes one target.
pub struct Prober {
    target: Target,
    http: Option<(reqwest::Client, String)>,
}

/// A prober could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the probe of {target}: {reason}")]
pub struct ProberError {
    target: String,
    reason: String,
}

impl Prober {
    /// Prepares the HTTP client (TLS roots, Host/SNI pinning) for a target.
    pub fn new(target: Target) -> Result<Prober, ProberError> {
        let c = &target.check;
        let http = match c.kind {
            CheckKind::Tcp => None,
            CheckKind::Http | CheckKind::Https => {
                let scheme = if c.kind == CheckKind::Https {
                    "https"
                } else {
                    "http"
                };
                let sock = SocketAddr::new(target.probe, c.port);
                let mut b = reqwest::Client::builder()
                    .local_address(target.source)
                    .timeout(c.timeout)
                    .connect_timeout(c.timeout)
                    .pool_max_idle_per_host(0)
                    .redirect(reqwest::redirect::Policy::none())
                    .no_proxy()
                    .user_agent(concat!("signpost-health/", env!("CARGO_PKG_VERSION")));
                let url = match &c.host {
                    // Connect to the endpoint but speak to `host`: Host header,
                    // SNI and certificate name all come from it.
                    Some(host) => {
                        b = b.resolve(host, sock);
                        format!("{scheme}://{host}:{}{}", c.port, c.path)
                    }
                    None => match target.probe {
                        IpAddr::V4(a) => format!("{scheme}://{a}:{}{}", c.port, c.path),
                        IpAddr::V6(a) => format!("{scheme}://[{a}]:{}{}", c.port, c.path),
                    },
                };
                if c.insecure {
                    b = b.tls_danger_accept_invalid_certs(true);
                }
                let client = b.build().map_err(|e| ProberError {
                    target: sock.to_string(),
                    reason: error_chain(&e),
                })?;
                Some((client, url))
            }
        };
        Ok(Prober { target, http })
    }

    /// The target.
    pub fn target(&self) -> &Target {
        &self.target
    }

    /// Runs one probe, bounded by the check's timeout.
    pub async fn probe(&self) -> ProbeResult {
        let start = Instant::now();
        let timeout = self.target.check.timeout;
        let verdict = match &self.http {
            None => tcp(
                SocketAddr::new(self.target.probe, self.target.check.port),
                self.target.source,
                timeout,
            )
            .await
            .map(|r| (r, None)),
            // the client has the timeout; the outer one guards the body read too
            Some((client, url)) => {
                match tokio::time::timeout(timeout, self.http(client, url)).await {
                    Ok(v) => v,
                    Err(_) => Err(Failure::remote("timeout")),
                }
            }
        };
        let (ok, reason, local, load) = match verdict {
            Ok((r, load)) => (true, r, false, load),
            Err(f) => (false, f.reason, f.local, None),
        };
        let (load, load_missing) = match load {
            Some(Ok(v)) => (Some(v), None),
            Some(Err(why)) => (None, Some(why)),
            None => (None, None),
        };
        ProbeResult {
            ok,
            local,
            load,
            load_missing,
            reason,
            latency: start.elapsed(),
            at: SystemTime::now(),
        }
    }

    /// The probe's reason and, with `load_header`, the load it reported
    /// (or why there was none).
    async fn http(
        &self,
        client: &reqwest::Client,
        url: &str,
    ) -> Result<(String, Option<Result<f64, String>>), Failure> {
        let c = &self.target.check;
        let resp = client.get(url).send().await.map_err(|e| classify(&e))?;
        let status = resp.status().as_u16();
        let status_ok = if c.expect.is_empty() {
            (200..300).contains(&status)
        } else {
            c.expect.contains(&status)
        };
        if !status_ok {
            return Err(Failure::remote(format!("status {status}")));
        }
        let load = c
            .load_header
            .as_ref()
            .map(|h| parse_load(resp.headers().get(h.as_str())));
        if let Some(want) = &c.body {
            let mut resp = resp;
            let mut body = Vec::new();
            while let Some(chunk) = resp.chunk().await.map_err(|e| classify(&e))? {
                body.extend_from_slice(&chunk);
                if body.len() >= MAX_BODY {
                    break;
                }
            }
            let hay = String::from_utf8_lossy(&body);
            if !hay.contains(want.as_str()) {
                return Err(Failure::remote("body mismatch"));
            }
        }
        Ok((format!("status {status}"), load))
    }
}

/// A load header's value: a finite number >= 0 (SPEC §4.7).
fn parse_load(v: Option<&reqwest::header::HeaderValue>) -> Result<f64, String> {
    let v = v.ok_or_else(|| "the header is missing".to_string())?;
    let text = v
        .to_str()
        .map_err(|_| "the header is not text".to_string())?;
    match text.trim().parse::<f64>() {
        Ok(x) if x.is_finite() && x >= 0.0 => Ok(x),
        _ => Err(format!(
            "{:?} is not a load (a number >= 0)",
            text.chars().take(40).collect::<String>()
        )),
    }
}

/// Why a probe failed, and whether the fault is this host's.
#[derive(Debug)]
struct Failure {
    reason: String,
    local: bool,
}

impl Failure {
    fn remote(reason: impl Into<String>) -> Failure {
        Failure {
            reason: reason.into(),
            local: false,
        }
    }
}

/// OS errors that mean this host could not make the probe at all.
fn is_local(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::EADDRNOTAVAIL | libc::ENOBUFS | libc::ENOMEM)
    )
}

async fn tcp(
    addr: SocketAddr,
    source: Option<IpAddr>,
    timeout: Duration,
) -> Result<String, Failure> {
    let local = |e: std::io::Error| Failure {
        reason: format!("cannot probe from here: {e}"),
        local: true,
    };
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()
    } else {
        tokio::net::TcpSocket::new_v6()
    }
    .map_err(local)?;
    if let Some(src) = source {
        socket.bind(SocketAddr::new(src, 0)).map_err(local)?;
    }
    match tokio::time::timeout(timeout, socket.connect(addr)).await {
        Err(_) => Err(Failure::remote("timeout")),
        Ok(Ok(_)) => Ok("connected".to_string()),
        Ok(Err(e)) if is_local(&e) => Err(local(e)),
        Ok(Err(e)) => Err(Failure::remote(io_reason(&e))),
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect refused".to_string(),
        std::io::ErrorKind::TimedOut => "timeout".to_string(),
        _ => format!("connect: {e}"),
    }
}

/// Names a reqwest failure the way an operator reads it.
fn classify(e: &reqwest::Error) -> Failure {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(s) = src {
        if let Some(io) = s.downcast_ref::<std::io::Error>()
            && is_local(io)
        {
            return Failure {
                reason: format!("cannot probe from here: {io}"),
                local: true,
            };
        }
        src = s.source();
    }
    Failure::remote(reason(e))
}

fn reason(e: &reqwest::Error) -> String {
    let mut src: Option<&(dyn std::error::Error + 'static)> = Some(e);
    let mut innermost = e.to_string();
    let mut tls = false;
    while let Some(s) = src {
        if let Some(t) = s.downcast_ref::<rustls::Error>() {
            return format!("tls: {t}");
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if let Some(t) = io.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>()) {
                return format!("tls: {t}");
            }
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return "connect refused".to_string();
            }
        }
        // hyper-rustls may hand the TLS error over as text only; the
        // outermost message holds the URL, so it is not looked at
        let text = s.to_string();
        let lower = text.to_ascii_lowercase();
        if !std::ptr::addr_eq(s, e as &dyn std::error::Error)
            && (lower.contains("certificate")
                || lower.contains("tls")
                || lower.contains("handshake"))
        {
            tls = true;
        }
        innermost = text;
        src = s.source();
    }
    if tls {
        return format!("tls: {innermost}");
    }
    if e.is_timeout() {
        return "timeout".to_string();
    }
    if e.is_connect() {
        return format!("connect: {}", error_chain(e));
    }
    format!("http: {}", error_chain(e))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(x) = src {
        let t = x.to_string();
        if !s.contains(&t) {
            s.push_str(": ");
            s.push_str(&t);
        }
        src = x.source();
    }
    s
}
