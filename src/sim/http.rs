//! Request context and the response shapes of each service.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::clock;
use super::ids;

/// A response body type.
pub(crate) type Response = hyper::Response<Full<Bytes>>;

/// A request with its body read.
pub(crate) struct Req {
    pub method: Method,
    /// Path as sent.
    pub path: String,
    /// Query string without `?`.
    pub query: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// `Host` header value, else the listener address.
    pub host: String,
    /// `client-request-id` header.
    pub client_request_id: Option<String>,
}

impl Req {
    /// A header as UTF-8 text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Decoded query parameters, first value wins.
    pub fn query_param(&self, name: &str) -> Option<String> {
        let q = self.query.as_deref()?;
        url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
    }

    /// All decoded query parameters.
    pub fn query_pairs(&self) -> Vec<(String, String)> {
        match self.query.as_deref() {
            Some(q) => url::form_urlencoded::parse(q.as_bytes()).into_owned().collect(),
            None => vec![],
        }
    }

    /// `http://{host}`, the origin the client used.
    pub fn origin(&self) -> String {
        format!("http://{}", self.host)
    }
}

/// What a handler decided.
pub(crate) enum Reply {
    /// Send this response.
    Send(Response),
    /// Close the connection without a response.
    Reset,
}

/// A handler's reply plus the tenant it concerned (for the request log).
pub(crate) struct Outcome {
    pub reply: Reply,
    pub tenant: Option<String>,
}

impl Outcome {
    pub fn send(resp: Response, tenant: Option<String>) -> Self {
        Outcome { reply: Reply::Send(resp), tenant }
    }
}

fn set(resp: &mut Response, name: &'static str, value: &str) {
    if let Ok(v) = HeaderValue::from_str(value) {
        resp.headers_mut().insert(HeaderName::from_static(name), v);
    }
}

fn body_response(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let mut r = hyper::Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r
}

/// Plain JSON (control API).
pub(crate) fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut r = body_response(status, body.to_string());
    set(&mut r, "content-type", "application/json");
    r
}

/// Adds the ESTS header set of protocol doc 1.1.
fn ests_headers(resp: &mut Response, request_id: &str) {
    set(resp, "cache-control", "no-store, no-cache");
    set(resp, "pragma", "no-cache");
    set(resp, "content-type", "application/json; charset=utf-8");
    set(resp, "expires", "-1");
    set(resp, "strict-transport-security", "max-age=31536000; includeSubDomains");
    set(resp, "x-content-type-options", "nosniff");
    set(resp, "x-ms-request-id", request_id);
    set(resp, "x-ms-ests-server", "2.1.19457.4 - SEC ProdSlices");
    set(resp, "date", &httpdate::fmt_http_date(std::time::SystemTime::now()));
}

/// A successful token-service JSON answer.
pub(crate) fn ests_ok(body: &Value) -> Response {
    let mut r = body_response(StatusCode::OK, body.to_string());
    ests_headers(&mut r, &ids::new_guid());
    r
}

/// A token-service answer with a raw body (for the `malformed` fault).
pub(crate) fn ests_raw(status: StatusCode, body: &'static str) -> Response {
    let mut r = body_response(status, body);
    ests_headers(&mut r, &ids::new_guid());
    r
}

/// A token-service error (protocol doc 1.8).
#[derive(Debug, Clone)]
pub(crate) struct EstsError {
    pub status: StatusCode,
    pub error: &'static str,
    /// AADSTS code; `None` for errors without one (`slow_down`).
    pub code: Option<u32>,
    pub description: String,
    pub suberror: Option<&'static str>,
    pub retry_after: Option<u64>,
}

impl EstsError {
    pub fn new(status: StatusCode, error: &'static str, code: u32, description: impl Into<String>) -> Self {
        EstsError {
            status,
            error,
            code: Some(code),
            description: description.into(),
            suberror: None,
            retry_after: None,
        }
    }

    /// 400 with the given error.
    pub fn bad(error: &'static str, code: u32, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, error, code, description)
    }

    /// 401 `invalid_client`.
    pub fn client(code: u32, description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", code, description)
    }

    /// 400 `invalid_request` AADSTS900144 for a missing body parameter.
    pub fn missing(param: &str) -> Self {
        Self::bad(
            "invalid_request",
            900_144,
            format!("The request body must contain the following parameter: '{param}'."),
        )
    }

    pub fn with_suberror(mut self, s: &'static str) -> Self {
        self.suberror = Some(s);
        self
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// The response; `now` on the simulator clock, `authority` = `http://host/login`.
    pub fn response(&self, req: &Req, now: i64, authority: &str) -> Response {
        let trace_id = ids::new_guid();
        let correlation_id = req.client_request_id.clone().unwrap_or_else(ids::new_guid);
        let ts = clock::fmt_ests(now);
        let first = match self.code {
            Some(c) => format!("AADSTS{c}: {}", self.description),
            None => self.description.clone(),
        };
        let description =
            format!("{first}\r\nTrace ID: {trace_id}\r\nCorrelation ID: {correlation_id}\r\nTimestamp: {ts}");
        let mut body = json!({
            "error": self.error,
            "error_description": description,
            "error_codes": self.code.map(|c| vec![c]).unwrap_or_default(),
            "timestamp": ts,
            "trace_id": trace_id,
            "correlation_id": correlation_id,
        });
        if let Some(c) = self.code {
            body["error_uri"] = json!(format!("{authority}/error?code={c}"));
        }
        if let Some(s) = self.suberror {
            body["suberror"] = json!(s);
        }
        let mut r = body_response(self.status, body.to_string());
        ests_headers(&mut r, &trace_id);
        if let Some(s) = self.retry_after {
            set(&mut r, "retry-after", &s.to_string());
        }
        r
    }
}

/// Graph's per-request IDs.
pub(crate) struct GraphIds {
    pub request_id: String,
    pub client_request_id: String,
}

impl GraphIds {
    pub fn for_req(req: &Req) -> Self {
        let request_id = ids::new_guid();
        let client_request_id = req.client_request_id.clone().unwrap_or_else(|| request_id.clone());
        GraphIds { request_id, client_request_id }
    }
}

/// The OData JSON content type Graph sends.
pub(crate) const ODATA_JSON: &str =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

fn graph_headers(resp: &mut Response, ids: &GraphIds, success: bool) {
    set(resp, "content-type", ODATA_JSON);
    if success {
        set(resp, "odata-version", "4.0");
    }
    set(resp, "cache-control", "no-cache");
    set(resp, "request-id", &ids.request_id);
    set(resp, "client-request-id", &ids.client_request_id);
    set(
        resp,
        "x-ms-ags-diagnostic",
        r#"{"ServerInfo":{"DataCenter":"West Europe","Slice":"E","Ring":"5","ScaleUnit":"003","RoleInstance":"AM2PEPF0000SIM1"}}"#,
    );
    set(resp, "strict-transport-security", "max-age=31536000");
    set(resp, "date", &httpdate::fmt_http_date(std::time::SystemTime::now()));
}

/// A Graph success with a JSON body.
pub(crate) fn graph_ok(status: StatusCode, ids: &GraphIds, body: &Value) -> Response {
    let mut r = body_response(status, body.to_string());
    graph_headers(&mut r, ids, true);
    r
}

/// A Graph success without a body (202, 204).
pub(crate) fn graph_empty(status: StatusCode, ids: &GraphIds) -> Response {
    let mut r = body_response(status, Bytes::new());
    graph_headers(&mut r, ids, true);
    r.headers_mut().remove("content-type");
    r
}

/// A Graph 200 whose body is cut off mid-JSON (the `malformed` fault).
pub(crate) fn graph_malformed(ids: &GraphIds) -> Response {
    let mut r = body_response(StatusCode::OK, r#"{"@odata.context":"$metadata#broken","value":[{"id":"#);
    graph_headers(&mut r, ids, true);
    r
}

/// A Graph error (protocol doc 3.3).
pub(crate) fn graph_error(status: StatusCode, ids: &GraphIds, now: i64, code: &str, message: &str) -> Response {
    let body = json!({
        "error": {
            "code": code,
            "message": message,
            "innerError": {
                "date": clock::fmt_inner_date(now),
                "request-id": ids.request_id,
                "client-request-id": ids.client_request_id,
            }
        }
    });
    let mut r = body_response(status, body.to_string());
    graph_headers(&mut r, ids, false);
    r
}

/// A Graph 401 with `WWW-Authenticate` (protocol doc 3.2).
pub(crate) fn graph_unauthorized(ids: &GraphIds, now: i64, message: &str, authority: &str) -> Response {
    let mut r = graph_error(StatusCode::UNAUTHORIZED, ids, now, "InvalidAuthenticationToken", message);
    set(
        &mut r,
        "www-authenticate",
        &format!(
            r#"Bearer realm="", authorization_uri="{authority}/common/oauth2/authorize", client_id="00000003-0000-0000-c000-000000000000""#
        ),
    );
    r
}

/// A Graph 429 (protocol doc 4.1).
pub(crate) fn graph_throttled(ids: &GraphIds, now: i64, retry_after: u64) -> Response {
    let body = json!({
        "error": {
            "code": "TooManyRequests",
            "message": "Please retry again later.",
            "innerError": {
                "code": "429",
                "date": clock::fmt_inner_date(now),
                "message": "Please retry after",
                "request-id": ids.request_id,
                "status": "429",
                "client-request-id": ids.client_request_id,
            }
        }
    });
    let mut r = body_response(StatusCode::TOO_MANY_REQUESTS, body.to_string());
    graph_headers(&mut r, ids, false);
    set(&mut r, "content-type", "application/json");
    set(&mut r, "retry-after", &retry_after.to_string());
    r
}

/// Adds `Retry-After` to a response.
pub(crate) fn with_retry_after(mut r: Response, secs: u64) -> Response {
    set(&mut r, "retry-after", &secs.to_string());
    r
}

/// Adds a header to a response.
pub(crate) fn with_header(mut r: Response, name: &'static str, value: &str) -> Response {
    set(&mut r, name, value);
    r
}
