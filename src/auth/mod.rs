//! Entra ID sign-in: token requests, the per-(credential, tenant) cache with
//! single flight, and back-off after failures; delegated sign-in with the
//! device code flow and the token store.

mod assertion;
mod classify;
mod delegated;
mod device;
mod request;
mod store;

pub use classify::classify_error;
pub use device::{DeviceCode, DeviceFlow, DeviceFlowError, SLOW_DOWN_STEP, SignedIn, Sleep};
pub use request::{AuthError, Issued, classify_refresh_error, parse_retry_after, request_refresh, request_token};
pub use store::{DEFAULT_STORAGE_PATH, Rotation, StoreError, StoredToken, TokenStore};

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::config::{Credential, CredentialKind, Secret};
use crate::probe::{FailureReason, ProbeLog};

/// Tokens are renewed this long before they expire (MSAL uses 5 minutes).
const RENEW_BEFORE_EXPIRY: Duration = Duration::from_secs(300);
/// First back-off after a failed sign-in; doubles per consecutive failure.
const BACKOFF_BASE: Duration = Duration::from_secs(30);
/// Longest back-off, so a fixed credential is noticed within this time.
const BACKOFF_MAX: Duration = Duration::from_secs(600);
/// Wait after a timeout, network error or 5xx: short and fixed, so sign-in
/// recovers within about one probe interval after an Entra ID blip.
const TRANSIENT_BACKOFF: Duration = Duration::from_secs(30);
/// Wait after throttling when the server gave no Retry-After.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(60);

/// Called once per token request that actually went out: (subscription, result).
pub type TokenObserver = Arc<dyn Fn(&str, Result<(), FailureReason>) + Send + Sync>;

/// Called with a subscription's sign-in state after each attempt that was
/// not a transient failure: `None` signed in, `Some(reason)` failing (also
/// when no request went out, e.g. no stored delegated sign-in).
pub type StatusObserver = Arc<dyn Fn(&str, Option<FailureReason>) + Send + Sync>;

/// Failures that say nothing about the credential itself.
pub fn is_transient(reason: FailureReason) -> bool {
    matches!(
        reason,
        FailureReason::Throttled | FailureReason::Timeout | FailureReason::Network | FailureReason::Http5xx
    )
}

/// Acquires and caches app-only Graph tokens.
pub struct TokenProvider {
    http: reqwest::Client,
    authority_host: String,
    graph_endpoint: String,
    entries: Mutex<HashMap<CacheKey, Arc<tokio::sync::Mutex<Entry>>>>,
    observer: TokenObserver,
    status: Option<StatusObserver>,
    token_store: Option<Arc<TokenStore>>,
}

/// (credential name, lowercased tenant).
type CacheKey = (String, String);

#[derive(Default)]
struct Entry {
    token: Option<CachedToken>,
    failure: Option<Failure>,
    delegated: delegated::State,
}

struct CachedToken {
    access_token: Secret,
    renew_at: Instant,
}

struct Failure {
    error: AuthError,
    retry_at: Instant,
    consecutive: u32,
}

impl TokenProvider {
    /// A provider for one set of endpoints.
    pub fn new(http: reqwest::Client, authority_host: &str, graph_endpoint: &str, observer: TokenObserver) -> Self {
        TokenProvider {
            http,
            authority_host: authority_host.to_string(),
            graph_endpoint: graph_endpoint.to_string(),
            entries: Mutex::new(HashMap::new()),
            observer,
            status: None,
            token_store: None,
        }
    }

    /// Uses `store` for delegated credentials' refresh tokens.
    pub fn with_token_store(mut self, store: Arc<TokenStore>) -> Self {
        self.token_store = Some(store);
        self
    }

    /// Reports each subscription's sign-in state to `status`.
    pub fn with_status_observer(mut self, status: StatusObserver) -> Self {
        self.status = Some(status);
        self
    }

    /// A Graph token for `tenant`, from the cache when it is still good unless
    /// `fresh`. Concurrent callers for one (credential, tenant) share one
    /// request. After a failure, callers get that failure without a request
    /// until the back-off has passed.
    pub async fn token(
        &self,
        subscription: &str,
        credential: &Credential,
        tenant: &str,
        fresh: bool,
        log: &mut ProbeLog,
    ) -> Result<Secret, AuthError> {
        let entry = {
            let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            map.entry((credential.name.clone(), tenant.to_ascii_lowercase())).or_default().clone()
        };
        let mut entry = entry.lock().await;
        let now = Instant::now();
        if let Some(t) = entry.token.as_ref().filter(|t| !fresh && now < t.renew_at) {
            log.line("token: from cache");
            return Ok(t.access_token.clone());
        }
        let is_delegated = matches!(credential.kind, CredentialKind::Delegated(_));
        let stored = match (&self.token_store, is_delegated) {
            (Some(store), true) => Some(delegated::load(store, credential, tenant).await),
            _ => None,
        };
        if let Some(stored) = &stored
            && entry.failure.is_some()
            && entry.delegated.store_changed(stored)
        {
            // A new `m365mon login` (or logout) ends the back-off at once.
            log.line("token: the stored sign-in changed since the last failure; trying it now");
            entry.failure = None;
        }
        // A fresh request (the `auth` probe, once per interval) retries at once
        // after an outage-type failure; only credential problems and
        // throttling keep it waiting.
        let retry_now =
            |f: &Failure| fresh && is_transient(f.error.reason) && f.error.reason != FailureReason::Throttled;
        if let Some(f) = entry.failure.as_ref().filter(|f| now < f.retry_at && !retry_now(f)) {
            {
                let wait = f.retry_at - now;
                log.line(format!(
                    "token: not requested, backing off for {}s after {} failure(s): {}",
                    wait.as_secs(),
                    f.consecutive,
                    f.error
                ));
                return Err(f.error.clone());
            }
        }
        let started = Instant::now();
        let (result, sent) = match stored {
            Some(stored) => {
                let fingerprint = delegated::fingerprint(&stored);
                let r = self.refresh(subscription, credential, tenant, stored, &mut entry.delegated, log).await;
                if r.0.is_err() {
                    entry.delegated.failed_with = Some(fingerprint);
                }
                r
            }
            None if is_delegated => (
                Err(AuthError::new(
                    FailureReason::AuthFailed,
                    "delegated sign-in needs a token store (--storage.path)",
                )),
                false,
            ),
            None => (
                request_token(&self.http, &self.authority_host, &self.graph_endpoint, tenant, credential, log).await,
                true,
            ),
        };
        match result {
            Ok(issued) => {
                if sent {
                    (self.observer)(subscription, Ok(()));
                }
                if let Some(status) = &self.status {
                    status(subscription, None);
                }
                let lifetime = issued.expires_in;
                let margin = if lifetime > RENEW_BEFORE_EXPIRY * 2 { RENEW_BEFORE_EXPIRY } else { lifetime / 2 };
                entry.token = Some(CachedToken {
                    access_token: issued.access_token.clone(),
                    renew_at: started + lifetime - margin,
                });
                entry.failure = None;
                Ok(issued.access_token)
            }
            Err(err) => {
                if sent {
                    (self.observer)(subscription, Err(err.reason));
                }
                if let Some(status) = self.status.as_ref().filter(|_| !is_transient(err.reason)) {
                    status(subscription, Some(err.reason));
                }
                let consecutive = entry.failure.as_ref().map_or(0, |f| f.consecutive) + 1;
                if is_delegated && consecutive == 1 {
                    tracing::warn!(subscription, reason = %err.reason, error = %err.message, "delegated sign-in failed");
                }
                let wait = match err.reason {
                    FailureReason::Throttled => err.retry_after.unwrap_or(DEFAULT_RETRY_AFTER),
                    r if is_transient(r) => TRANSIENT_BACKOFF,
                    _ => backoff(consecutive),
                };
                log.line(format!(
                    "token: failed ({}); next request not before {}s from now",
                    err.reason,
                    wait.as_secs()
                ));
                entry.failure = Some(Failure { error: err.clone(), retry_at: Instant::now() + wait, consecutive });
                // A cached token stays usable for other probes until it expires,
                // unless the failure says the credential itself is bad.
                if !is_transient(err.reason) {
                    entry.token = None;
                }
                Err(err)
            }
        }
    }

    /// Drops the cached token of (`credential`, `tenant`) if it is still
    /// `rejected`, the token Graph just answered 401 to (revoked or otherwise
    /// no longer accepted before its expiry), so the next caller requests a
    /// new one. A token renewed meanwhile is kept.
    pub async fn invalidate(&self, credential: &Credential, tenant: &str, rejected: &Secret) {
        let entry = {
            let map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            map.get(&(credential.name.clone(), tenant.to_ascii_lowercase())).cloned()
        };
        if let Some(entry) = entry {
            let mut entry = entry.lock().await;
            if entry.token.as_ref().is_some_and(|t| t.access_token == *rejected) {
                entry.token = None;
            }
        }
    }

    /// Forgets cached tokens and failures of the named credentials (after a reload changed them).
    pub fn forget_credentials(&self, names: &[String]) {
        let mut map = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        map.retain(|(cred, _), _| !names.contains(cred));
    }

    /// The endpoints this provider talks to.
    pub fn endpoints(&self) -> (&str, &str) {
        (&self.authority_host, &self.graph_endpoint)
    }
}

/// Back-off after `n` consecutive failures: 30 s, 60 s, 120 s, ... capped at 10 min.
pub fn backoff(n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.saturating_sub(1).min(16)).unwrap_or(u32::MAX);
    BACKOFF_BASE.saturating_mul(factor).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_secs(30));
        assert_eq!(backoff(2), Duration::from_secs(60));
        assert_eq!(backoff(3), Duration::from_secs(120));
        assert_eq!(backoff(5), Duration::from_secs(480));
        assert_eq!(backoff(6), Duration::from_secs(600));
        assert_eq!(backoff(60), Duration::from_secs(600));
    }
}
