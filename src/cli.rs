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
    Status {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
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
    Reload {
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Logs to stderr; `SIGNPOST_LOG` sets the filter (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SIGNPOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .init();
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
    let code = run_with_signals(RunOptions {
        config,
        listen: Some(vec![dns]),
        admin: Some(admin),
        lab: true,
        on_ready: Some(Box::new(move |r: &Ready| print_demo_help(r, &exe))),
    });
    if let Err(e) = std::fs::remove_dir_all(&dir) {
        tracing::debug!("removing {}: {e}", dir.display());
    }
    code
}

fn print_demo_help(r: &Ready, exe: &str) {
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
  {exe} explain www.example.test --client 193.0.6.1{admin_flag}
  curl -s {admin}/metrics

Stop with Ctrl-C.
"#
    );
}

/// `signpost explain`.
pub fn explain(
    name: &str,
    client: IpAddr,
    qtype: QType,
    config: Option<&Path>,
    admin: &Admin,
) -> i32 {
    let family = match qtype {
        QType::A => Family::V4,
        QType::Aaaa => Family::V6,
    };
    if let Some(path) = config {
        let metrics = Metrics::new();
        let compiled = match state::load(path, &metrics) {
            Ok(c) => c,
            Err(errors) => {
                eprintln!("{errors}");
                return 1;
            }
        };
        let snap = Snapshot::all_up(Arc::new(compiled), 0);
        return match crate::explain::explain(&snap, name, family, client, "ecs") {
            Ok(e) => print_json(&serde_json::to_value(e).unwrap_or(Value::Null)),
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        };
    }
    let t = match qtype {
        QType::A => "A",
        QType::Aaaa => "AAAA",
    };
    let url = format!(
        "{}/v1/explain?name={}&type={t}&client={client}",
        admin.url.trim_end_matches('/'),
        encode(name)
    );
    match call(reqwest::Method::GET, &url, admin) {
        Ok(v) => print_json(&v),
        Err(code) => code,
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
    call_with(method, url, admin, Some(CALL_TIMEOUT))
}

/// [`call`] with a timeout of its own (`None`: wait for the answer, and
/// say so on stderr every few seconds).
fn call_with(
    method: reqwest::Method,
    url: &str,
    admin: &Admin,
    timeout: Option<Duration>,
) -> Result<Value, i32> {
    crate::init_tls();
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
            Err(1)
        }
    })
}

/// `signpost ctl`.
pub fn ctl(cmd: CtlCommand, admin: &Admin) -> i32 {
    let base = admin.url.trim_end_matches('/').to_string();
    let (method, path) = match &cmd {
        CtlCommand::Status { .. } => (reqwest::Method::GET, "/v1/status".to_string()),
        CtlCommand::Drain {
            region,
            endpoint,
            duration,
        } => {
            let q = duration
                .as_ref()
                .map(|d| format!("?for={}", encode(d)))
                .unwrap_or_default();
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
        CtlCommand::Reload { .. } => (reqwest::Method::POST, "/v1/reload".to_string()),
    };
    let timeout = match cmd {
        CtlCommand::Reload { .. } => None,
        _ => Some(CALL_TIMEOUT),
    };
    let v = match call_with(method, &format!("{base}{path}"), admin, timeout) {
        Ok(v) => v,
        Err(code) => return code,
    };
    match cmd {
        CtlCommand::Status { json: true } => print_json(&v),
        CtlCommand::Status { json: false } => {
            print!("{}", render_status(&v));
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
        CtlCommand::Reload { json: false } => {
            print!("{}", render_reload(&v));
            0
        }
        _ => print_json(&v),
    }
}

fn usage(msg: &str) -> i32 {
    eprintln!("error: {msg}");
    1
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
    for w in v
        .get("warnings")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        out.push_str(&format!("warning: {}\n", w.as_str().unwrap_or_default()));
    }
    out
}

/// A human-readable table of `/v1/status`.
pub fn render_status(v: &Value) -> String {
    let mut out = String::new();
    let s = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
    let b = |v: &Value, k: &str| v.get(k).and_then(Value::as_bool).unwrap_or(false);
    out.push_str(&format!(
        "generation {}  config {}\n\n",
        v.get("generation").and_then(Value::as_u64).unwrap_or(0),
        s(v, "config")
    ));
    out.push_str(&format!(
        "{:<16} {:<8} {:<8} ENDPOINTS\n",
        "REGION", "HEALTHY", "DRAINED"
    ));
    for r in v
        .get("regions")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let mut eps = Vec::new();
        for e in r
            .get("endpoints")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let state = if b(e, "drained") {
                "drained"
            } else if b(e, "healthy") {
                "up"
            } else {
                "down"
            };
            let last = e
                .get("last_probe")
                .filter(|p| !p.is_null())
                .map(|p| {
                    format!(
                        " ({}, {}ms)",
                        s(p, "reason"),
                        p.get("latency_ms").and_then(Value::as_f64).unwrap_or(0.0)
                    )
                })
                .unwrap_or_default();
            eps.push(format!("{} {state}{last}", s(e, "address")));
        }
        let drained = if b(r, "drained") {
            match r.get("drain_until").and_then(Value::as_str) {
                Some(u) => format!("until {u}"),
                None => "yes".to_string(),
            }
        } else {
            "no".to_string()
        };
        out.push_str(&format!(
            "{:<16} {:<8} {:<8} {}\n",
            s(r, "name"),
            if b(r, "healthy") { "yes" } else { "no" },
            drained,
            eps.join(", ")
        ));
    }
    out.push_str(&format!(
        "\n{:<28} {:<9} {:<5} REGIONS (healthy/total)\n",
        "SERVICE", "POLICY", "TTL"
    ));
    for sv in v
        .get("services")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let regions: Vec<&str> = sv
            .get("regions")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
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
