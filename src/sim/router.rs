//! Request dispatch by path prefix, and the request log.

use std::sync::Arc;

use http_body_util::{BodyExt, Limited};
use hyper::StatusCode;
use hyper::body::Incoming;

use super::http::{GraphIds, Outcome, Reply, Req, Response, graph_error};
use super::server::ConnectionReset;
use super::state::{RecordedRequest, Shared};
use super::{control, ests, graph};

/// Largest request body read; larger ones get 413.
const MAX_BODY_BYTES: usize = 1 << 20;

pub(crate) async fn handle(shared: Arc<Shared>, req: hyper::Request<Incoming>) -> Result<Response, ConnectionReset> {
    let (parts, body) = req.into_parts();
    let host = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .unwrap_or_else(|| shared.addr.to_string());
    let client_request_id = parts.headers.get("client-request-id").and_then(|v| v.to_str().ok()).map(str::to_string);
    let body = match Limited::new(body, MAX_BODY_BYTES).collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => bytes::Bytes::new(),
    };
    let req = Req {
        method: parts.method,
        path: parts.uri.path().to_string(),
        query: parts.uri.query().map(str::to_string),
        headers: parts.headers,
        body,
        host,
        client_request_id,
    };
    if req.path == "/_sim" || req.path.starts_with("/_sim/") {
        return Ok(control::handle(&shared, &req));
    }
    let outcome = if req.path.starts_with("/login/") {
        ests::handle(&shared, &req).await
    } else if req.path == "/graph" || req.path.starts_with("/graph/") {
        graph::handle(&shared, &req).await
    } else {
        let ids = GraphIds::for_req(&req);
        let now = shared.rt().now();
        let msg = format!("No service at '{}'. The authority is under /login and Graph under /graph.", req.path);
        Outcome::send(graph_error(StatusCode::NOT_FOUND, &ids, now, "NotFound", &msg), None)
    };
    let status = match &outcome.reply {
        Reply::Send(r) => Some(r.status().as_u16()),
        Reply::Reset => None,
    };
    shared.rt().record(RecordedRequest {
        method: req.method.to_string(),
        path: req.path.clone(),
        query: req.query.clone(),
        tenant: outcome.tenant,
        client_request_id: req.client_request_id.clone(),
        status,
    });
    match outcome.reply {
        Reply::Send(r) => Ok(r),
        Reply::Reset => Err(ConnectionReset),
    }
}
