//! Delegated credentials in the token cache: redeem the stored refresh
//! token, store the rotated one, and only then hand out the access token.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use super::TokenProvider;
use super::request::{AuthError, Issued, request_refresh};
use super::store::{Rotation, StoreError, StoredToken, TokenStore};
use crate::config::{Credential, CredentialKind, Secret};
use crate::probe::{FailureReason, ProbeLog};

/// What a load of the store gave.
pub(super) type Loaded = Result<Option<StoredToken>, StoreError>;

/// Per (credential, tenant) state besides the cached access token.
#[derive(Default)]
pub(super) struct State {
    /// A rotated refresh token that could not be written: (the token the
    /// file holds, the newer one). Used instead of the file's until saved.
    unsaved: Option<(Secret, Secret)>,
    /// What the store held when the last attempt failed.
    pub failed_with: Option<Fingerprint>,
}

/// What identifies the store's content for one (credential, tenant).
#[derive(Debug, PartialEq)]
pub(super) enum Fingerprint {
    /// No file.
    Missing,
    /// A file that cannot be used, with the reason.
    Unusable(String),
    /// A stored refresh token.
    Token(Secret),
}

impl State {
    /// Whether the store holds something else than at the last failure.
    pub fn store_changed(&self, now: &Loaded) -> bool {
        self.failed_with.as_ref().is_some_and(|before| *before != fingerprint(now))
    }
}

/// What identifies a load's result.
pub(super) fn fingerprint(loaded: &Loaded) -> Fingerprint {
    match loaded {
        Ok(None) => Fingerprint::Missing,
        Ok(Some(s)) => Fingerprint::Token(s.refresh_token.clone()),
        Err(e) => Fingerprint::Unusable(e.to_string()),
    }
}

/// Reads the store off the async workers.
pub(super) async fn load(store: &Arc<TokenStore>, credential: &Credential, tenant: &str) -> Loaded {
    let (store, name, tenant) = (store.clone(), credential.name.clone(), tenant.to_string());
    let path = store.file_for(&name, &tenant);
    tokio::task::spawn_blocking(move || store.load(&name, &tenant))
        .await
        .unwrap_or_else(|e| Err(StoreError::Io { action: "read", path, source: std::io::Error::other(e.to_string()) }))
}

fn unix_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl TokenProvider {
    /// One refresh for a delegated credential. Returns the result and
    /// whether a request went out.
    pub(super) async fn refresh(
        &self,
        subscription: &str,
        credential: &Credential,
        tenant: &str,
        stored: Loaded,
        state: &mut State,
        log: &mut ProbeLog,
    ) -> (Result<Issued, AuthError>, bool) {
        let (Some(store), CredentialKind::Delegated(secret)) = (&self.token_store, &credential.kind) else {
            return (Err(AuthError::new(FailureReason::AuthFailed, "not a delegated credential")), false);
        };
        let login = format!("m365mon login --subscription {subscription}");
        let file = store.file_for(&credential.name, tenant);
        let stored = match stored {
            Ok(Some(s)) => s,
            Ok(None) => {
                let msg = format!(
                    "no sign-in stored for credential {} and tenant {tenant} ({}); run `{login}`",
                    credential.name,
                    file.display()
                );
                log.line(format!("token: {msg}"));
                return (Err(AuthError::new(FailureReason::ReauthRequired, msg)), false);
            }
            Err(e) => {
                log.line(format!("token: {e}"));
                return (Err(AuthError::new(FailureReason::AuthFailed, e.to_string())), false);
            }
        };
        if !stored.client_id.eq_ignore_ascii_case(&credential.client_id) {
            let msg = format!(
                "the sign-in in {} was made with app {}, but credential {} now has client_id {}; run `{login}`",
                file.display(),
                stored.client_id,
                credential.name,
                credential.client_id
            );
            log.line(format!("token: {msg}"));
            return (Err(AuthError::new(FailureReason::ReauthRequired, msg)), false);
        }
        let use_rt = match &state.unsaved {
            Some((base, newer)) if *base == stored.refresh_token => newer.clone(),
            _ => stored.refresh_token.clone(),
        };
        log.line(format!(
            "token: refreshing the delegated sign-in{} stored in {}",
            stored.account.as_deref().map(|a| format!(" of {a}")).unwrap_or_default(),
            file.display()
        ));
        let result = request_refresh(
            &self.http,
            &self.authority_host,
            &self.graph_endpoint,
            tenant,
            &credential.client_id,
            secret.as_ref(),
            &use_rt,
            log,
        )
        .await;
        let issued = match result {
            Ok(i) => i,
            Err(mut e) => {
                if e.reason == FailureReason::ReauthRequired {
                    log.line(format!("token: the refresh token was rejected; run `{login}`"));
                    e.message = format!("{}; run `{login}`", e.message);
                }
                return (Err(e), true);
            }
        };
        let newer = issued.refresh_token.clone().unwrap_or_else(|| use_rt.clone());
        let next = StoredToken { refresh_token: newer.clone(), saved_at: unix_now(), ..stored.clone() };
        let used = stored.refresh_token.clone();
        let s = store.clone();
        let saved = tokio::task::spawn_blocking(move || s.save_rotated(&used, &next)).await.unwrap_or_else(|e| {
            Err(StoreError::Io { action: "write", path: file.clone(), source: std::io::Error::other(e.to_string()) })
        });
        match saved {
            Ok(Rotation::Saved) => {
                state.unsaved = None;
                log.line("token: rotated refresh token stored");
            }
            Ok(Rotation::Removed) => {
                // Signed out while this refresh ran: the new token is not used.
                state.unsaved = None;
                let msg = "the sign-in was removed meanwhile (m365mon logout); run m365mon login".to_string();
                log.line(format!("token: {msg}"));
                return (Err(AuthError::new(FailureReason::ReauthRequired, msg)), true);
            }
            Ok(Rotation::Superseded) => {
                state.unsaved = None;
                log.line("token: the stored sign-in was replaced meanwhile (m365mon login); keeping the new one");
            }
            Err(e) => {
                state.unsaved = Some((stored.refresh_token, newer));
                let msg = format!("the rotated refresh token could not be stored, so the new token is not used: {e}");
                log.line(format!("token: {msg}"));
                tracing::error!(subscription, error = %e, "token store write failed");
                return (Err(AuthError::new(FailureReason::AuthFailed, msg)), true);
            }
        }
        (Ok(issued), true)
    }
}
