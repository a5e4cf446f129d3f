//! One token request to the Entra ID v2.0 token endpoint (client credentials),
//! through the `oauth2` crate with Entra-specific response types.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use oauth2::basic::{BasicRevocationErrorResponse, BasicTokenIntrospectionResponse, BasicTokenType};
use oauth2::{
    AccessToken, AuthType, ClientId, ClientSecret, EndpointNotSet, EndpointSet, ErrorResponse, HttpRequest,
    HttpResponse, RefreshToken, RequestTokenError, Scope, StandardRevocableToken, TokenResponse, TokenUrl,
};
use serde::{Deserialize, Deserializer, Serialize};

use super::assertion;
use super::classify::classify_error;
use crate::config::{Credential, CredentialKind, Secret, SecretSource};
use crate::probe::{FailureReason, ProbeLog};

const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A failed sign-in: a bounded reason plus a message safe to log (never a secret).
#[derive(Debug, Clone, PartialEq)]
pub struct AuthError {
    /// The failure reason label.
    pub reason: FailureReason,
    /// What went wrong, e.g. the first line of Entra's `error_description`.
    pub message: String,
    /// Retry-After from a throttling response.
    pub retry_after: Option<Duration>,
}

impl fmt::Display for AuthError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.message)
    }
}

impl AuthError {
    /// An error without Retry-After.
    pub fn new(reason: FailureReason, message: impl Into<String>) -> Self {
        AuthError { reason, message: message.into(), retry_after: None }
    }
}

/// A token as issued.
pub struct Issued {
    /// The bearer token (never parsed: Microsoft says clients must not).
    pub access_token: Secret,
    /// Its lifetime from `expires_in` (number or numeric string; 3599 s when absent; at most a day).
    pub expires_in: Duration,
    /// The rotated refresh token of a delegated grant (never sent for client credentials).
    pub refresh_token: Option<Secret>,
}

/// Entra's error body (protocol doc 1.8).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct EntraError {
    pub(crate) error: String,
    #[serde(default)]
    error_description: Option<String>,
    #[serde(default)]
    pub(crate) error_codes: Vec<u64>,
    #[serde(default)]
    suberror: Option<String>,
    #[serde(default)]
    correlation_id: Option<String>,
}

impl fmt::Display for EntraError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The first line only: the rest repeats trace ids and timestamps.
        let desc = self.error_description.as_deref().unwrap_or("").lines().next().unwrap_or("");
        write!(f, "{}", self.error)?;
        if let Some(s) = &self.suberror {
            write!(f, " ({s})")?;
        }
        if !desc.is_empty() {
            write!(f, ": {desc}")?;
        }
        Ok(())
    }
}

impl ErrorResponse for EntraError {}

fn number_or_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum NumOrStr {
        Num(u64),
        Str(String),
    }
    match Option::<NumOrStr>::deserialize(d)? {
        None => Ok(None),
        Some(NumOrStr::Num(n)) => Ok(Some(n)),
        Some(NumOrStr::Str(s)) => s.trim().parse().map(Some).map_err(serde::de::Error::custom),
    }
}

/// Entra's success body (protocol doc 1.3/1.7); `expires_in` may be a string (v1).
#[derive(Debug, Deserialize, Serialize)]
pub struct EntraToken {
    access_token: AccessToken,
    token_type: BasicTokenType,
    #[serde(default, deserialize_with = "number_or_string")]
    expires_in: Option<u64>,
    #[serde(default, deserialize_with = "number_or_string")]
    ext_expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<RefreshToken>,
    #[serde(skip)]
    scopes: Option<Vec<Scope>>,
}

impl TokenResponse for EntraToken {
    type TokenType = BasicTokenType;
    fn access_token(&self) -> &AccessToken {
        &self.access_token
    }
    fn token_type(&self) -> &BasicTokenType {
        &self.token_type
    }
    fn expires_in(&self) -> Option<Duration> {
        self.expires_in.map(Duration::from_secs)
    }
    fn refresh_token(&self) -> Option<&RefreshToken> {
        self.refresh_token.as_ref()
    }
    fn scopes(&self) -> Option<&Vec<Scope>> {
        self.scopes.as_ref()
    }
}

type EntraClient = oauth2::Client<
    EntraError,
    EntraToken,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

/// Transport-level failure, including throttling detected before oauth2 parses.
#[derive(Debug, thiserror::Error)]
enum Transport {
    #[error("throttled (HTTP {status})")]
    Throttled { status: u16, retry_after: Option<Duration> },
    #[error("HTTP {0}")]
    Server(u16),
    #[error("timed out")]
    Timeout,
    #[error("{0}")]
    Network(String),
}

/// The longest token lifetime believed (Entra issues 60 to 90 minutes). A
/// larger `expires_in` is cut to this: added to a clock, a huge one (say
/// `u64::MAX`) would overflow and panic the sign-in.
pub const MAX_TOKEN_LIFETIME_SECS: u64 = 24 * 3600;

/// The longest Retry-After honoured. A larger value is cut to this: added to
/// a clock, a huge one (say `u64::MAX` seconds) would overflow and panic the
/// probe, and a merely absurd one would silence the workload for years.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// Parses Retry-After: integer seconds, or an HTTP date (accepted
/// defensively); at most [`MAX_RETRY_AFTER`].
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER));
    }
    let when = httpdate::parse_http_date(v).ok()?;
    Some(when.duration_since(SystemTime::now()).unwrap_or(Duration::ZERO).min(MAX_RETRY_AFTER))
}

pub(crate) fn resolve_secret(src: &SecretSource) -> Result<String, AuthError> {
    match src {
        SecretSource::Inline(s) => Ok(s.expose().to_string()),
        SecretSource::File(p) => std::fs::read_to_string(p)
            .map(|s| s.trim_end_matches(['\r', '\n']).to_string())
            .map_err(|e| AuthError::new(FailureReason::AuthFailed, format!("client_secret_file {}: {e}", p.display()))),
        SecretSource::Env(var) => std::env::var(var)
            .map_err(|_| AuthError::new(FailureReason::AuthFailed, format!("client_secret_env {var} is not set"))),
    }
}

/// Requests an app-only token for `<graph_endpoint>/.default` from
/// `<authority_host>/<tenant>/oauth2/v2.0/token`.
pub async fn request_token(
    http: &reqwest::Client,
    authority_host: &str,
    graph_endpoint: &str,
    tenant: &str,
    credential: &Credential,
    log: &mut ProbeLog,
) -> Result<Issued, AuthError> {
    let token_url = format!("{authority_host}/{tenant}/oauth2/v2.0/token");
    let mut client = entra_client(&credential.client_id, &token_url)?;
    let assertion = match &credential.kind {
        CredentialKind::Secret(src) => {
            client = client.set_client_secret(ClientSecret::new(resolve_secret(src)?));
            None
        }
        CredentialKind::Certificate(cert) => {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
            Some(
                assertion::sign(cert, &credential.client_id, &token_url, now)
                    .map_err(|m| AuthError::new(FailureReason::AuthFailed, m))?,
            )
        }
        CredentialKind::FederatedTokenFile(path) => {
            Some(std::fs::read_to_string(path).map(|s| s.trim().to_string()).map_err(|e| {
                AuthError::new(FailureReason::AuthFailed, format!("federated_token_file {}: {e}", path.display()))
            })?)
        }
        CredentialKind::Delegated(_) => {
            return Err(AuthError::new(
                FailureReason::AuthFailed,
                format!("credential {} is delegated: it signs in with a stored refresh token", credential.name),
            ));
        }
    };
    let mut req = client.exchange_client_credentials().add_scope(Scope::new(format!("{graph_endpoint}/.default")));
    if let Some(a) = &assertion {
        req = req.add_extra_param("client_assertion_type", JWT_BEARER).add_extra_param("client_assertion", a.as_str());
    }
    let send = sender(http, &token_url, log);
    let fut: TokenFuture<'_> = Box::pin(req.request_async(&send));
    finish(fut.await, classify_error, log)
}

/// Redeems a refresh token for `<graph_endpoint>/.default offline_access`
/// (protocol doc 1.5). A rejected refresh token (`invalid_grant` or
/// `interaction_required`: expired, revoked, consent withdrawn, MFA) is
/// [`FailureReason::ReauthRequired`]: only a new `m365mon login` helps.
#[allow(clippy::too_many_arguments)]
pub async fn request_refresh(
    http: &reqwest::Client,
    authority_host: &str,
    graph_endpoint: &str,
    tenant: &str,
    client_id: &str,
    secret: Option<&SecretSource>,
    refresh_token: &Secret,
    log: &mut ProbeLog,
) -> Result<Issued, AuthError> {
    let token_url = format!("{authority_host}/{tenant}/oauth2/v2.0/token");
    let mut client = entra_client(client_id, &token_url)?;
    if let Some(src) = secret {
        client = client.set_client_secret(ClientSecret::new(resolve_secret(src)?));
    }
    let rt = RefreshToken::new(refresh_token.expose().to_string());
    let req = client
        .exchange_refresh_token(&rt)
        .add_scope(Scope::new(format!("{graph_endpoint}/.default")))
        .add_scope(Scope::new("offline_access".into()));
    let send = sender(http, &token_url, log);
    let fut: TokenFuture<'_> = Box::pin(req.request_async(&send));
    finish(fut.await, classify_refresh_error, log)
}

/// The reason for an error answering a refresh-token grant.
pub fn classify_refresh_error(error: &str, codes: &[u64]) -> FailureReason {
    // 53003 is Conditional Access blocking the sign-in, not a dead token.
    if matches!(error, "invalid_grant" | "interaction_required") && !codes.contains(&53003) {
        return FailureReason::ReauthRequired;
    }
    classify_error(error, codes)
}

// Boxed with an explicit `Send` bound: rustc cannot infer it through
// oauth2's borrowed request builder when the caller is spawned.
type TokenFuture<'f> =
    Pin<Box<dyn Future<Output = Result<EntraToken, RequestTokenError<Transport, EntraError>>> + Send + 'f>>;

fn entra_client(client_id: &str, token_url: &str) -> Result<EntraClient, AuthError> {
    let url = TokenUrl::new(token_url.to_string())
        .map_err(|e| AuthError::new(FailureReason::AuthFailed, format!("token URL {token_url}: {e}")))?;
    Ok(oauth2::Client::new(ClientId::new(client_id.to_string()))
        .set_token_uri(url)
        .set_auth_type(AuthType::RequestBody))
}

type Sender =
    Box<dyn Fn(HttpRequest) -> Pin<Box<dyn Future<Output = Result<HttpResponse, Transport>> + Send>> + Send + Sync>;

fn sender(http: &reqwest::Client, token_url: &str, log: &mut ProbeLog) -> Sender {
    let request_id = uuid::Uuid::new_v4().to_string();
    log.line(format!("POST {token_url} (client-request-id {request_id})"));
    let http = http.clone();
    Box::new(move |r: HttpRequest| send(http.clone(), r, request_id.clone()))
}

fn finish(
    result: Result<EntraToken, RequestTokenError<Transport, EntraError>>,
    classify: fn(&str, &[u64]) -> FailureReason,
    log: &mut ProbeLog,
) -> Result<Issued, AuthError> {
    match result {
        Ok(tok) => {
            let secs = tok.expires_in.or(tok.ext_expires_in).unwrap_or(3599).clamp(1, MAX_TOKEN_LIFETIME_SECS);
            log.line(format!("token: issued, expires in {secs}s"));
            Ok(Issued {
                access_token: Secret::new(tok.access_token.secret().clone()),
                expires_in: Duration::from_secs(secs),
                refresh_token: tok.refresh_token.map(|r| Secret::new(r.secret().clone())),
            })
        }
        Err(RequestTokenError::ServerResponse(e)) => {
            let reason = classify(&e.error, &e.error_codes);
            let mut msg = e.to_string();
            crate::text::truncate(&mut msg, 400);
            log.line(format!("token: refused: {msg}"));
            Err(AuthError::new(reason, msg))
        }
        Err(RequestTokenError::Request(t)) => {
            log.line(format!("token: {t}"));
            Err(match t {
                Transport::Throttled { retry_after, .. } => {
                    AuthError { reason: FailureReason::Throttled, message: t.to_string(), retry_after }
                }
                Transport::Server(_) => AuthError::new(FailureReason::Http5xx, t.to_string()),
                Transport::Timeout => AuthError::new(FailureReason::Timeout, t.to_string()),
                Transport::Network(_) => AuthError::new(FailureReason::Network, t.to_string()),
            })
        }
        Err(RequestTokenError::Parse(e, _body)) => {
            log.line(format!("token: unreadable response: {e}"));
            Err(AuthError::new(FailureReason::InvalidResponse, format!("unreadable token response: {e}")))
        }
        Err(RequestTokenError::Other(m)) => Err(AuthError::new(FailureReason::InvalidResponse, m)),
    }
}

fn send(
    http: reqwest::Client,
    r: HttpRequest,
    request_id: String,
) -> Pin<Box<dyn Future<Output = Result<HttpResponse, Transport>> + Send + 'static>> {
    Box::pin(async move {
        let (parts, body) = r.into_parts();
        let resp = http
            .request(parts.method, parts.uri.to_string())
            .headers(parts.headers)
            .header("client-request-id", request_id)
            .header("return-client-request-id", "true")
            .body(body)
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() { Transport::Timeout } else { Transport::Network(crate::graph::error_chain(&e)) }
            })?;
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        if status == 429 || (status == 503 && retry_after.is_some()) {
            return Err(Transport::Throttled { status, retry_after });
        }
        if status >= 500 {
            return Err(Transport::Server(status));
        }
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.map_err(|e| Transport::Network(crate::graph::error_chain(&e)))?;
        let mut out = HttpResponse::new(bytes.to_vec());
        *out.status_mut() = oauth2::http::StatusCode::from_u16(status).unwrap_or(oauth2::http::StatusCode::BAD_GATEWAY);
        *out.headers_mut() = headers;
        Ok(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expires_in_accepts_numbers_and_strings() {
        let t: EntraToken = serde_json::from_str(
            r#"{"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"x"}"#,
        )
        .unwrap();
        assert_eq!(t.expires_in, Some(3599));
        let t: EntraToken =
            serde_json::from_str(r#"{"token_type":"Bearer","expires_in":"3600","access_token":"x"}"#).unwrap();
        assert_eq!(t.expires_in, Some(3600));
        assert_eq!(t.ext_expires_in, None);
        let t: EntraToken = serde_json::from_str(r#"{"token_type":"bearer","access_token":"x"}"#).unwrap();
        assert_eq!(t.expires_in, None);
        assert!(
            serde_json::from_str::<EntraToken>(r#"{"token_type":"Bearer","expires_in":"soon","access_token":"x"}"#)
                .is_err()
        );
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("10"), Some(Duration::from_secs(10)));
        assert_eq!(parse_retry_after(" 0 "), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
        assert_eq!(parse_retry_after("18446744073709551615"), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT"), Some(MAX_RETRY_AFTER));
    }

    #[test]
    fn entra_error_display_is_first_line() {
        let e: EntraError = serde_json::from_str(
            r#"{"error":"invalid_client","error_description":"AADSTS7000222: expired.\r\nTrace ID: x","error_codes":[7000222]}"#,
        )
        .unwrap();
        assert_eq!(e.to_string(), "invalid_client: AADSTS7000222: expired.");
    }
}
