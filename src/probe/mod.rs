//! Probes: one file per kind, dispatched through [`run`].
//!
//! A probe makes one attempt, with no retries, and reports an [`Outcome`]:
//! success, a failure with a bounded [`FailureReason`], or throttled (which is
//! not an outage). Timeouts are applied by the caller around [`run`].

mod auth;
mod common;
mod exchange;
mod mail;
mod message_center;
mod onedrive;
mod organization;
mod service_health;
mod sharepoint;
mod teams;

use std::fmt;
use std::time::Duration;

use crate::auth::TokenProvider;
use crate::config::{Config, Credential, Global, ProbeKind, Subscription};
use crate::graph::GraphClient;

pub use mail::{MAIL_DELIVERY_BUCKETS, POLL_INTERVAL, PROBE_HEADER, SUBJECT_PREFIX, run_limit};
pub use message_center::MessageCenterSnapshot;
pub use service_health::{HealthSnapshot, ServiceStatus, is_operational, normalize_status};
pub use sharepoint::site_path;

/// Why a probe run failed. The set is closed so the `reason` label stays bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FailureReason {
    /// The run did not finish within its timeout.
    Timeout,
    /// Connection refused, reset, DNS or TLS failure.
    Network,
    /// Graph or the token endpoint answered 5xx (without Retry-After).
    Http5xx,
    /// Graph answered 401.
    Unauthorized,
    /// Graph answered 403: usually a missing application permission.
    Forbidden,
    /// Graph answered 404: the mailbox, site, drive or team does not exist.
    NotFound,
    /// A response that is not what the protocol promises.
    InvalidResponse,
    /// Sign-in: wrong secret, or a certificate/assertion that was refused.
    CredentialInvalid,
    /// Sign-in: the client secret has expired.
    CredentialExpired,
    /// Sign-in: the app is not consented (not present) in the tenant.
    NotConsented,
    /// Sign-in: the tenant does not exist (in this cloud).
    TenantNotFound,
    /// Sign-in: the token endpoint refused because of request volume.
    Throttled,
    /// Sign-in failed for another reason (configuration, policy, ...).
    AuthFailed,
    /// Mail round trip: Exchange did not accept the message (draft or send failed).
    SendFailed,
    /// Mail round trip: the message was accepted but did not arrive within the timeout.
    NotDelivered,
    /// Delegated sign-in: no stored sign-in, or Entra rejected the refresh
    /// token (expired, revoked, consent withdrawn); run `m365mon login`.
    ReauthRequired,
}

impl FailureReason {
    /// Every reason, for documentation and tests.
    pub const ALL: [FailureReason; 16] = [
        FailureReason::Timeout,
        FailureReason::Network,
        FailureReason::Http5xx,
        FailureReason::Unauthorized,
        FailureReason::Forbidden,
        FailureReason::NotFound,
        FailureReason::InvalidResponse,
        FailureReason::CredentialInvalid,
        FailureReason::CredentialExpired,
        FailureReason::NotConsented,
        FailureReason::TenantNotFound,
        FailureReason::Throttled,
        FailureReason::AuthFailed,
        FailureReason::SendFailed,
        FailureReason::NotDelivered,
        FailureReason::ReauthRequired,
    ];

    /// The `reason` label value.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::Timeout => "timeout",
            FailureReason::Network => "network",
            FailureReason::Http5xx => "http_5xx",
            FailureReason::Unauthorized => "unauthorized",
            FailureReason::Forbidden => "forbidden",
            FailureReason::NotFound => "not_found",
            FailureReason::InvalidResponse => "invalid_response",
            FailureReason::CredentialInvalid => "credential_invalid",
            FailureReason::CredentialExpired => "credential_expired",
            FailureReason::NotConsented => "not_consented",
            FailureReason::TenantNotFound => "tenant_not_found",
            FailureReason::Throttled => "throttled",
            FailureReason::AuthFailed => "auth_failed",
            FailureReason::SendFailed => "send_failed",
            FailureReason::NotDelivered => "not_delivered",
            FailureReason::ReauthRequired => "reauth_required",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Graph throttles per workload; a throttled workload must not delay the others.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Workload {
    /// Entra ID's token endpoint.
    Identity,
    /// Directory objects (`/organization`).
    Directory,
    /// Exchange Online (mail folders, messages).
    Exchange,
    /// SharePoint Online; OneDrive for Business runs on it too.
    SharePoint,
    /// Microsoft Teams.
    Teams,
    /// Service Communications (`/admin/serviceAnnouncement`).
    ServiceCommunications,
}

impl Workload {
    /// The workload a probe kind talks to.
    pub fn of(kind: &ProbeKind) -> Workload {
        match kind {
            ProbeKind::Auth => Workload::Identity,
            ProbeKind::Organization => Workload::Directory,
            ProbeKind::Exchange { .. } | ProbeKind::MailRoundtrip { .. } => Workload::Exchange,
            ProbeKind::Sharepoint { .. } | ProbeKind::Onedrive { .. } => Workload::SharePoint,
            ProbeKind::Teams { .. } => Workload::Teams,
            ProbeKind::ServiceHealth | ProbeKind::MessageCenter => Workload::ServiceCommunications,
        }
    }

    /// A short name for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Workload::Identity => "identity",
            Workload::Directory => "directory",
            Workload::Exchange => "exchange",
            Workload::SharePoint => "sharepoint",
            Workload::Teams => "teams",
            Workload::ServiceCommunications => "service_communications",
        }
    }
}

/// The result of one probe run.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Everything answered as expected.
    Success,
    /// The service (or sign-in) failed.
    Failure(FailureReason),
    /// The service asked us to slow down; neither success nor failure.
    Throttled {
        /// The workload that throttled.
        workload: Workload,
        /// How long to leave it alone.
        retry_after: Duration,
    },
}

/// What a run produced besides its outcome.
#[derive(Debug, Clone, Default)]
pub struct RunDetails {
    /// Service health, from a `service_health` probe that got that far.
    pub health: Option<HealthSnapshot>,
    /// Send-to-inbox time of a delivered `mail_roundtrip` message; it is
    /// the run's duration.
    pub delivery: Option<Duration>,
    /// Message center counts, from a successful `message_center` run.
    pub message_center: Option<MessageCenterSnapshot>,
}

/// A small log of one run, shown by `/probe?debug=true`. It never holds secrets:
/// only methods, URLs built from config, statuses, timings and error texts
/// from Microsoft (which do not echo secrets).
#[derive(Debug, Clone, Default)]
pub struct ProbeLog {
    lines: Vec<String>,
    start: Option<tokio::time::Instant>,
}

impl ProbeLog {
    /// An empty log whose timestamps count from now.
    pub fn new() -> Self {
        ProbeLog { lines: Vec::new(), start: Some(tokio::time::Instant::now()) }
    }

    /// Appends a line, prefixed with the time since the run started.
    pub fn line(&mut self, msg: impl AsRef<str>) {
        let ms = self.start.map(|s| s.elapsed().as_secs_f64() * 1000.0).unwrap_or(0.0);
        // Bounded so a misbehaving peer cannot grow it without limit.
        if self.lines.len() < 200 {
            let mut text = msg.as_ref().to_string();
            crate::text::truncate(&mut text, 2000);
            self.lines.push(format!("{ms:>9.1}ms  {text}"));
        }
    }

    /// The lines written so far.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }
}

/// Everything a probe needs.
pub struct ProbeContext<'a> {
    /// The subscription being probed.
    pub subscription: &'a Subscription,
    /// Its credential.
    pub credential: &'a Credential,
    /// Global settings (endpoints).
    pub global: &'a Global,
    /// Token acquisition and cache.
    pub tokens: &'a std::sync::Arc<TokenProvider>,
    /// Graph HTTP client.
    pub graph: &'a GraphClient,
    /// The whole configuration (a mail round trip may read with another subscription's sign-in).
    pub config: &'a Config,
    /// The probe's configured timeout (a mail round trip waits this long for delivery).
    pub timeout: Duration,
}

/// Runs one probe of `kind` once. Never panics on peer input; never retries.
pub async fn run(kind: &ProbeKind, ctx: &ProbeContext<'_>, log: &mut ProbeLog) -> (Outcome, RunDetails) {
    match kind {
        ProbeKind::Auth => (auth::run(ctx, log).await, RunDetails::default()),
        ProbeKind::Organization => (organization::run(ctx, log).await, RunDetails::default()),
        ProbeKind::Exchange { mailbox } => (exchange::run(ctx, mailbox, log).await, RunDetails::default()),
        ProbeKind::Sharepoint { site } => (sharepoint::run(ctx, site, log).await, RunDetails::default()),
        ProbeKind::Onedrive { user } => (onedrive::run(ctx, user, log).await, RunDetails::default()),
        ProbeKind::Teams { team_id } => (teams::run(ctx, team_id, log).await, RunDetails::default()),
        ProbeKind::ServiceHealth => service_health::run(ctx, log).await,
        ProbeKind::MailRoundtrip { from, to, to_subscription } => {
            mail::run(ctx, from, to, to_subscription.as_deref(), log).await
        }
        ProbeKind::MessageCenter => message_center::run(ctx, log).await,
    }
}
