//! The accept loop: one task per connection (web config reload, TLS
//! handshake, basic auth), HTTP/1 and HTTP/2, graceful shutdown.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::net::{TcpListener, TcpStream};

use super::auth::BasicAuth;
use super::config::WebConfig;
use super::reload::LiveConfig;
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
    /// The web config file is invalid (the message names file, line and key).
    #[error("{0}")]
    WebConfig(String),
}

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves `handler` on `listener` until `shutdown` completes, then waits up to
/// 10 s for open connections. `web_config` is an exporter-toolkit file (TLS,
/// client certificates, basic auth, response headers), re-read for each new
/// connection; `None` serves plain HTTP without authentication.
pub async fn serve(
    listener: TcpListener,
    web_config: Option<PathBuf>,
    handler: Handler,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let live = match web_config {
        None => None,
        Some(path) => {
            let cfg = WebConfig::load(&path).map_err(|e| ServeError::WebConfig(e.to_string()))?;
            tracing::info!(
                path = %path.display(),
                tls = cfg.tls_enabled(),
                http2 = cfg.http2(),
                basic_auth = cfg.basic_auth_enabled(),
                "web config loaded"
            );
            Some(Arc::new(LiveConfig::new(path, cfg)))
        }
    };
    let auth = Arc::new(BasicAuth::new());
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Running out of file descriptors must not end the server.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let conn = Connection {
                    handler: handler.clone(),
                    live: live.clone(),
                    auth: auth.clone(),
                };
                let watcher = graceful.watcher();
                tokio::spawn(conn.run(stream, peer, watcher));
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

/// What one connection task needs.
struct Connection {
    handler: Handler,
    live: Option<Arc<LiveConfig>>,
    auth: Arc<BasicAuth>,
}

impl Connection {
    /// Loads the current web config, does the TLS handshake if it asks for
    /// TLS, and serves HTTP on the connection.
    async fn run(self, stream: TcpStream, peer: SocketAddr, watcher: Watcher) {
        let cfg = match &self.live {
            Some(live) => Some(live.current().await),
            None => None,
        };
        let mut builder = auto::Builder::new(TokioExecutor::new());
        if cfg.as_ref().is_some_and(|c| !c.http2()) {
            builder = builder.http1_only();
        }
        let svc = Service { handler: self.handler, cfg: cfg.clone(), auth: self.auth };
        let svc = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let svc = svc.clone();
            async move { Ok::<_, Infallible>(svc.respond(req).await) }
        });
        match cfg.as_ref().and_then(|c| c.tls.clone()) {
            None => {
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                let _ = watcher.watch(conn.into_owned()).await;
            }
            Some(tls) => {
                let accept = tokio_rustls::TlsAcceptor::from(tls).accept(stream);
                let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, accept).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        tracing::debug!(%peer, "TLS handshake timed out");
                        return;
                    }
                };
                if stream.get_ref().1.alpn_protocol() == Some(b"h2") {
                    builder = builder.http2_only();
                }
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                let _ = watcher.watch(conn.into_owned()).await;
            }
        }
    }
}

/// Per-request work: basic auth, the handler, configured headers.
#[derive(Clone)]
struct Service {
    handler: Handler,
    cfg: Option<Arc<WebConfig>>,
    auth: Arc<BasicAuth>,
}

impl Service {
    async fn respond(&self, req: hyper::Request<Incoming>) -> HttpResponse {
        let Some(cfg) = &self.cfg else {
            return dispatch(req, self.handler.clone()).await;
        };
        let authorized =
            !cfg.basic_auth_enabled() || self.auth.check(&cfg.users, req.headers().get(header::AUTHORIZATION)).await;
        let mut resp = if authorized {
            dispatch(req, self.handler.clone()).await
        } else {
            let mut r = text(StatusCode::UNAUTHORIZED, "Unauthorized\n");
            r.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic realm=\"m365mon\""));
            r
        };
        for (name, value) in cfg.headers() {
            resp.headers_mut().insert(name.clone(), value.clone());
        }
        resp
    }
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
