//! signpost: an authoritative DNS server that answers with the nearest
//! healthy regional load balancer (a global server load balancer).
//!
//! # Layout
//!
//! - [`model`]: the ground floor: plain types both the configuration and
//!   the answer path name (policies, RRL limits).
//! - [`config`]: the TOML model (serde, unknown keys rejected) and its
//!   validation, with errors that name file, key and reason.
//! - [`zone`]: zone files -> pre-encoded wire RRsets; one hash table for
//!   every served name.
//! - [`geo`]: MaxMind DB lookups: address -> country, continent,
//!   coordinates and the matched network's prefix.
//! - [`steer`]: pure answer choice: policies, map, distance, weights,
//!   health filter, fail-open, ECS scope.
//! - [`state`]: the immutable [`state::Snapshot`] behind one `ArcSwap`,
//!   built from a config.
//! - [`dns`]: the data plane: UDP workers, TCP, wire in -> snapshot -> wire out.
//! - [`health`]: probes (http, https, tcp) and the rise/fall tracker.
//! - [`control`]: the control loop: health reports, drains and reloads in,
//!   snapshots out.
//! - [`cluster`]: etcd: this node's liveness and verdicts out, the
//!   cluster's drains, verdicts and audit in (SPEC §8).
//! - [`persist`]: the `[server] state` file that keeps drains across
//!   restarts.
//! - [`admin`]: the HTTP admin API and `/metrics`.
//! - [`explain`]: the decision trace of one answer.
//! - [`metrics`]: every exported metric, in one place.
//! - [`lab`]: the demo's simulated regional load balancers.
//! - [`cli`]: the command line's subcommands.

pub mod admin;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod control;
pub mod dns;
pub mod explain;
pub mod geo;
pub mod health;
pub mod lab;
pub mod metrics;
pub mod model;
pub mod persist;
pub mod state;
pub mod steer;
pub mod zone;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::config::ConfigErrors;
use crate::control::{Command, Control};
use crate::metrics::Metrics;
use crate::state::Compiled;

/// Why `run` stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The configuration or a file it names is invalid (exit 1).
    #[error("{0}")]
    Config(ConfigErrors),
    /// A runtime failure such as a port in use (exit 2).
    #[error("{0}")]
    Runtime(String),
}

impl RunError {
    /// The process exit code for this error (SPEC §2).
    pub fn exit_code(&self) -> i32 {
        match self {
            RunError::Config(_) => 1,
            RunError::Runtime(_) => 2,
        }
    }
}

/// Where signpost ended up listening.
#[derive(Debug, Clone)]
pub struct Ready {
    /// DNS addresses (UDP and TCP).
    pub dns: Vec<SocketAddr>,
    /// Admin API address.
    pub admin: Option<SocketAddr>,
}

/// A callback run once every listener is up.
pub type OnReady = Box<dyn FnOnce(&Ready) + Send>;

/// How to run.
pub struct RunOptions {
    /// The configuration file.
    pub config: PathBuf,
    /// Replace `server.listen` (the demo's and tests' port choice).
    pub listen: Option<Vec<SocketAddr>>,
    /// Replace `server.admin`.
    pub admin: Option<SocketAddr>,
    /// Start the failure lab (`signpost demo`).
    pub lab: bool,
    /// Called once every listener is up.
    pub on_ready: Option<OnReady>,
}

/// Signals from the outside world: stop, and reload.
pub struct Signals {
    /// Turns true to stop.
    pub shutdown: watch::Receiver<bool>,
    /// One message per reload request (SIGHUP).
    pub reload: mpsc::UnboundedReceiver<()>,
}

/// Reads a whole input file (configuration, zone, GeoIP database,
/// state), refusing what is not a regular file: a device such as
/// `/dev/zero` would never end and a FIFO would block the reader.
pub fn read_input(path: &std::path::Path) -> std::io::Result<Vec<u8>> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    std::fs::read(path)
}

/// [`read_input`] for text.
pub fn read_input_text(path: &std::path::Path) -> std::io::Result<String> {
    String::from_utf8(read_input(path)?)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

/// Hands memory freed by a large drop (a replaced configuration, a GeoIP
/// compile's scratch space) back to the system. glibc's allocator keeps
/// freed memory of its per-thread arenas otherwise, and a reload with a new
/// GeoIP database would leave its peak in the resident set for good
/// (docs/performance.md). Call it off the answer path: it walks the heap.
pub fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of glibc's own heaps.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Large allocations (1 MiB and more: a GeoIP table's arrays, a compile's
/// scratch) get pages of their own, which go back to the system when they
/// are freed. glibc otherwise raises this threshold after each such free
/// (up to 32 MiB), after which a GeoIP recompile's big arrays come from
/// the heap, interleave with long-lived data and stay resident after the
/// old table is dropped (docs/performance.md, "Soak"). Only the control
/// plane makes allocations this large.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes glibc's allocation parameters.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

/// Open files kept aside from DNS TCP connections: listening and UDP
/// sockets, the admin API's connections, etcd, files (plus two per
/// endpoint for its probes).
const FD_RESERVE: usize = 192;

/// Raises the soft open-files limit to the hard limit (at most 1 M);
/// returns the soft limit in force.
pub fn raise_nofile_limit() -> u64 {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write `rl`.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) != 0 {
            return 1024;
        }
        let want = rl.rlim_max.min(1 << 20);
        if rl.rlim_cur < want {
            let raised = libc::rlimit {
                rlim_cur: want,
                rlim_max: rl.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                tracing::debug!("open-files limit raised from {} to {want}", rl.rlim_cur);
                rl.rlim_cur = want;
            } else {
                tracing::warn!(
                    "cannot raise the open-files limit from {} to {want}",
                    rl.rlim_cur
                );
            }
        }
    }
    rl.rlim_cur
}

/// Installs the process-wide TLS crypto provider (ring) for the HTTPS
/// health checks; harmless when called twice.
pub fn init_tls() {
    if rustls::crypto::ring::default_provider()
        .install_default()
        .is_err()
    {
        tracing::debug!("a rustls crypto provider was already installed");
    }
}

/// Runs signpost until `signals.shutdown` turns true.
pub async fn run(opts: RunOptions, mut signals: Signals) -> Result<(), RunError> {
    tune_allocator();
    init_tls();
    let metrics = Arc::new(Metrics::new());
    let path = opts.config.clone();
    let mut config = config::load(&path).map_err(RunError::Config)?;
    if let Some(l) = opts.listen {
        config.server.listen = l;
    }
    if let Some(a) = opts.admin {
        config.server.admin = Some(a);
    }
    // Open files: the soft limit up to the hard one, and the TCP
    // connection limit cut to what fits beside everything else, so that
    // clients holding connections can never starve the health probes.
    let nofile = raise_nofile_limit();
    let reserve = FD_RESERVE
        + 2 * config
            .regions
            .iter()
            .map(|r| r.endpoints.len())
            .sum::<usize>();
    let fits = usize::try_from(nofile)
        .unwrap_or(usize::MAX)
        .saturating_sub(reserve)
        .max(1);
    if config.server.tcp_max_connections > fits {
        tracing::warn!(
            "server.tcp_max_connections {} does not fit the open-files limit {nofile} (with {reserve} kept for sockets, probes and the admin API): using {fits}; raise the limit (systemd: LimitNOFILE=) to allow more",
            config.server.tcp_max_connections
        );
        config.server.tcp_max_connections = fits;
    }
    let server = config.server.clone();

    // Admin first: a taken admin port fails before anything else starts.
    let admin_listener = match server.admin {
        None => None,
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .map_err(|e| RunError::Runtime(format!("admin: cannot listen on {a}: {e}")))?,
        ),
    };
    let lab = if opts.lab {
        Some(Arc::new(
            lab::Lab::start(&config)
                .await
                .map_err(|e| RunError::Runtime(e.to_string()))?,
        ))
    } else {
        None
    };

    let build_metrics = metrics.clone();
    let compiled = tokio::task::spawn_blocking(move || {
        let c = Compiled::build(config, &build_metrics, None);
        release_memory();
        c
    })
    .await
    .map_err(|e| RunError::Runtime(format!("loading failed: {e}")))?
    .map_err(RunError::Config)?;

    // Probe before serve: the first snapshot carries real health.
    let admin_token = Arc::new(arc_swap::ArcSwapOption::from(
        server.admin_token.clone().map(Arc::new),
    ));
    let (stop_tx, stop_rx) = watch::channel(false);
    let (control, shared) = Control::start(
        path,
        compiled,
        metrics.clone(),
        admin_token.clone(),
        stop_rx.clone(),
    )
    .await;

    let stop_flag = Arc::new(AtomicBool::new(false));
    let tcp = dns::tcp::TcpSettings {
        idle_timeout: server.tcp_idle_timeout,
        max_connections: server.tcp_max_connections,
        per_source: server.tcp_per_source,
        max_lifetime: server.tcp_max_lifetime,
        max_queries: server.tcp_max_queries,
        pool: Arc::default(),
        open: metrics.tcp_open.clone(),
        refused: metrics.tcp_refused.clone(),
    };
    let udp = dns::udp::UdpSettings {
        workers: server.workers,
        batch_wait: server.udp_batch_wait,
    };
    let listeners = dns::start(
        &server.listen,
        udp,
        shared.clone(),
        &metrics,
        tcp,
        stop_flag.clone(),
        stop_rx.clone(),
    )
    .map_err(|e| RunError::Runtime(format!("dns: cannot listen: {e}")))?;

    let (cmd_tx, cmd_rx) = mpsc::channel::<Command>(64);
    let mut admin_addr = None;
    let mut admin_task = None;
    if let Some(l) = admin_listener {
        let addr = l
            .local_addr()
            .map_err(|e| RunError::Runtime(e.to_string()))?;
        admin_addr = Some(addr);
        let app = admin::router(admin::AdminState {
            shared: shared.clone(),
            commands: cmd_tx.clone(),
            metrics: metrics.clone(),
            token: admin_token.clone(),
            lab: lab.clone(),
            shares: admin::dashboard::Shares::start(metrics.clone()),
        });
        admin_task = Some(tokio::spawn(admin::serve::serve(l, app, stop_rx.clone())));
        tracing::info!("admin listening on {addr}");
        if !addr.ip().is_loopback() && server.admin_token.is_none() {
            tracing::warn!(
                "the admin API on {addr} is reachable beyond this host and has no admin_token: anyone who reaches it can drain regions"
            );
        }
    }
    let control_task = tokio::spawn(control.run(cmd_rx, stop_rx.clone()));

    if let Some(f) = opts.on_ready {
        f(&Ready {
            dns: listeners.addrs.clone(),
            admin: admin_addr,
        });
    }

    loop {
        tokio::select! {
            r = signals.shutdown.changed() => {
                if r.is_err() || *signals.shutdown.borrow() {
                    break;
                }
            }
            Some(()) = signals.reload.recv() => {
                tracing::info!("reload requested");
                let reload = Command::Reload {
                    from: "SIGHUP".into(),
                    reply: None,
                };
                if cmd_tx.send(reload).await.is_err() {
                    tracing::error!("control loop is gone; cannot reload");
                }
            }
        }
    }

    tracing::info!("shutting down");
    stop_flag.store(true, Ordering::SeqCst);
    if stop_tx.send(true).is_err() {
        tracing::debug!("no listener left to stop");
    }
    let threads = listeners.threads;
    if let Err(e) = tokio::task::spawn_blocking(move || {
        for t in threads {
            if t.join().is_err() {
                tracing::error!("a dns worker panicked");
            }
        }
    })
    .await
    {
        tracing::error!("joining dns workers: {e}");
    }
    if let Err(e) = control_task.await {
        tracing::error!("control loop: {e}");
    }
    if let Some(t) = admin_task
        && let Err(e) = t.await
    {
        tracing::error!("admin server task: {e}");
    }
    if let Some(lab) = lab {
        lab.stop().await;
    }
    Ok(())
}
