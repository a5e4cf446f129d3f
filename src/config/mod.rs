//! The configuration file (`m365mon.yml`): typed model, loading and validation.
//!
//! Everything here is resolved at load time: defaults from `global` and
//! `subscription_defaults` are already applied, durations are parsed, secret
//! files are checked for readability and certificates are parsed. Code that
//! consumes a [`Config`] never has to look anything up again.

mod cert;
mod check;
mod cloud;
mod credentials;
mod discovery;
mod global;
mod load;
mod probes;
mod render;
mod secret;
mod subscriptions;
mod values;
mod yaml;

pub use cloud::Cloud;
pub use discovery::DEFAULT_REFRESH_INTERVAL;
pub use global::{DEFAULT_MAX_CONCURRENT_PROBES, DEFAULT_PROBE_INTERVAL, DEFAULT_PROBE_TIMEOUT};
pub use load::{ConfigError, ConfigErrors, load_file, parse_str, parse_str_with_env};
pub use secret::Secret;
pub use values::format_duration;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// A fully validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Global settings with cloud endpoints resolved.
    pub global: Global,
    /// App registrations, by name.
    pub credentials: BTreeMap<String, Credential>,
    /// The monitored tenants, in file order.
    pub subscriptions: Vec<Subscription>,
    /// Partner tenants whose customers become subscriptions (`discovery:`), in file order.
    pub discovery: Vec<Discovery>,
}

/// One `discovery[]` entry: a partner tenant whose GDAP customers are
/// monitored as subscriptions built from `template`.
#[derive(Debug, Clone, PartialEq)]
pub struct Discovery {
    /// The `discovery` label: unique, `[a-z0-9][a-z0-9_.-]*`.
    pub name: String,
    /// The credential that signs in to the partner tenant (checked to exist).
    pub credential: String,
    /// The partner's tenant GUID or verified domain, lowercased.
    pub partner_tenant_id: String,
    /// How often the customer list is read again.
    pub refresh_interval: Duration,
    /// What every discovered subscription gets.
    pub template: SubscriptionTemplate,
    /// Customer tenant GUIDs (lowercased) never monitored through this entry.
    pub exclude: Vec<String>,
}

/// `subscription_template` with `subscription_defaults` and `global`
/// applied; the credential falls back to the discovery's own.
#[derive(Debug, Clone, PartialEq)]
pub struct SubscriptionTemplate {
    /// Name of an entry in [`Config::credentials`] (checked to exist).
    pub credential: String,
    /// Owning admins.
    pub admins: Vec<String>,
    /// The probes, each with its effective interval and timeout.
    pub probes: Vec<ProbeConfig>,
}

/// The `global:` section, resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct Global {
    /// The national cloud.
    pub cloud: Cloud,
    /// Effective sign-in host, e.g. `https://login.microsoftonline.com` (no trailing slash).
    pub authority_host: String,
    /// Effective Graph root, e.g. `https://graph.microsoft.com` (no trailing slash).
    /// Requests go to `<graph_endpoint>/v1.0/...`; the token scope is `<graph_endpoint>/.default`.
    pub graph_endpoint: String,
    /// Default probe interval.
    pub probe_interval: Duration,
    /// Default probe timeout.
    pub probe_timeout: Duration,
    /// Upper bound on probes running at once, across all subscriptions.
    pub max_concurrent_probes: usize,
}

/// One app registration (`credentials.NAME`).
#[derive(Debug, Clone, PartialEq)]
pub struct Credential {
    /// The key under `credentials:`.
    pub name: String,
    /// The application (client) ID.
    pub client_id: String,
    /// How the app proves its identity.
    pub kind: CredentialKind,
}

/// The one way a credential authenticates.
#[derive(Debug, Clone, PartialEq)]
pub enum CredentialKind {
    /// A client secret (`client_secret`, `client_secret_file` or `client_secret_env`).
    Secret(SecretSource),
    /// A certificate client assertion.
    Certificate(CertificateCredential),
    /// Workload identity federation: the file holds the assertion and is re-read each time.
    FederatedTokenFile(PathBuf),
    /// `delegated: true`: a signed-in account (`m365mon login`) whose refresh
    /// token lives in the token store; the client secret is optional (none:
    /// a public client with "allow public client flows").
    Delegated(Option<SecretSource>),
}

/// Where a client secret comes from. Files and variables are read again on
/// each token request, so a rotated secret needs no restart.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretSource {
    /// `client_secret:` inline in the file.
    Inline(Secret),
    /// `client_secret_file:`; trailing newlines are stripped.
    File(PathBuf),
    /// `client_secret_env:`, the variable's name.
    Env(String),
}

/// A certificate credential, loaded and checked at config load.
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateCredential {
    /// `certificate_file:`
    pub certificate_file: PathBuf,
    /// `private_key_file:`
    pub private_key_file: PathBuf,
    /// DER bytes of the (first) certificate in the file.
    pub certificate_der: Vec<u8>,
    /// The private key, PEM (PKCS#8 or PKCS#1 RSA).
    pub private_key_pem: Secret,
    /// The certificate's notAfter, seconds since the Unix epoch.
    pub not_after_unix: i64,
}

/// One monitored tenant (`subscriptions[]`), with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Subscription {
    /// The `subscription` label: unique, `[a-z0-9][a-z0-9_.-]*`.
    pub name: String,
    /// Tenant GUID or verified domain.
    pub tenant_id: String,
    /// Name of an entry in [`Config::credentials`] (checked to exist).
    pub credential: String,
    /// Owning admins (e-mail addresses), in file order, without duplicates.
    pub admins: Vec<String>,
    /// The probes, each with its effective interval and timeout.
    pub probes: Vec<ProbeConfig>,
}

/// One probe of a subscription.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeConfig {
    /// The `probe` label; defaults to the type name; unique per subscription.
    pub name: String,
    /// What the probe does, with its parameter.
    pub kind: ProbeKind,
    /// Effective interval (probe, else subscription, else global).
    pub interval: Duration,
    /// Effective timeout (probe, else global); never longer than the interval.
    pub timeout: Duration,
}

/// The probe types and their parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ProbeKind {
    /// A fresh token from the token endpoint.
    Auth,
    /// `GET /v1.0/organization`.
    Organization,
    /// `GET /v1.0/users/{mailbox}/mailFolders/inbox`.
    Exchange {
        /// UPN or object ID of the mailbox.
        mailbox: String,
    },
    /// `GET /v1.0/sites/{host}:/{path}`.
    Sharepoint {
        /// The site URL as configured, e.g. `https://contoso.sharepoint.com/sites/monitoring`.
        site: String,
    },
    /// `GET /v1.0/users/{user}/drive`.
    Onedrive {
        /// UPN or object ID of the drive's owner.
        user: String,
    },
    /// `GET /v1.0/teams/{team_id}`.
    Teams {
        /// The team's GUID.
        team_id: String,
    },
    /// `healthOverviews` plus unresolved `issues`.
    ServiceHealth,
    /// Draft and send a message, then wait for it in the recipient's inbox.
    MailRoundtrip {
        /// UPN or object ID of the sending mailbox.
        from: String,
        /// UPN or object ID of the receiving mailbox.
        to: String,
        /// Read the recipient mailbox with this subscription's sign-in
        /// (checked to exist); `None`: the probe's own subscription.
        to_subscription: Option<String>,
    },
    /// Message center posts (`/admin/serviceAnnouncement/messages`).
    MessageCenter,
}

impl ProbeKind {
    /// The `type:` value in the file, also the default probe name.
    pub fn type_name(&self) -> &'static str {
        match self {
            ProbeKind::Auth => "auth",
            ProbeKind::Organization => "organization",
            ProbeKind::Exchange { .. } => "exchange",
            ProbeKind::Sharepoint { .. } => "sharepoint",
            ProbeKind::Onedrive { .. } => "onedrive",
            ProbeKind::Teams { .. } => "teams",
            ProbeKind::ServiceHealth => "service_health",
            ProbeKind::MailRoundtrip { .. } => "mail_roundtrip",
            ProbeKind::MessageCenter => "message_center",
        }
    }

    /// The timeout of this type when the probe sets none; `None`:
    /// `global.probe_timeout`. A mail round trip waits minutes for delivery,
    /// so the global default (meant for single requests) does not apply to it.
    pub fn default_timeout(&self) -> Option<Duration> {
        match self {
            ProbeKind::MailRoundtrip { .. } => Some(DEFAULT_MAIL_TIMEOUT),
            _ => None,
        }
    }
}

/// The default `timeout` of a `mail_roundtrip` probe: how long it waits for delivery.
pub const DEFAULT_MAIL_TIMEOUT: Duration = Duration::from_secs(300);

impl Config {
    /// The credential a subscription uses. Validation guarantees it exists.
    pub fn credential_of(&self, sub: &Subscription) -> Option<&Credential> {
        self.credentials.get(&sub.credential)
    }
}
