//! The data plane: sockets, wire in -> snapshot -> wire out. This module
//! sees only the [`Snapshot`](crate::state::Snapshot).

pub mod answer;
pub mod rrl;
pub mod tcp;
pub mod udp;
pub mod wire;
#[cfg(target_os = "linux")]
pub mod xdp;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::state::Shared;

/// Settings of `[server.xdp]`: UDP through AF_XDP (Linux).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XdpSettings {
    /// Interfaces to serve UDP on through AF_XDP; empty: none.
    pub interfaces: Vec<String>,
    /// Queues per interface: 0 = every rx queue, N = queues 0..N-1.
    pub queues: u32,
    /// Native (driver) XDP, else generic (skb) XDP.
    pub native: bool,
}

/// The running DNS listeners.
pub struct Listeners {
    /// Addresses bound (ports resolved).
    pub addrs: Vec<SocketAddr>,
    /// UDP worker threads (they stop when the stop flag is set).
    pub threads: Vec<JoinHandle<()>>,
}

/// A TCP listener; an IPv6 address means IPv6 only, so that `0.0.0.0`
/// and `[::]` can both be listed.
fn tcp_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    s.set_reuse_address(true)?;
    s.bind(&addr.into())?;
    s.listen(1024)?;
    s.set_nonblocking(true)?;
    Ok(s.into())
}

/// Binds UDP and TCP on every address and starts serving: UDP on worker
/// threads, TCP on a thread of its own (its own single-threaded runtime),
/// so that DNS over TCP never competes with health probes and the admin
/// API for the control plane's runtime. Then, with `[server.xdp]`, UDP of
/// those addresses is taken over through AF_XDP where that can be set up
/// (the sockets stay bound and serve the rest).
#[allow(clippy::too_many_arguments)]
pub fn start(
    listen: &[SocketAddr],
    udp: udp::UdpSettings,
    xdp: &XdpSettings,
    shared: Shared,
    metrics: &Metrics,
    tcp: tcp::TcpSettings,
    stop_flag: Arc<AtomicBool>,
    stop: watch::Receiver<bool>,
) -> io::Result<Listeners> {
    let tcp_stats = metrics.worker(true);
    let rrl = Arc::new(std::sync::OnceLock::new());
    let mut out = Listeners {
        addrs: Vec::new(),
        threads: Vec::new(),
    };
    let mut tcp_listeners = Vec::new();
    for &addr in listen {
        // TCP first: with port 0 it picks the port, which UDP then takes too;
        // if that UDP port is busy, try another.
        let mut attempt = 0;
        let (listener, bound, threads) = loop {
            attempt += 1;
            let listener = tcp_listener(addr)?;
            let bound = listener.local_addr()?;
            match udp::spawn(
                bound,
                udp,
                shared.clone(),
                metrics,
                rrl.clone(),
                stop_flag.clone(),
            ) {
                Ok((_, threads)) => break (listener, bound, threads),
                Err(e)
                    if addr.port() == 0 && attempt < 8 && e.kind() == io::ErrorKind::AddrInUse =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        };
        tcp_listeners.push(listener);
        out.addrs.push(bound);
        out.threads.extend(threads);
    }
    if !xdp.interfaces.is_empty() {
        #[cfg(target_os = "linux")]
        out.threads.extend(xdp::start(
            xdp, &out.addrs, &shared, metrics, &rrl, &stop_flag,
        ));
        #[cfg(not(target_os = "linux"))]
        tracing::warn!("xdp: not available on this OS; UDP goes through sockets");
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let handle = std::thread::Builder::new()
        .name("dns-tcp".into())
        .spawn(move || {
            rt.block_on(async move {
                let mut set = tokio::task::JoinSet::new();
                for l in tcp_listeners {
                    match TcpListener::from_std(l) {
                        Ok(l) => {
                            set.spawn(tcp::serve(
                                l,
                                shared.clone(),
                                tcp_stats.clone(),
                                tcp.clone(),
                                stop.clone(),
                            ));
                        }
                        Err(e) => tracing::error!("dns tcp listener: {e}"),
                    }
                }
                while set.join_next().await.is_some() {}
            });
        })?;
    out.threads.push(handle);
    for a in &out.addrs {
        tracing::info!("dns listening on {a} (udp+tcp)");
    }
    Ok(out)
}
