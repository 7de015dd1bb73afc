//! DNS over TCP (RFC 7766): length-prefixed messages, pipelined queries
//! answered in order, an idle timeout and a limit on connections.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use super::answer::{Ctx, respond};
use crate::metrics::{Transport, WorkerStats};
use crate::state::Shared;

/// Settings of the TCP listeners.
#[derive(Debug, Clone)]
pub struct TcpSettings {
    /// Close a connection idle this long.
    pub idle_timeout: Duration,
    /// Connections allowed at once (over all listeners sharing `permits`).
    pub permits: Arc<Semaphore>,
}

/// Accepts connections until `stop` turns true.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    stats: Arc<WorkerStats>,
    settings: TcpSettings,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                // e.g. EMFILE: back off instead of spinning
                tracing::warn!("dns tcp accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = settings.permits.clone().try_acquire_owned() else {
            tracing::debug!("dns tcp: connection limit reached, closing {peer}");
            drop(stream);
            continue;
        };
        let shared = shared.clone();
        let stats = stats.clone();
        let idle = settings.idle_timeout;
        let stop = stop.clone();
        tokio::spawn(async move {
            if let Err(e) = connection(stream, peer, shared, stats, idle, stop).await {
                tracing::debug!("dns tcp {peer}: {e}");
            }
            drop(permit);
        });
    }
}

async fn connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    shared: Shared,
    stats: Arc<WorkerStats>,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) -> std::io::Result<()> {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!("TCP_NODELAY: {e}");
    }
    let mut ctx = Ctx::new(stats);
    let mut inb = vec![0u8; 65535];
    let mut out = vec![0u8; 65537];
    let src = peer.ip().to_canonical();
    loop {
        let mut len = [0u8; 2];
        tokio::select! {
            r = tokio::time::timeout(idle, stream.read_exact(&mut len)) => match r {
                Ok(Ok(_)) => {}
                // idle timeout, or the client closed: both end the connection
                Ok(Err(_)) | Err(_) => return Ok(()),
            },
            _ = stop.changed() => return Ok(()),
        }
        let n = u16::from_be_bytes(len) as usize;
        match tokio::time::timeout(idle, stream.read_exact(&mut inb[..n])).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Ok(()),
        }
        let answer = {
            let snap = shared.load();
            super::udp::guarded(|| {
                respond(
                    &snap,
                    &inb[..n],
                    src,
                    Transport::Tcp,
                    &mut out[2..],
                    &mut ctx,
                )
            })
        };
        let Some(rlen) = answer else {
            // nothing to say to a non-query; a stream cannot skip it silently
            return Ok(());
        };
        out[..2].copy_from_slice(&(rlen as u16).to_be_bytes());
        match tokio::time::timeout(idle, stream.write_all(&out[..rlen + 2])).await {
            Ok(r) => r?,
            Err(_) => return Ok(()),
        }
    }
}
