//! Serving the admin API with limits, so that no client can hold it:
//! at most [`MAX_CONNECTIONS`] connections (more are closed at accept),
//! a request head must arrive within [`HEADER_TIMEOUT`] (also the idle
//! timeout between keep-alive requests), head and body sizes are bounded,
//! a connection lives at most [`MAX_CONNECTION_TIME`], and on shutdown
//! connections get [`SHUTDOWN_GRACE`] to finish before they are cut.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

/// Most admin connections at once.
pub const MAX_CONNECTIONS: usize = 64;
/// A request head must be complete within this long (and the next one
/// must begin within it on a kept-alive connection).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// A connection is closed after this long, whatever it does.
pub const MAX_CONNECTION_TIME: Duration = Duration::from_secs(300);
/// How long open connections get to finish at shutdown.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Largest request head.
const MAX_HEAD: usize = 16 * 1024;
/// Most request header fields.
const MAX_HEADERS: usize = 64;

/// Serves `app` on `listener` until `stop` turns true.
pub async fn serve(listener: TcpListener, app: Router, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            r = listener.accept() => r,
            _ = stop.changed() => break,
            Some(_) = conns.join_next(), if !conns.is_empty() => continue,
        };
        let (stream, peer) = match accepted {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!("admin accept: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(
                "admin API: {MAX_CONNECTIONS} connections open; closing one from {peer}"
            );
            continue;
        };
        let app = app.clone();
        let mut stop = stop.clone();
        conns.spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                let app = app.clone();
                async move { Ok::<_, Infallible>(app.oneshot(req).await.into_response_infallible()) }
            });
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .max_buf_size(MAX_HEAD)
                .max_headers(MAX_HEADERS)
                .keep_alive(true);
            let conn = builder.serve_connection(TokioIo::new(stream), service);
            tokio::pin!(conn);
            let deadline = tokio::time::sleep(MAX_CONNECTION_TIME);
            tokio::pin!(deadline);
            let r = tokio::select! {
                r = conn.as_mut() => r,
                _ = &mut deadline => return,
                _ = stop.changed() => {
                    conn.as_mut().graceful_shutdown();
                    match tokio::time::timeout(SHUTDOWN_GRACE, conn.as_mut()).await {
                        Ok(r) => r,
                        Err(_) => return,
                    }
                }
            };
            if let Err(e) = r {
                tracing::debug!("admin connection {peer}: {e}");
            }
        });
    }
    // stop: connections finish within the grace period, or are cut
    let drained = async { while conns.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE + Duration::from_millis(500), drained)
        .await
        .is_err()
    {
        tracing::debug!("admin connections cut at shutdown");
        conns.abort_all();
    }
}

/// `Router::oneshot` cannot fail (`Infallible`); this unwraps it.
trait IntoResponseInfallible {
    fn into_response_infallible(self) -> axum::response::Response;
}

impl IntoResponseInfallible for Result<axum::response::Response, Infallible> {
    fn into_response_infallible(self) -> axum::response::Response {
        match self {
            Ok(r) => r,
            Err(never) => match never {},
        }
    }
}
