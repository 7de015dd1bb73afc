//! The data plane: sockets, wire in -> snapshot -> wire out. This module
//! sees only the [`Snapshot`](crate::state::Snapshot).

pub mod answer;
pub mod tcp;
pub mod udp;
pub mod wire;

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::state::Shared;

/// The running DNS listeners.
pub struct Listeners {
    /// Addresses bound (ports resolved).
    pub addrs: Vec<SocketAddr>,
    /// UDP worker threads (they stop when the stop flag is set).
    pub threads: Vec<JoinHandle<()>>,
}

/// Binds UDP and TCP on every address and starts serving.
pub async fn start(
    listen: &[SocketAddr],
    udp: udp::UdpSettings,
    shared: Shared,
    metrics: &Metrics,
    tcp: tcp::TcpSettings,
    stop_flag: Arc<AtomicBool>,
    stop: watch::Receiver<bool>,
) -> io::Result<Listeners> {
    let tcp_stats = metrics.worker(true);
    let mut out = Listeners {
        addrs: Vec::new(),
        threads: Vec::new(),
    };
    for &addr in listen {
        // TCP first: with port 0 it picks the port, which UDP then takes too;
        // if that UDP port is busy, try another.
        let mut attempt = 0;
        let (listener, bound, threads) = loop {
            attempt += 1;
            let listener = TcpListener::bind(addr).await?;
            let bound = listener.local_addr()?;
            match udp::spawn(bound, udp, shared.clone(), metrics, stop_flag.clone()) {
                Ok((_, threads)) => break (listener, bound, threads),
                Err(e)
                    if addr.port() == 0 && attempt < 8 && e.kind() == io::ErrorKind::AddrInUse =>
                {
                    continue;
                }
                Err(e) => return Err(e),
            }
        };
        tokio::spawn(tcp::serve(
            listener,
            shared.clone(),
            tcp_stats.clone(),
            tcp.clone(),
            stop.clone(),
        ));
        tracing::info!("dns listening on {bound} (udp+tcp)");
        out.addrs.push(bound);
        out.threads.extend(threads);
    }
    Ok(out)
}
