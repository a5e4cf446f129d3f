//! A thin Microsoft Graph client: requests with their status mapped to an
//! outcome, and Outlook's per-mailbox concurrency limit.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::Method;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::auth::parse_retry_after;
use crate::config::Secret;
use crate::probe::{FailureReason, Outcome, ProbeLog, Workload};

/// Responses larger than this are refused (a probe reads small objects).
const MAX_BODY: usize = 4 << 20;

/// Outlook allows this many concurrent requests per (app, mailbox); the
/// exporter never sends more, whichever probes share the mailbox.
pub const MAILBOX_CONCURRENCY: usize = 4;

/// Sends Graph requests under `<graph_endpoint>/v1.0`.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
    mailboxes: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
}

/// A Graph answer, whatever its status.
#[derive(Debug, Clone)]
pub struct GraphResponse {
    /// The HTTP status.
    pub status: u16,
    /// `Retry-After`, when present and valid.
    pub retry_after: Option<Duration>,
    /// The body (at most 4 MiB).
    pub body: Vec<u8>,
}

impl GraphResponse {
    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The body as JSON, or `invalid_response`.
    pub fn json(&self, log: &mut ProbeLog) -> Result<serde_json::Value, Outcome> {
        serde_json::from_slice(&self.body).map_err(|e| {
            log.line(format!("invalid JSON: {e}"));
            Outcome::Failure(FailureReason::InvalidResponse)
        })
    }
}

impl GraphClient {
    /// A client for `graph_endpoint` (no trailing slash).
    pub fn new(http: reqwest::Client, graph_endpoint: &str) -> Self {
        GraphClient { http, base: format!("{graph_endpoint}/v1.0"), mailboxes: Arc::default() }
    }

    /// The full URL of a path such as `/organization`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
    }

    /// One of the [`MAILBOX_CONCURRENCY`] request slots of a mailbox; `key`
    /// names (app, tenant, mailbox). Hold it while the request runs.
    pub async fn mailbox_slot(&self, key: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut map = self.mailboxes.lock().unwrap_or_else(|e| e.into_inner());
            // Idle mailboxes are forgotten: only the map holds their semaphore.
            map.retain(|_, s| Arc::strong_count(s) > 1);
            map.entry(key.to_ascii_lowercase()).or_insert_with(|| Arc::new(Semaphore::new(MAILBOX_CONCURRENCY))).clone()
        };
        // Never closed, so this is always `Some`.
        semaphore.acquire_owned().await.ok()
    }

    /// Sends one request (with a JSON body when `body` is set) and returns
    /// the answer whatever its status; `Err` only when no answer came
    /// (`network` or `timeout`). Error answers are logged with Graph's code.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        token: &Secret,
        body: Option<&serde_json::Value>,
        log: &mut ProbeLog,
    ) -> Result<GraphResponse, Outcome> {
        let request_id = uuid::Uuid::new_v4().to_string();
        log.line(format!("{method} {url} (client-request-id {request_id})"));
        let bodiless_post = body.is_none() && method == Method::POST;
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(token.expose())
            .header("client-request-id", &request_id)
            .header("Accept", "application/json");
        if let Some(b) = body {
            req = req.json(b);
        } else if bodiless_post {
            // Graph answers 411 to a POST without a length, such as `send`.
            req = req.header("Content-Length", "0");
        }
        let resp = req.send().await.map_err(|e| {
            log.line(format!("request failed: {}", error_chain(&e)));
            Outcome::Failure(if e.is_timeout() { FailureReason::Timeout } else { FailureReason::Network })
        })?;
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        let server_request_id =
            resp.headers().get("request-id").and_then(|v| v.to_str().ok()).unwrap_or("-").to_string();
        let body = read_limited(resp).await.map_err(|m| {
            log.line(format!("HTTP {status}: body unreadable: {m}"));
            Outcome::Failure(FailureReason::Network)
        })?;
        log.line(format!("HTTP {status} (request-id {server_request_id}, {} bytes)", body.len()));
        let r = GraphResponse { status, retry_after, body };
        if !r.is_success() {
            log.line(format!("error: {}", graph_error_summary(&r.body)));
        }
        Ok(r)
    }

    /// GETs `url` (absolute, e.g. from [`GraphClient::url`] or an
    /// `@odata.nextLink`) and returns the JSON body of a 2xx answer, or the
    /// outcome that the answer means.
    pub async fn get_json(
        &self,
        url: &str,
        token: &Secret,
        workload: Workload,
        log: &mut ProbeLog,
    ) -> Result<serde_json::Value, Outcome> {
        let r = self.send(Method::GET, url, token, None, log).await?;
        if let Some(outcome) = status_outcome(r.status, r.retry_after, workload) {
            return Err(outcome);
        }
        r.json(log)
    }
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| error_chain(&e))? {
        if out.len() + chunk.len() > MAX_BODY {
            return Err(format!("larger than {MAX_BODY} bytes"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The outcome of a non-2xx status, `None` for 2xx. Throttling (429, or 503
/// with Retry-After) is not a failure; the wait defaults to 60 s.
pub fn status_outcome(status: u16, retry_after: Option<Duration>, workload: Workload) -> Option<Outcome> {
    let reason = match status {
        200..=299 => return None,
        429 => {
            return Some(Outcome::Throttled { workload, retry_after: retry_after.unwrap_or(Duration::from_secs(60)) });
        }
        503 if retry_after.is_some() => {
            return Some(Outcome::Throttled { workload, retry_after: retry_after.unwrap_or_default() });
        }
        401 => FailureReason::Unauthorized,
        403 => FailureReason::Forbidden,
        404 => FailureReason::NotFound,
        500..=599 => FailureReason::Http5xx,
        _ => FailureReason::InvalidResponse,
    };
    Some(Outcome::Failure(reason))
}

/// `code: message` from a Graph error body, or a note that it had none.
pub fn graph_error_summary(body: &[u8]) -> String {
    let v: serde_json::Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(_) => return "no JSON error body".into(),
    };
    let err = &v["error"];
    let code = err["code"].as_str().unwrap_or("");
    let mut msg = err["message"].as_str().unwrap_or("").to_string();
    crate::text::truncate(&mut msg, 300);
    format!("{code}: {msg}")
}

/// An error with its sources, for logs (reqwest's top-level text is vague).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_outcomes() {
        let w = Workload::Exchange;
        assert_eq!(status_outcome(200, None, w), None);
        assert_eq!(status_outcome(401, None, w), Some(Outcome::Failure(FailureReason::Unauthorized)));
        assert_eq!(status_outcome(403, None, w), Some(Outcome::Failure(FailureReason::Forbidden)));
        assert_eq!(status_outcome(404, None, w), Some(Outcome::Failure(FailureReason::NotFound)));
        assert_eq!(status_outcome(400, None, w), Some(Outcome::Failure(FailureReason::InvalidResponse)));
        assert_eq!(status_outcome(503, None, w), Some(Outcome::Failure(FailureReason::Http5xx)));
        assert_eq!(status_outcome(502, None, w), Some(Outcome::Failure(FailureReason::Http5xx)));
        assert_eq!(
            status_outcome(503, Some(Duration::from_secs(7)), w),
            Some(Outcome::Throttled { workload: w, retry_after: Duration::from_secs(7) })
        );
        assert_eq!(
            status_outcome(429, None, w),
            Some(Outcome::Throttled { workload: w, retry_after: Duration::from_secs(60) })
        );
    }

    #[test]
    fn error_summary() {
        let body = br#"{"error":{"code":"ErrorAccessDenied","message":"Access is denied."}}"#;
        assert_eq!(graph_error_summary(body), "ErrorAccessDenied: Access is denied.");
        assert_eq!(graph_error_summary(b"<html>"), "no JSON error body");
    }
}
