//! `m365mon login`, `logout` and `consent-url`: the commands that set up a
//! subscription's sign-in.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::auth::{DeviceCode, DeviceFlow, DeviceFlowError, Sleep, StoreError, StoredToken, TokenStore};
use crate::config::{Config, Credential, CredentialKind, Subscription};

/// Why a command could not do its job; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// No such subscription in the config.
    #[error("unknown subscription {name:?} in {file}; configured: {configured}")]
    UnknownSubscription {
        /// The name given.
        name: String,
        /// The config file.
        file: String,
        /// The configured names.
        configured: String,
    },
    /// No such credential in the config.
    #[error("unknown credential {name:?} in {file}; configured: {configured}")]
    UnknownCredential {
        /// The name given.
        name: String,
        /// The config file.
        file: String,
        /// The configured names.
        configured: String,
    },
    /// The subscription's credential is app-only.
    #[error(
        "subscription {subscription} uses credential {credential}, which is not delegated; `m365mon login` is only for credentials with `delegated: true` (app-only credentials need admin consent: m365mon consent-url --subscription {subscription})"
    )]
    NotDelegated {
        /// The subscription.
        subscription: String,
        /// Its credential.
        credential: String,
    },
    /// The token store refused.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The device code flow failed.
    #[error(transparent)]
    DeviceFlow(#[from] DeviceFlowError),
}

/// A subscription with its (delegated) credential.
pub fn delegated_subscription<'c>(
    config: &'c Config,
    config_file: &Path,
    name: &str,
) -> Result<(&'c Subscription, &'c Credential), LoginError> {
    let sub = find_subscription(config, config_file, name)?;
    let cred = config.credential_of(sub).ok_or_else(|| unknown_credential(config, config_file, &sub.credential))?;
    if !matches!(cred.kind, CredentialKind::Delegated(_)) {
        return Err(LoginError::NotDelegated { subscription: sub.name.clone(), credential: cred.name.clone() });
    }
    Ok((sub, cred))
}

fn find_subscription<'c>(config: &'c Config, config_file: &Path, name: &str) -> Result<&'c Subscription, LoginError> {
    config.subscriptions.iter().find(|s| s.name == name).ok_or_else(|| LoginError::UnknownSubscription {
        name: name.to_string(),
        file: config_file.display().to_string(),
        configured: list(config.subscriptions.iter().map(|s| s.name.as_str())),
    })
}

fn unknown_credential(config: &Config, config_file: &Path, name: &str) -> LoginError {
    LoginError::UnknownCredential {
        name: name.to_string(),
        file: config_file.display().to_string(),
        configured: list(config.credentials.keys().map(String::as_str)),
    }
}

fn list<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let all: Vec<&str> = names.collect();
    if all.is_empty() { "none".into() } else { all.join(", ") }
}

/// Signs `sub` in with the device code flow and stores the refresh token.
/// `prompt` shows Microsoft's message; `progress` gets status lines.
/// Returns the stored sign-in and its file.
#[allow(clippy::too_many_arguments)]
pub async fn login(
    http: &reqwest::Client,
    config: &Config,
    sub: &Subscription,
    credential: &Credential,
    store: &TokenStore,
    sleep: Sleep<'_>,
    prompt: &mut (dyn FnMut(&DeviceCode) + Send),
    progress: &mut (dyn FnMut(&str) + Send),
) -> Result<(StoredToken, PathBuf), LoginError> {
    let CredentialKind::Delegated(secret) = &credential.kind else {
        return Err(LoginError::NotDelegated { subscription: sub.name.clone(), credential: credential.name.clone() });
    };
    // Refuse before the user signs in for nothing.
    store.load(&credential.name, &sub.tenant_id).or_else(|e| match e {
        StoreError::Io { .. } => Ok(None),
        other => Err(other),
    })?;
    let flow = DeviceFlow {
        http,
        authority_host: &config.global.authority_host,
        graph_endpoint: &config.global.graph_endpoint,
        tenant: &sub.tenant_id,
        client_id: &credential.client_id,
        secret: secret.as_ref(),
    };
    let code = flow.start().await?;
    prompt(&code);
    let signed_in = flow.poll(&code, sleep, progress).await?;
    let token = StoredToken {
        credential: credential.name.clone(),
        tenant: sub.tenant_id.to_ascii_lowercase(),
        client_id: credential.client_id.clone(),
        refresh_token: signed_in.refresh_token,
        scope: signed_in.scope,
        account: signed_in.account,
        saved_at: SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
    };
    let path = store.save(&token)?;
    Ok((token, path))
}

/// A real sleep, for the command line.
pub fn tokio_sleep() -> impl FnMut(Duration) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send {
    |d| Box::pin(tokio::time::sleep(d))
}

/// What `m365mon consent-url` prints for a subscription, or for a
/// (credential, tenant) pair with the probes of the subscriptions using it.
pub fn consent_report(
    config: &Config,
    config_file: &Path,
    subscription: Option<&str>,
    credential_tenant: Option<(&str, &str)>,
) -> Result<String, LoginError> {
    if let Some(name) = subscription {
        let sub = find_subscription(config, config_file, name)?;
        let cred = config.credential_of(sub).ok_or_else(|| unknown_credential(config, config_file, &sub.credential))?;
        return Ok(crate::consent::report(config, cred, &sub.tenant_id, &[sub]));
    }
    let (cred_name, tenant) = credential_tenant.unwrap_or_default();
    let cred = config.credentials.get(cred_name).ok_or_else(|| unknown_credential(config, config_file, cred_name))?;
    let subs: Vec<&Subscription> = config
        .subscriptions
        .iter()
        .filter(|s| s.credential == cred.name && s.tenant_id.eq_ignore_ascii_case(tenant))
        .collect();
    Ok(crate::consent::report(config, cred, tenant, &subs))
}
