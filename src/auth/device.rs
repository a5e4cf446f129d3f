//! The device code flow (protocol doc 1.6) behind `m365mon login`: ask for a
//! code, let the user sign in elsewhere, poll until Entra ID answers.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;

use super::classify::classify_error;
use super::request::{AuthError, EntraError, parse_retry_after, resolve_secret};
use crate::config::{Secret, SecretSource};

const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// RFC 8628 §3.5 (and MSAL): each `slow_down` adds this to the interval.
pub const SLOW_DOWN_STEP: Duration = Duration::from_secs(5);

/// The longest wait between two polls, whatever the server asks: a longer
/// one would leave the user staring at a silent terminal.
pub const MAX_INTERVAL: Duration = Duration::from_secs(60);
/// Interval when Entra sends none (its documented default).
const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// Polling gives up after this many network or 5xx failures in a row.
const MAX_TRANSPORT_FAILURES: u32 = 5;

/// A sleep the poller awaits between polls (tests pass one that advances a clock).
pub type Sleep<'a> = &'a mut (dyn FnMut(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send);

/// What the device authorization endpoint answered.
#[derive(Debug, Clone)]
pub struct DeviceCode {
    /// The code the user types in.
    pub user_code: String,
    /// Where to type it.
    pub verification_uri: String,
    /// Microsoft's instructions, to print as they are.
    pub message: String,
    /// How long the code is valid.
    pub expires_in: Duration,
    /// The minimum wait between polls.
    pub interval: Duration,
    device_code: Secret,
}

/// A completed sign-in.
#[derive(Debug, Clone)]
pub struct SignedIn {
    /// The refresh token to store.
    pub refresh_token: Secret,
    /// The granted scopes.
    pub scope: String,
    /// `preferred_username` from the ID token, when present.
    pub account: Option<String>,
}

/// Why a device code sign-in did not complete.
#[derive(Debug, thiserror::Error)]
pub enum DeviceFlowError {
    /// The user declined (`authorization_declined`).
    #[error("the sign-in was declined in the browser (authorization_declined); run the command again to retry")]
    Declined,
    /// The code expired before the user finished (`expired_token`).
    #[error("the code expired after {0}s before the sign-in was completed (expired_token); run the command again")]
    Expired(u64),
    /// Entra ID refused the request.
    #[error("Entra ID refused the sign-in: {0}")]
    Refused(AuthError),
    /// Entra ID could not be reached or kept failing.
    #[error("cannot reach Entra ID: {0}")]
    Unreachable(String),
    /// An answer that does not follow the protocol.
    #[error("unexpected answer from Entra ID: {0}")]
    InvalidResponse(String),
}

/// One device code sign-in for (tenant, app).
pub struct DeviceFlow<'a> {
    /// HTTP client.
    pub http: &'a reqwest::Client,
    /// `https://login.microsoftonline.com` or the cloud's equivalent.
    pub authority_host: &'a str,
    /// The Graph root; the scope is `<graph>/.default offline_access openid profile`.
    pub graph_endpoint: &'a str,
    /// Tenant GUID or domain.
    pub tenant: &'a str,
    /// The app's client ID.
    pub client_id: &'a str,
    /// The client secret of a confidential client.
    pub secret: Option<&'a SecretSource>,
}

enum Answer {
    Ok(Value),
    Refused(EntraError),
    Transient(String, Option<Duration>),
    Invalid(String),
}

#[derive(Deserialize)]
struct CodeBody {
    user_code: String,
    device_code: String,
    verification_uri: String,
    #[serde(default)]
    message: Option<String>,
    expires_in: u64,
    #[serde(default)]
    interval: Option<u64>,
}

#[derive(Deserialize)]
struct TokenBody {
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    id_token: Option<String>,
}

impl DeviceFlow<'_> {
    /// Asks for a device code.
    pub async fn start(&self) -> Result<DeviceCode, DeviceFlowError> {
        let url = format!("{}/{}/oauth2/v2.0/devicecode", self.authority_host, self.tenant);
        let scope = format!("{}/.default offline_access openid profile", self.graph_endpoint);
        let body = match self.post(&url, &[("client_id", self.client_id), ("scope", &scope)]).await {
            Answer::Ok(v) => v,
            Answer::Refused(e) => return Err(refused(&e)),
            Answer::Transient(m, _) => return Err(DeviceFlowError::Unreachable(m)),
            Answer::Invalid(m) => return Err(DeviceFlowError::InvalidResponse(m)),
        };
        let b: CodeBody =
            serde_json::from_value(body).map_err(|e| DeviceFlowError::InvalidResponse(format!("device code: {e}")))?;
        let message = b
            .message
            .unwrap_or_else(|| format!("To sign in, open {} and enter the code {}.", b.verification_uri, b.user_code));
        Ok(DeviceCode {
            user_code: b.user_code,
            verification_uri: b.verification_uri,
            message,
            expires_in: Duration::from_secs(b.expires_in),
            interval: b
                .interval
                .map_or(DEFAULT_INTERVAL, Duration::from_secs)
                .clamp(Duration::from_secs(1), MAX_INTERVAL),
            device_code: Secret::new(b.device_code),
        })
    }

    /// Polls until the user has signed in, declined, or the code expired.
    /// Waits `interval` before each poll; `slow_down` adds 5 s for good;
    /// network trouble and 5xx are retried (at most 5 in a row).
    pub async fn poll(
        &self,
        code: &DeviceCode,
        sleep: Sleep<'_>,
        progress: &mut (dyn FnMut(&str) + Send),
    ) -> Result<SignedIn, DeviceFlowError> {
        let url = format!("{}/{}/oauth2/v2.0/token", self.authority_host, self.tenant);
        let secret = match self.secret {
            Some(src) => Some(resolve_secret(src).map_err(DeviceFlowError::Refused)?),
            None => None,
        };
        let mut interval = code.interval;
        let mut waited = Duration::ZERO;
        let mut transport_failures = 0;
        let mut extra_wait = Duration::ZERO;
        loop {
            if waited >= code.expires_in {
                return Err(DeviceFlowError::Expired(code.expires_in.as_secs()));
            }
            let wait = interval.max(extra_wait);
            sleep(wait).await;
            waited = waited.saturating_add(wait);
            extra_wait = Duration::ZERO;
            let mut form = vec![
                ("grant_type", DEVICE_CODE_GRANT),
                ("client_id", self.client_id),
                ("device_code", code.device_code.expose()),
            ];
            if let Some(s) = &secret {
                form.push(("client_secret", s.as_str()));
            }
            match self.post(&url, &form).await {
                Answer::Ok(v) => return signed_in(v),
                Answer::Refused(e) => match e.error.as_str() {
                    "authorization_pending" => transport_failures = 0,
                    "slow_down" => {
                        transport_failures = 0;
                        interval = (interval + SLOW_DOWN_STEP).min(MAX_INTERVAL);
                        progress(&format!("Entra ID asked to poll less often; now every {}s", interval.as_secs()));
                    }
                    "authorization_declined" => return Err(DeviceFlowError::Declined),
                    "expired_token" => return Err(DeviceFlowError::Expired(code.expires_in.as_secs())),
                    _ => return Err(refused(&e)),
                },
                Answer::Transient(m, retry_after) => {
                    transport_failures += 1;
                    if transport_failures >= MAX_TRANSPORT_FAILURES {
                        return Err(DeviceFlowError::Unreachable(format!("{m} ({transport_failures} times in a row)")));
                    }
                    progress(&format!("polling failed ({m}); trying again"));
                    extra_wait = retry_after.unwrap_or_default();
                }
                Answer::Invalid(m) => return Err(DeviceFlowError::InvalidResponse(m)),
            }
        }
    }

    async fn post(&self, url: &str, form: &[(&str, &str)]) -> Answer {
        let resp = self
            .http
            .post(url)
            .header("client-request-id", uuid::Uuid::new_v4().to_string())
            .header("return-client-request-id", "true")
            .form(form)
            .send()
            .await;
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return Answer::Transient(crate::graph::error_chain(&e), None),
        };
        let status = resp.status().as_u16();
        let retry_after = resp.headers().get("retry-after").and_then(|v| v.to_str().ok()).and_then(parse_retry_after);
        if status == 429 || status >= 500 {
            return Answer::Transient(format!("HTTP {status}"), retry_after);
        }
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => return Answer::Transient(crate::graph::error_chain(&e), None),
        };
        if (200..300).contains(&status) {
            return match serde_json::from_slice(&bytes) {
                Ok(v) => Answer::Ok(v),
                Err(e) => Answer::Invalid(format!("HTTP {status} with a body that is not JSON: {e}")),
            };
        }
        match serde_json::from_slice::<EntraError>(&bytes) {
            Ok(e) => Answer::Refused(e),
            Err(_) => Answer::Invalid(format!("HTTP {status} without an OAuth error body")),
        }
    }
}

fn refused(e: &EntraError) -> DeviceFlowError {
    let reason = classify_error(&e.error, &e.error_codes);
    let mut msg = e.to_string();
    crate::text::truncate(&mut msg, 400);
    DeviceFlowError::Refused(AuthError::new(reason, msg))
}

fn signed_in(v: Value) -> Result<SignedIn, DeviceFlowError> {
    let b: TokenBody =
        serde_json::from_value(v).map_err(|e| DeviceFlowError::InvalidResponse(format!("token: {e}")))?;
    let refresh_token = b.refresh_token.filter(|r| !r.is_empty()).ok_or_else(|| {
        DeviceFlowError::InvalidResponse(
            "no refresh token in the answer: was offline_access refused for this app?".into(),
        )
    })?;
    Ok(SignedIn {
        refresh_token: Secret::new(refresh_token),
        scope: b.scope.unwrap_or_default(),
        account: b.id_token.as_deref().and_then(preferred_username),
    })
}

/// `preferred_username` of an ID token, for display only (not verified: the
/// token came straight from the token endpoint over TLS).
fn preferred_username(id_token: &str) -> Option<String> {
    let payload = id_token.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: Value = serde_json::from_slice(&bytes).ok()?;
    v.get("preferred_username").and_then(Value::as_str).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_from_id_token() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"preferred_username":"monitor@contoso.com"}"#);
        assert_eq!(preferred_username(&format!("h.{payload}.s")).as_deref(), Some("monitor@contoso.com"));
        assert_eq!(preferred_username("garbage"), None);
    }
}
