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
//! - [`dns`]: the data plane: UDP workers, UDP through AF_XDP, TCP, wire in -> snapshot -> wire out.
//! - [`health`]: probes (http, https, tcp) and the rise/fall tracker.
//! - [`control`]: the control loop: health reports, drains and reloads in,
//!   snapshots out; a room per concern (probes, operator actions and the
//!   state file, reloads, the cluster link, publishing, status).
//! - [`view`]: what this node knows of its cluster (nodes, verdicts,
//!   drains, audit) and the one quorum rule.
//! - [`text`]: how times, durations and measurements are written.
//! - [`cluster`]: etcd: this node's liveness and verdicts out, the
//!   cluster's drains, verdicts and audit in (SPEC §8).
//! - [`notify`]: webhook notifications: an outbox per receiver, each
//!   delivered in order by a task of its own (SPEC §11).
//! - [`admin`]: the HTTP admin API, `/metrics` and the API's OpenAPI description.
//! - [`explain`]: the decision trace of one answer.
//! - [`metrics`]: every exported metric, in one place.
//! - [`os`]: input files, the allocator, the open-files limit, TLS.
//! - [`lab`]: the demo's simulated regional load balancers.
//! - [`cli`]: the command line's subcommands.

pub mod admin;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod control;
pub mod dns;
pub mod dnssec;
pub mod explain;
pub mod geo;
pub mod health;
pub mod lab;
pub mod metrics;
pub mod model;
pub mod notify;
pub mod os;
pub mod state;
pub mod steer;
pub mod text;
pub mod view;
pub mod xfr;
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
    /// Start although the `[server] state` file cannot be used, without
    /// its drains (`serve --discard-state`).
    pub discard_state: bool,
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

/// Open files kept aside from DNS TCP connections: listening and UDP
/// sockets, the admin API's connections, etcd, files (plus two per
/// endpoint for its probes).
const FD_RESERVE: usize = 192;

/// Runs signpost until `signals.shutdown` turns true.
pub async fn run(opts: RunOptions, mut signals: Signals) -> Result<(), RunError> {
    os::tune_allocator();
    os::init_tls();
    let metrics = Arc::new(Metrics::new());
    let path = opts.config.clone();
    let mut config = config::load(&path).map_err(RunError::Config)?;
    if let Some(l) = opts.listen {
        config.server.listen = l;
    }
    if let Some(a) = opts.admin {
        config.server.admin = Some(a);
    }
    fit_open_files(&mut config);
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
        os::release_memory();
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
        path.clone(),
        compiled,
        metrics.clone(),
        admin_token.clone(),
        stop_rx.clone(),
        opts.discard_state,
    )
    .await
    .map_err(|e| {
        RunError::Config(ConfigErrors(vec![config::ConfigError::Invalid {
            file: path.display().to_string(),
            key: e.key().into(),
            reason: e.to_string(),
        }]))
    })?;

    let stop_flag = Arc::new(AtomicBool::new(false));
    let listeners = start_dns(&server, &shared, &metrics, &stop_flag, &stop_rx)?;

    let (cmd_tx, cmd_rx) = mpsc::channel::<Command>(64);
    let admin = match admin_listener {
        Some(l) => {
            let state = admin::AdminState {
                shared: shared.clone(),
                commands: cmd_tx.clone(),
                metrics: metrics.clone(),
                token: admin_token.clone(),
                lab: lab.clone(),
                shares: admin::dashboard::Shares::start(metrics.clone()),
            };
            Some(start_admin(l, state, &server, &stop_rx)?)
        }
        None => None,
    };
    let control_task = tokio::spawn(control.run(cmd_rx, stop_rx.clone()));

    if let Some(f) = opts.on_ready {
        f(&Ready {
            dns: listeners.addrs.clone(),
            admin: admin.as_ref().map(|a| a.0),
        });
    }

    serve_signals(&mut signals, &cmd_tx).await;

    tracing::info!("shutting down");
    stop_flag.store(true, Ordering::SeqCst);
    if stop_tx.send(true).is_err() {
        tracing::debug!("no listener left to stop");
    }
    join_dns(listeners.threads).await;
    if let Err(e) = control_task.await {
        tracing::error!("control loop: {e}");
    }
    if let Some((_, t)) = admin
        && let Err(e) = t.await
    {
        tracing::error!("admin server task: {e}");
    }
    if let Some(lab) = lab {
        lab.stop().await;
    }
    Ok(())
}

/// Open files: the soft limit up to the hard one, and the TCP connection
/// limit cut to what fits beside everything else, so that clients holding
/// connections can never starve the health probes.
fn fit_open_files(config: &mut config::Config) {
    let nofile = os::raise_nofile_limit();
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
}

/// Opens the DNS listeners (UDP workers and TCP) on `server.listen`.
fn start_dns(
    server: &config::Server,
    shared: &state::Shared,
    metrics: &Arc<Metrics>,
    stop_flag: &Arc<AtomicBool>,
    stop_rx: &watch::Receiver<bool>,
) -> Result<dns::Listeners, RunError> {
    let tcp = dns::tcp::TcpSettings {
        idle_timeout: server.tcp_idle_timeout,
        max_connections: server.tcp_max_connections,
        per_source: server.tcp_per_source,
        max_lifetime: server.tcp_max_lifetime,
        max_queries: server.tcp_max_queries,
        pool: Arc::default(),
        open: metrics.tcp_open.clone(),
        refused: metrics.tcp_refused.clone(),
        transfers: metrics.xfr_out.clone(),
    };
    let udp = dns::udp::UdpSettings {
        workers: server.workers,
        batch_wait: server.udp_batch_wait,
    };
    let xdp = server
        .xdp
        .as_ref()
        .map(|x| dns::XdpSettings {
            interfaces: x.interfaces.clone(),
            queues: x.queues,
            native: x.native,
        })
        .unwrap_or_default();
    dns::start(
        &server.listen,
        udp,
        &xdp,
        shared.clone(),
        metrics,
        tcp,
        stop_flag.clone(),
        stop_rx.clone(),
    )
    .map_err(|e| RunError::Runtime(format!("dns: cannot listen: {e}")))
}

/// Serves the admin API on `listener`; returns its address and task.
fn start_admin(
    listener: TcpListener,
    state: admin::AdminState,
    server: &config::Server,
    stop_rx: &watch::Receiver<bool>,
) -> Result<(SocketAddr, tokio::task::JoinHandle<()>), RunError> {
    let addr = listener
        .local_addr()
        .map_err(|e| RunError::Runtime(e.to_string()))?;
    let app = admin::router(state);
    let task = tokio::spawn(admin::serve::serve(listener, app, stop_rx.clone()));
    tracing::info!("admin listening on {addr}");
    if !addr.ip().is_loopback() && server.admin_token.is_none() {
        tracing::warn!(
            "the admin API on {addr} is reachable beyond this host and has no admin_token: anyone who reaches it can drain regions"
        );
    }
    Ok((addr, task))
}

/// Waits for the stop signal, passing reload requests (SIGHUP) on.
async fn serve_signals(signals: &mut Signals, cmd_tx: &mpsc::Sender<Command>) {
    loop {
        tokio::select! {
            r = signals.shutdown.changed() => {
                if r.is_err() || *signals.shutdown.borrow() {
                    return;
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
}

/// Waits for the DNS worker threads to finish their last batch.
async fn join_dns(threads: Vec<std::thread::JoinHandle<()>>) {
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
}
