//! A thin Microsoft Graph client: one GET, its status mapped to an outcome.

use std::time::Duration;

use crate::auth::parse_retry_after;
use crate::config::Secret;
use crate::probe::{FailureReason, Outcome, ProbeLog, Workload};

/// Responses larger than this are refused (a probe reads small objects).
const MAX_BODY: usize = 4 << 20;

/// Sends Graph requests under `<graph_endpoint>/v1.0`.
#[derive(Clone)]
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
}

impl GraphClient {
    /// A client for `graph_endpoint` (no trailing slash).
    pub fn new(http: reqwest::Client, graph_endpoint: &str) -> Self {
        GraphClient { http, base: format!("{graph_endpoint}/v1.0") }
    }

    /// The full URL of a path such as `/organization`.
    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query)
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
        let request_id = uuid::Uuid::new_v4().to_string();
        log.line(format!("GET {url} (client-request-id {request_id})"));
        let resp = self
            .http
            .get(url)
            .bearer_auth(token.expose())
            .header("client-request-id", &request_id)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| {
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
        if let Some(outcome) = status_outcome(status, retry_after, workload) {
            log.line(format!("error: {}", graph_error_summary(&body)));
            return Err(outcome);
        }
        serde_json::from_slice(&body).map_err(|e| {
            log.line(format!("invalid JSON: {e}"));
            Outcome::Failure(FailureReason::InvalidResponse)
        })
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
    msg.truncate(300);
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
