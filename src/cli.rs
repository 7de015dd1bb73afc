//! The subcommands behind `src/main.rs`: each returns the process exit
//! code (0 ok, 1 invalid input or a refused call, 2 runtime failure).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;
use crate::state::{self, Snapshot};
use crate::steer::Family;
use crate::{Ready, RunOptions, Signals};

/// Where the admin API is.
#[derive(Args, Debug, Clone)]
pub struct Admin {
    /// Admin API base URL.
    #[arg(
        id = "admin",
        long = "admin",
        global = true,
        default_value = "http://127.0.0.1:9053"
    )]
    pub url: String,
    /// Bearer token for mutating calls.
    #[arg(
        long,
        global = true,
        env = "SIGNPOST_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

/// A or AAAA.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum QType {
    /// IPv4.
    #[value(name = "a", alias = "A")]
    A,
    /// IPv6.
    #[value(name = "aaaa", alias = "AAAA")]
    Aaaa,
}

/// `signpost ctl ...`.
#[derive(Subcommand, Debug, Clone)]
pub enum CtlCommand {
    /// Regions, endpoints, health and drains.
    Status,
    /// Take a region (or with --endpoint, one address) out of answers.
    Drain {
        /// Region name.
        #[arg(required_unless_present = "endpoint")]
        region: Option<String>,
        /// Drain one endpoint address everywhere instead.
        #[arg(long, conflicts_with = "region")]
        endpoint: Option<IpAddr>,
        /// Undrain automatically after this long (e.g. 10m).
        #[arg(long = "for")]
        duration: Option<String>,
        /// Drain even if it breaks a service's min_healthy_regions.
        #[arg(long)]
        force: bool,
    },
    /// Put a region (or endpoint) back.
    Undrain {
        /// Region name.
        #[arg(required_unless_present = "endpoint")]
        region: Option<String>,
        /// Undrain one endpoint address.
        #[arg(long, conflicts_with = "region")]
        endpoint: Option<IpAddr>,
    },
    /// Demo lab only: make a region's simulated load balancer fail (503).
    Fail {
        /// Region name.
        region: String,
    },
    /// Demo lab only: make it healthy again.
    Recover {
        /// Region name.
        region: String,
    },
    /// Demo lab only: the load a region's simulated load balancers report
    /// (their X-Load header; capacity is 100).
    Load {
        /// Region name.
        region: String,
        /// The load (a number >= 0).
        value: f64,
    },
    /// Demo lab only: slow a region's simulated load balancers down
    /// (e.g. 50ms; 0 to undo).
    Slow {
        /// Region name.
        region: String,
        /// Added delay per answer.
        delay: String,
    },
    /// Reload the configuration of the running server; waits as long as
    /// the reload takes.
    Reload,
    /// The operator actions (drain, undrain, reload, lab), newest first.
    Audit,
}

/// How log lines are written.
#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One line of text per event.
    Text,
    /// One JSON object per event (timestamp, level, fields).
    Json,
}

/// Logs to stderr; `SIGNPOST_LOG` sets the filter (default `info`).
/// Colours only on a terminal, and never with `NO_COLOR` set
/// (<https://no-color.org>).
pub fn init_logging(format: LogFormat) {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGNPOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.with_ansi(colour).init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .init(),
    }
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("signpost-control")
        .enable_all()
        .build()
    {
        Ok(rt) => Some(rt),
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            None
        }
    }
}

/// `signpost serve`.
pub fn serve(config: PathBuf) -> i32 {
    run_with_signals(RunOptions {
        config,
        listen: None,
        admin: None,
        lab: false,
        on_ready: None,
    })
}

fn run_with_signals(opts: RunOptions) -> i32 {
    let Some(rt) = runtime() else { return 2 };
    rt.block_on(async move {
        let (stop_tx, stop_rx) = watch::channel(false);
        let (reload_tx, reload_rx) = mpsc::unbounded_channel();
        if let Err(e) = spawn_signal_handlers(stop_tx, reload_tx) {
            eprintln!("error: cannot install signal handlers: {e}");
            return 2;
        }
        let signals = Signals {
            shutdown: stop_rx,
            reload: reload_rx,
        };
        match crate::run(opts, signals).await {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("error: {e}");
                e.exit_code()
            }
        }
    })
}

#[cfg(unix)]
fn spawn_signal_handlers(
    stop: watch::Sender<bool>,
    reload: mpsc::UnboundedSender<()>,
) -> std::io::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = term.recv() => break,
                _ = int.recv() => break,
                _ = hup.recv() => {
                    if reload.send(()).is_err() {
                        break;
                    }
                }
            }
        }
        if stop.send(true).is_err() {
            tracing::debug!("server already stopped");
        }
    });
    Ok(())
}

#[cfg(not(unix))]
fn spawn_signal_handlers(
    stop: watch::Sender<bool>,
    _reload: mpsc::UnboundedSender<()>,
) -> std::io::Result<()> {
    tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() && stop.send(true).is_err() {
            tracing::debug!("server already stopped");
        }
    });
    Ok(())
}

/// `signpost check`.
pub fn check(config: &Path) -> i32 {
    let metrics = Metrics::new();
    match crate::config::load(config).and_then(|c| state::Compiled::check(c, &metrics)) {
        Ok(c) => {
            println!(
                "{}: ok ({} zones, {} services, {} regions, {} probe targets)",
                config.display(),
                c.table.zones.len(),
                c.services.len(),
                c.regions.len(),
                c.targets.len()
            );
            0
        }
        Err(errors) => {
            for e in &errors.0 {
                eprintln!("{e}");
            }
            eprintln!(
                "{}: {} error{}",
                config.display(),
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" }
            );
            1
        }
    }
}

const DEMO_CONFIG: &str = include_str!("../signpost.toml");
const DEMO_ZONE: &str = include_str!("../zones/example.test.zone");
const DEMO_GEOIP: &[u8] = include_bytes!("../geoip/demo-city.mmdb");

/// Writes the built-in demo files to a fresh directory.
fn write_demo_files() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("signpost-demo-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("zones"))?;
    std::fs::create_dir_all(dir.join("geoip"))?;
    std::fs::write(dir.join("signpost.toml"), DEMO_CONFIG)?;
    std::fs::write(dir.join("zones/example.test.zone"), DEMO_ZONE)?;
    std::fs::write(dir.join("geoip/demo-city.mmdb"), DEMO_GEOIP)?;
    Ok(dir)
}

/// `signpost demo`.
pub fn demo(dns: SocketAddr, admin: SocketAddr) -> i32 {
    let dir = match write_demo_files() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: cannot write the demo files: {e}");
            return 2;
        }
    };
    let exe = std::env::current_exe()
        .ok()
        .map(|p| {
            let cwd = std::env::current_dir().unwrap_or_default();
            match p.strip_prefix(&cwd) {
                Ok(rel) => format!("./{}", rel.display()),
                Err(_) => p.display().to_string(),
            }
        })
        .unwrap_or_else(|| "signpost".to_string());
    let config = dir.join("signpost.toml");
    let shown = config.clone();
    let code = run_with_signals(RunOptions {
        config,
        listen: Some(vec![dns]),
        admin: Some(admin),
        lab: true,
        on_ready: Some(Box::new(move |r: &Ready| print_demo_help(r, &exe, &shown))),
    });
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::debug!("removing {}: {e}", dir.display());
    }
    code
}

fn print_demo_help(r: &Ready, exe: &str, config: &Path) {
    let dns = r.dns.first().copied();
    let (host, port) = dns.map_or(("127.0.0.1".to_string(), 5353), |a| {
        (a.ip().to_string(), a.port())
    });
    let admin = r.admin.map(|a| format!("http://{a}")).unwrap_or_default();
    let admin_flag = if admin == "http://127.0.0.1:9053" {
        String::new()
    } else {
        format!(" --admin {admin}")
    };
    let config = config.display();
    println!(
        r#"
signpost demo is serving example.test. on {host} port {port} (udp+tcp); admin API on {admin}
Simulated regional load balancers: us-east 127.0.1.1, eu-west 127.0.2.1 + 127.0.2.2, ap-south 127.0.3.1, sa-east 127.0.4.1 (port 8080)

Ask as clients from different places (EDNS Client Subnet):
  dig @{host} -p {port} www.example.test +subnet=193.0.6.0/24     # Amsterdam  -> eu-west (127.0.2.x)
  dig @{host} -p {port} www.example.test +subnet=24.24.24.0/24    # Syracuse   -> us-east (127.0.1.1)
  dig @{host} -p {port} www.example.test +subnet=49.207.0.0/24    # India      -> ap-south (127.0.3.1)
  dig @{host} -p {port} www.example.test +subnet=177.1.2.0/24     # Sao Paulo  -> sa-east (127.0.4.1)
  dig @{host} -p {port} api.example.test                          # weighted: us-east 3 : eu-west 1
  dig @{host} -p {port} app.example.test +subnet=193.0.6.0/24     # a static CNAME to www
  dig @{host} -p {port} sticky.example.test +subnet=198.51.100.0/24 # hash: the same network, the same answer
  dig @{host} -p {port} ll.example.test                           # least-loaded: shares follow the reported loads
  dig @{host} -p {port} fast.example.test                         # fastest: the region answering its probes quickest

Steer by load and latency (the simulated LBs report X-Load, capacity 100):
  {exe} ctl load eu-west 90{admin_flag}     # ll moves away from eu-west; www's EU clients spill over (shed 0.8-0.95)
  {exe} ctl slow us-east 50ms{admin_flag}   # fast avoids us-east; `ctl slow us-east 0` undoes it

Make a region fail for real, watch the first dig move to the next-nearest region, then bring it back:
  {exe} ctl fail eu-west{admin_flag}
  {exe} ctl recover eu-west{admin_flag}
Or take it out by hand (optionally for a while) and look at the state:
  {exe} ctl drain eu-west --for 5m{admin_flag}
  {exe} ctl undrain eu-west{admin_flag}
  {exe} ctl status{admin_flag}
  {exe} ctl audit{admin_flag}
  {exe} explain www.example.test --client 193.0.6.1{admin_flag}
  {exe} explain www.example.test --client 193.0.6.1 --down eu-west{admin_flag}   # what if eu-west went down?
  curl -s {admin}/metrics
db.example.test keeps at least one region (min_healthy_regions = 1): after draining eu-west,
`ctl drain us-east` is refused (409) unless you add --force.

The demo serves a copy of its built-in configuration: {config}
Edit that file and run `{exe} ctl reload{admin_flag}` to change the running demo
(the signpost.toml in the source tree is not read).

Stop with Ctrl-C.
"#
    );
}

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

/// An explanation, for people: the question, the client, the rule and
/// the answer, then each candidate region in decision order.
pub fn render_explain(v: &Value) -> String {
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let f = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
    let mut out = String::new();
    let c = v.get("client").cloned().unwrap_or(Value::Null);
    let place: Vec<String> = [s(&c, "country"), s(&c, "continent")]
        .into_iter()
        .filter(|x| !x.is_empty())
        .collect();
    out.push_str(&format!(
        "{} {} for client {} ({}{})\n",
        s(v, "name"),
        s(v, "type"),
        s(&c, "address"),
        if place.is_empty() {
            "location unknown".to_string()
        } else {
            place.join(", ")
        },
        match s(&c, "network") {
            n if n.is_empty() => String::new(),
            n => format!("; GeoIP network {n}"),
        }
    ));
    let down: Vec<&str> = strings(v, "what_if_down");
    if !down.is_empty() {
        out.push_str(&format!(
            "what if down: {} (live state untouched)\n",
            down.join(", ")
        ));
    }
    out.push_str(&format!(
        "policy {}, select {}; rule: {}\n",
        s(v, "policy"),
        s(v, "select"),
        s(v, "rule")
    ));
    let answer: Vec<&str> = strings(v, "answer");
    out.push_str(&format!(
        "answer: {} (ttl {}, ECS scope /{})\n\n",
        if answer.is_empty() {
            "none (NODATA)".to_string()
        } else {
            answer.join(", ")
        },
        v.get("ttl").and_then(Value::as_u64).unwrap_or(0),
        v.get("scope").and_then(Value::as_u64).unwrap_or(0)
    ));
    out.push_str(&format!(
        "{:<5} {:<16} {:>10} {:<9} {:>6} {:>6} {:>9}  ENDPOINTS\n",
        "RANK", "REGION", "DISTANCE", "STATE", "WEIGHT", "LOAD", "LATENCY"
    ));
    for r in items(v, "candidates") {
        let b = |k: &str| r.get(k).and_then(Value::as_bool).unwrap_or(false);
        let state = if b("drained") {
            "drained"
        } else if b("healthy") {
            "healthy"
        } else if down.contains(&s(r, "region").as_str()) {
            "down*"
        } else {
            "down"
        };
        let eps: Vec<String> = items(r, "endpoints")
            .map(|e| {
                let eb = |k: &str| e.get(k).and_then(Value::as_bool).unwrap_or(false);
                format!(
                    "{} {}",
                    s(e, "address"),
                    if eb("drained") {
                        "drained"
                    } else if eb("healthy") {
                        "up"
                    } else {
                        "down"
                    }
                )
            })
            .collect();
        out.push_str(&format!(
            "{:<5} {:<16} {:>10} {:<9} {:>6} {:>6} {:>9}  {}\n",
            r.get("rank")
                .and_then(Value::as_u64)
                .map_or("-".to_string(), |n| n.to_string()),
            s(r, "region"),
            f(r, "distance_km").map_or("-".to_string(), |d| format!("{d:.0} km")),
            state,
            r.get("weight").and_then(Value::as_u64).unwrap_or(0),
            f(r, "utilisation").map_or_else(
                || f(r, "load").map_or("-".to_string(), |l| format!("{l:.0}")),
                |u| format!("{:.0}%", u * 100.0)
            ),
            f(r, "latency_ms").map_or("-".to_string(), |l| format!("{l:.1} ms")),
            eps.join(", ")
        ));
    }
    if !down.is_empty() {
        out.push_str("* down in this what-if only\n");
    }
    out
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
    let base = admin.url.trim_end_matches('/').to_string();
    let (method, path) = match &cmd {
        CtlCommand::Status => (reqwest::Method::GET, "/v1/status".to_string()),
        CtlCommand::Audit => (reqwest::Method::GET, "/v1/audit".to_string()),
        CtlCommand::Drain {
            region,
            endpoint,
            duration,
            force,
        } => {
            let mut q: Vec<String> = Vec::new();
            if let Some(d) = duration {
                q.push(format!("for={}", encode(d)));
            }
            if *force {
                q.push("force=true".to_string());
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
                (None, None) => return usage("drain needs a region or --endpoint"),
            }
        }
        CtlCommand::Undrain { region, endpoint } => match (region, endpoint) {
            (_, Some(e)) => (reqwest::Method::DELETE, format!("/v1/endpoints/{e}/drain")),
            (Some(r), None) => (
                reqwest::Method::DELETE,
                format!("/v1/regions/{}/drain", encode(r)),
            ),
            (None, None) => return usage("undrain needs a region or --endpoint"),
        },
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
    };
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
    match cmd {
        CtlCommand::Status => {
            print!("{}", render_status(&v));
            0
        }
        CtlCommand::Audit => {
            print!("{}", render_audit(&v));
            0
        }
        CtlCommand::Drain { .. } => {
            let what = render_target(v.get("drained"));
            match v.get("for").and_then(Value::as_str) {
                Some(d) => println!("drained {what} for {d}; it returns to answers by itself then"),
                None => println!("drained {what} until undrained; answers move away now"),
            }
            0
        }
        CtlCommand::Undrain { .. } => {
            println!(
                "undrained {}; it returns to answers while its probes pass",
                render_target(v.get("undrained"))
            );
            0
        }
        CtlCommand::Load { region, value } => {
            println!(
                "lab: {region} reports load {value} (capacity 100); least-loaded answers shift within a couple of probe intervals"
            );
            0
        }
        CtlCommand::Slow { region, delay } => {
            if delay.trim() == "0" {
                println!("lab: {region} answers without delay again");
            } else {
                println!(
                    "lab: {region} answers its probes {delay} later; fastest answers move as its smoothed latency rises"
                );
            }
            0
        }
        CtlCommand::Fail { region } => {
            println!(
                "lab: {region} now answers 503 on its health check; answers move once the check sees it"
            );
            0
        }
        CtlCommand::Recover { region } => {
            println!(
                "lab: {region} answers 200 again; it returns to answers after `rise` good checks"
            );
            0
        }
        CtlCommand::Reload => {
            print!("{}", render_reload(&v));
            0
        }
    }
}

/// `{"region": R}` or `{"endpoint": A}` of a drain reply.
fn render_target(v: Option<&Value>) -> String {
    let v = v.unwrap_or(&Value::Null);
    match (v.get("region"), v.get("endpoint")) {
        (Some(r), _) => format!("region {}", r.as_str().unwrap_or_default()),
        (None, Some(e)) => format!("endpoint {}", e.as_str().unwrap_or_default()),
        _ => v.to_string(),
    }
}

/// Text from the server made safe for a terminal: control characters
/// (escape sequences a caller could have planted in a drain target) shown
/// as `?`.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// `/v1/audit`, one line per action.
pub fn render_audit(v: &Value) -> String {
    let s = |v: &Value, k: &str| printable(v.get(k).and_then(Value::as_str).unwrap_or(""));
    let list = v.get("audit").and_then(Value::as_array);
    let mut out = format!(
        "{:<25} {:<9} {:<28} {:<8} {:<16} RESULT\n",
        "AT", "ACTION", "TARGET", "FOR", "FROM"
    );
    for e in list.into_iter().flatten() {
        let mut from = s(e, "from");
        if let Some(n) = e.get("node").and_then(Value::as_str) {
            from = format!("{from}@{n}");
        }
        out.push_str(&format!(
            "{:<25} {:<9} {:<28} {:<8} {:<16} {}\n",
            s(e, "at"),
            s(e, "action"),
            s(e, "target"),
            e.get("for").and_then(Value::as_str).unwrap_or("-"),
            if from.is_empty() {
                "-".to_string()
            } else {
                from
            },
            s(e, "result")
        ));
    }
    if list.is_none_or(|l| l.is_empty()) {
        out.push_str("(no operator actions yet)\n");
    }
    out
}

fn usage(msg: &str) -> i32 {
    eprintln!("error: {msg}");
    1
}

/// The members of the JSON array `v[key]` (none if it is missing or not an
/// array).
fn items<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// The strings of the JSON array `v[key]`.
fn strings<'a>(v: &'a Value, key: &str) -> Vec<&'a str> {
    items(v, key).filter_map(Value::as_str).collect()
}

/// A reload's reply, for people: what changed, then each warning.
pub fn render_reload(v: &Value) -> String {
    let v = v.get("summary").unwrap_or(v);
    let n = |k: &str| v.get(k).and_then(Value::as_u64).unwrap_or(0);
    let mut out = format!(
        "reloaded: generation {}, {} zones, {} services; probe targets: {} kept ({} with new timing), {} added, {} removed{}\n",
        n("generation"),
        n("zones"),
        n("services"),
        n("targets_kept"),
        n("targets_updated"),
        n("targets_added"),
        n("targets_removed"),
        if v.get("geoip_reloaded").and_then(Value::as_bool) == Some(true) {
            "; GeoIP database compiled anew"
        } else {
            ""
        }
    );
    for w in items(v, "warnings") {
        out.push_str(&format!("warning: {}\n", w.as_str().unwrap_or_default()));
    }
    out
}

/// A human-readable table of `/v1/status`: each region with its state,
/// load and latency, then its endpoints with their state, since when, and
/// their last probe; drains say until when on a line of their own.
pub fn render_status(v: &Value) -> String {
    let mut out = String::new();
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let b = |v: &Value, k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    let f = |v: &Value, k: &str| v.get(k).and_then(Value::as_f64);
    let load = |v: &Value| match (f(v, "utilisation"), f(v, "load")) {
        (Some(u), _) => format!("{:.0}%", u * 100.0),
        (None, Some(l)) => format!("{l:.0}"),
        _ => "-".to_string(),
    };
    let latency = |v: &Value| f(v, "latency_ms").map_or("-".to_string(), |l| format!("{l:.1} ms"));
    out.push_str(&format!(
        "generation {}  config {}\n",
        v.get("generation").and_then(Value::as_u64).unwrap_or(0),
        s(v, "config")
    ));
    if let Some(c) = v.get("cluster").filter(|c| !c.is_null()) {
        let nodes = c.get("nodes").and_then(Value::as_array);
        out.push_str(&format!(
            "cluster: node {}, {}, {} nodes, down_quorum {}{}\n",
            s(c, "node"),
            if b(c, "connected") {
                "connected"
            } else {
                "etcd unreachable"
            },
            nodes.map_or(0, Vec::len),
            s(c, "down_quorum"),
            match c.get("diverged").and_then(Value::as_array) {
                Some(d) if !d.is_empty() => format!(
                    "; nodes with another configuration: {}",
                    d.iter()
                        .filter_map(Value::as_str)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                _ => String::new(),
            }
        ));
    }
    out.push_str(&format!(
        "\n{:<16} {:<22} {:>6} {:>9}\n",
        "REGION", "STATE", "LOAD", "LATENCY"
    ));
    for r in items(v, "regions") {
        let eps: Vec<&Value> = items(r, "endpoints").collect();
        // `healthy` of a region: an endpoint up and not drained (usable);
        // of an endpoint: its probes pass, drained or not
        let passing = eps.iter().any(|e| b(e, "healthy"));
        let state = if b(r, "drained") {
            if passing {
                "drained (probes pass)"
            } else {
                "drained (probes fail)"
            }
        } else if !b(r, "healthy") {
            if passing {
                "out (endpoints drained)"
            } else {
                "DOWN"
            }
        } else if eps.iter().all(|e| b(e, "healthy") && !b(e, "drained")) {
            "up"
        } else {
            "up (some endpoints out)"
        };
        out.push_str(&format!(
            "{:<16} {:<22} {:>6} {:>9}\n",
            s(r, "name"),
            state,
            load(r),
            latency(r)
        ));
        if b(r, "drained") {
            match r.get("drain_until").and_then(Value::as_str) {
                Some(u) => out.push_str(&format!("  drained until {u}\n")),
                None => out.push_str("  drained until undrained\n"),
            }
        }
        for e in eps {
            let state = match (b(e, "drained"), b(e, "healthy")) {
                (true, true) => "drained (up)",
                (true, false) => "drained (down)",
                (false, true) => "up",
                (false, false) => "DOWN",
            };
            let since = match s(e, "since") {
                x if x.is_empty() => String::new(),
                x => format!("  since {x}"),
            };
            let last = e
                .get("last_probe")
                .filter(|p| !p.is_null())
                .map(|p| {
                    format!(
                        "  last probe: {}, {:.1} ms",
                        s(p, "reason"),
                        p.get("latency_ms").and_then(Value::as_f64).unwrap_or(0.0)
                    )
                })
                .unwrap_or_default();
            let until = match e.get("drain_until").and_then(Value::as_str) {
                Some(u) => format!("  drained until {u}"),
                None => String::new(),
            };
            out.push_str(&format!(
                "  {:<30} {:<15} {:>6} {:>9}{since}{last}{until}\n",
                s(e, "address"),
                state,
                load(e),
                latency(e)
            ));
        }
    }
    out.push_str(&format!(
        "\n{:<28} {:<9} {:<5} REGIONS (usable/total)\n",
        "SERVICE", "POLICY", "TTL"
    ));
    for sv in items(v, "services") {
        let regions: Vec<&str> = strings(sv, "regions");
        out.push_str(&format!(
            "{:<28} {:<9} {:<5} {} ({}/{})\n",
            s(sv, "name"),
            s(sv, "policy"),
            sv.get("ttl").and_then(Value::as_u64).unwrap_or(0),
            regions.join(", "),
            sv.get("healthy_regions")
                .and_then(Value::as_u64)
                .unwrap_or(0),
            regions.len()
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ep(address: &str, healthy: bool, drained: bool) -> Value {
        json!({ "address": address, "healthy": healthy, "drained": drained, "capacity": 100.0 })
    }

    #[test]
    fn status_keeps_drained_out_and_down_apart() {
        let v = json!({
            "generation": 7,
            "config": "/etc/signpost/signpost.toml",
            "cluster": { "node": "ns1", "connected": true, "down_quorum": "majority",
                         "nodes": [{}, {}, {}], "diverged": ["ns3"] },
            "regions": [
                { "name": "a", "healthy": false, "drained": true,
                  "drain_until": "2026-12-04T23:59:59Z",
                  "endpoints": [ep("192.0.2.1", true, true)] },
                { "name": "b", "healthy": false, "drained": false,
                  "endpoints": [ep("192.0.2.2", true, true)] },
                { "name": "c", "healthy": false, "drained": false,
                  "endpoints": [ep("192.0.2.3", false, false)] },
                { "name": "d", "healthy": true, "drained": false, "utilisation": 0.42,
                  "latency_ms": 3.25,
                  "endpoints": [ep("192.0.2.4", true, false), ep("192.0.2.5", false, false)] },
            ],
            "services": [],
        });
        let out = render_status(&v);
        let line = |r: &str| {
            out.lines()
                .find(|l| l.starts_with(&format!("{r} ")))
                .unwrap_or_default()
                .to_string()
        };
        assert!(line("a").contains("drained (probes pass)"), "{out}");
        assert!(
            out.contains("  drained until 2026-12-04T23:59:59Z"),
            "{out}"
        );
        assert!(line("b").contains("out (endpoints drained)"), "{out}");
        assert!(line("c").contains("DOWN"), "{out}");
        let d = line("d");
        assert!(
            d.contains("up (some endpoints out)") && d.contains("42%") && d.contains("3.2 ms"),
            "{d}"
        );
        assert!(
            out.contains("3 nodes") && out.contains("another configuration: ns3"),
            "{out}"
        );
    }

    #[test]
    fn audit_lines_cannot_carry_terminal_escapes() {
        let v = json!({ "audit": [{ "at": "2026-12-04T22:00:00Z", "action": "drain",
            "target": "region \u{1b}[2Jevil", "from": "127.0.0.1", "result": "404 unknown" }] });
        let out = render_audit(&v);
        assert!(!out.contains('\u{1b}'), "{out:?}");
        assert!(out.contains("region ?[2Jevil"), "{out}");
        assert!(render_audit(&json!({ "audit": [] })).contains("no operator actions"));
    }
}
