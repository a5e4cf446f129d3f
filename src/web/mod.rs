//! HTTP serving shared by the exporter and the simulator: the accept loop,
//! and TLS and basic auth from an exporter-toolkit web config file.

mod auth;
mod client_auth;
mod config;
mod reload;
mod server;
mod tls;

pub use config::{WebConfig, WebConfigError};
pub use server::{BoxFuture, Handler, ServeError, serve};

use bytes::Bytes;
use http_body_util::Full;

/// The response type every handler returns.
pub type HttpResponse = hyper::Response<Full<Bytes>>;

/// A request whose body has been read (bounded by [`server::MAX_BODY_BYTES`]).
pub type HttpRequest = hyper::Request<Bytes>;

/// A plain-text response with the given status.
pub fn text(status: hyper::StatusCode, body: impl Into<String>) -> HttpResponse {
    let mut r = hyper::Response::new(Full::new(Bytes::from(body.into())));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}
