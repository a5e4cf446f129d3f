//! The accept loop: one task per connection, HTTP/1 and HTTP/2, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

use super::{HttpRequest, HttpResponse, text};

/// Largest request body accepted; larger ones get 413.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// A boxed, sendable future.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// What serves each request.
pub type Handler = Arc<dyn Fn(HttpRequest) -> BoxFuture<HttpResponse> + Send + Sync>;

/// Why serving stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The web config file is invalid.
    #[error("{0}")]
    WebConfig(String),
}

/// Serves `handler` on `listener` until `shutdown` completes, then waits up to
/// 10 s for open connections. `web_config` is an exporter-toolkit file
/// (TLS, basic auth); `None` serves plain HTTP without authentication.
pub async fn serve(
    listener: TcpListener,
    web_config: Option<PathBuf>,
    handler: Handler,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    if web_config.is_some() {
        return Err(ServeError::WebConfig("web config files are not supported yet".into()));
    }
    let builder = auto::Builder::new(TokioExecutor::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Running out of file descriptors must not end the server.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let handler = handler.clone();
                let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                    let handler = handler.clone();
                    async move { Ok::<_, Infallible>(dispatch(req, handler).await) }
                });
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = &mut shutdown => break,
        }
    }
    drop(listener);
    tokio::select! {
        _ = graceful.shutdown() => {}
        _ = tokio::time::sleep(Duration::from_secs(10)) => {}
    }
    Ok(())
}

/// Reads the body (bounded) and calls the handler.
pub(crate) async fn dispatch(req: hyper::Request<Incoming>, handler: Handler) -> HttpResponse {
    let (parts, body) = req.into_parts();
    let bytes = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => {
            return text(StatusCode::PAYLOAD_TOO_LARGE, "request body too large or unreadable\n");
        }
    };
    handler(hyper::Request::from_parts(parts, bytes)).await
}
