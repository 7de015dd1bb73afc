//! The commands that run signpost in this process: `serve`, `check` and
//! `demo`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use tokio::sync::{mpsc, watch};

use crate::metrics::Metrics;
use crate::state;
use crate::{Ready, RunOptions, Signals};

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
pub fn serve(config: PathBuf, discard_state: bool) -> i32 {
    run_with_signals(RunOptions {
        config,
        listen: None,
        admin: None,
        lab: false,
        discard_state,
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

const DEMO_CONFIG: &str = include_str!("../../signpost.toml");
const DEMO_ZONE: &str = include_str!("../../zones/example.test.zone");
const DEMO_GEOIP: &[u8] = include_bytes!("../../geoip/demo-city.mmdb");

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
        discard_state: false,
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
