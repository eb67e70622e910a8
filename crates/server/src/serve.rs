//! Serving connections. A client must send its request headers within a time limit (one that
//! trickles bytes to hold a connection open is dropped), and at most so many connections are
//! open at once (further ones wait to be accepted). A request refused for its size closes its
//! connection. On stop, no new connection is accepted and the open ones finish what they are
//! doing.

use std::io;
use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::Response;
use axum::{Extension, Router};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tower::{Layer, ServiceExt};

#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub header_read_timeout: Duration,
}

/// Serves `router` on `listener` until `stopping` says so, then waits for open connections
/// to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: ConnectionLimits,
    mut stopping: watch::Receiver<bool>,
) -> io::Result<()> {
    let max = limits.max_connections.clamp(1, 1_000_000);
    let permits = Arc::new(Semaphore::new(max));
    let (closing, closed) = watch::channel(false);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.map_err(io::Error::other)?,
            () = raised(&mut stopping) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors, most often: wait for connections to close.
                    tracing::warn!(error = %err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = raised(&mut stopping) => break,
        };
        // The peer's address for the handlers, as `into_make_service_with_connect_info` gives it.
        let service = Extension(ConnectInfo(peer)).layer(router.clone());
        let service = ServiceExt::<Request<Incoming>>::map_response(service, close_if_unread);
        let mut closed = closed.clone();
        tokio::spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
            builder.http2().enable_connect_protocol();
            let service: TowerToHyperService<_> = TowerToHyperService::new(service);
            let mut connection = pin!(builder.serve_connection_with_upgrades(TokioIo::new(stream), service));
            let result = tokio::select! {
                result = connection.as_mut() => result,
                () = raised(&mut closed) => {
                    connection.as_mut().graceful_shutdown();
                    connection.as_mut().await
                }
            };
            if let Err(err) = result {
                tracing::debug!(error = %err, %peer, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = closing.send(true);
    // Every permit back: every connection has finished.
    let _ = permits.acquire_many(u32::try_from(max).unwrap_or(u32::MAX)).await;
    Ok(())
}

/// Until the flag is up (or its sender gone); holds no borrow of it afterwards.
async fn raised(flag: &mut watch::Receiver<bool>) {
    let _ = flag.wait_for(|up| *up).await;
}

/// A request refused for its size leaves its body unread on the connection: the connection is
/// closed after the answer instead of waiting for a body that may never come.
fn close_if_unread(mut response: Response) -> Response {
    if response.status() == StatusCode::PAYLOAD_TOO_LARGE {
        response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}
