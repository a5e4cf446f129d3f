//! The simulated directory: app registrations and tenants with their users,
//! sites, teams, services, issues and messages.
//!
//! Loaded from the `--tenants` YAML file (see [`super::world_yaml`] for the
//! format) or built in by [`World::demo`].

use crate::config::Secret;

use super::ids;

/// Default access-token lifetime (`expires_in`).
pub const DEFAULT_TOKEN_LIFETIME_SECONDS: u64 = 3599;
/// Default device-login page.
pub const DEFAULT_VERIFICATION_URI: &str = "https://microsoft.com/devicelogin";

/// Every `serviceHealthStatus` member, in documentation order (protocol doc 5.1).
pub const SERVICE_HEALTH_STATUSES: [&str; 18] = [
    "serviceOperational",
    "investigating",
    "restoringService",
    "verifyingService",
    "serviceRestored",
    "postIncidentReviewPublished",
    "serviceDegradation",
    "serviceInterruption",
    "extendedRecovery",
    "falsePositive",
    "investigationSuspended",
    "resolved",
    "mitigatedExternal",
    "mitigated",
    "resolvedExternal",
    "confirmed",
    "reported",
    "unknownFutureValue",
];

/// The whole simulated world.
#[derive(Debug, Clone)]
pub struct World {
    /// `expires_in` of minted access tokens.
    pub token_lifetime_seconds: u64,
    /// Default for [`Tenant::strict_rotation`]: a used refresh token stops working.
    pub strict_rotation: bool,
    /// `verification_uri` in device-code answers.
    pub device_verification_uri: String,
    /// App registrations (global; consent per tenant).
    pub apps: Vec<App>,
    /// Tenants, in file order.
    pub tenants: Vec<Tenant>,
}

/// An app registration.
#[derive(Debug, Clone)]
pub struct App {
    /// Application (client) ID, lowercase GUID.
    pub client_id: String,
    /// Display name (used in AADSTS65001 messages).
    pub display_name: String,
    /// Client secrets.
    pub secrets: Vec<AppSecret>,
    /// Registered certificates.
    pub certificates: Vec<AppCertificate>,
    /// Federated identity credentials.
    pub federated_credentials: Vec<FederatedCredential>,
    /// "Allow public client flows" (device code without a secret).
    pub public_client: bool,
}

/// One client secret.
#[derive(Debug, Clone)]
pub struct AppSecret {
    /// The value a client sends.
    pub value: Secret,
    /// An expired secret answers AADSTS7000222.
    pub expired: bool,
}

/// A registered certificate, reduced to what the token endpoint checks.
#[derive(Clone)]
pub struct AppCertificate {
    /// base64url(SHA-1 of DER), the `x5t` header value.
    pub x5t: String,
    /// base64url(SHA-256 of DER), the `x5t#S256` header value.
    pub x5t_s256: String,
    /// The RSA public key (PKCS#1 `RSAPublicKey` DER).
    pub(crate) public_key_der: Vec<u8>,
    /// The certificate's notAfter, seconds since the epoch.
    pub not_after_unix: i64,
}

impl std::fmt::Debug for AppCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppCertificate").field("x5t#S256", &self.x5t_s256).finish_non_exhaustive()
    }
}

/// A federated identity credential: assertions from `issuer` about `subject`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FederatedCredential {
    /// Expected `iss` of the external token.
    pub issuer: String,
    /// Expected `sub` of the external token.
    pub subject: String,
}

/// A tenant (directory).
#[derive(Debug, Clone)]
pub struct Tenant {
    /// Tenant ID, lowercase GUID.
    pub id: String,
    /// Organization display name.
    pub display_name: String,
    /// Verified domains, lowercase; the first is the default domain.
    pub domains: Vec<String>,
    /// `countryLetterCode`.
    pub country_letter_code: String,
    /// Overrides [`World::strict_rotation`] for this tenant.
    pub strict_rotation: Option<bool>,
    /// Apps with a service principal here.
    pub consents: Vec<Consent>,
    /// Users.
    pub users: Vec<User>,
    /// SharePoint sites.
    pub sites: Vec<Site>,
    /// Teams.
    pub teams: Vec<Team>,
    /// Service health overview entries.
    pub services: Vec<Service>,
    /// Service health issues.
    pub issues: Vec<Issue>,
    /// Message center posts.
    pub messages: Vec<Message>,
    /// How the device code flow behaves here.
    pub device_flow: DeviceFlow,
    /// Mail delivery behaviour.
    pub mail: MailSettings,
    /// Customers listed by `/tenantRelationships/delegatedAdminCustomers`.
    pub customers: Vec<Customer>,
}

/// An app's service principal in a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Consent {
    /// The app.
    pub client_id: String,
    /// Admin-consented app roles; empty = consented without roles (token
    /// without `roles`, Graph answers 403).
    pub roles: Vec<String>,
    /// Delegated scopes for device-code and refresh-token tokens (`scp`).
    pub scopes: Vec<String>,
}

/// A user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Object ID.
    pub id: String,
    /// User principal name, lowercase.
    pub upn: String,
    /// Display name.
    pub display_name: String,
    /// Has an Exchange Online mailbox.
    pub mailbox: bool,
    /// Has a provisioned OneDrive.
    pub drive: bool,
}

/// A SharePoint site.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Site {
    /// `https://host/sites/name`, as configured (no trailing slash).
    pub url: String,
    /// `{host},{siteCollectionGuid},{webGuid}`.
    pub id: String,
    /// Display name.
    pub display_name: String,
}

/// A team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    /// Group ID, lowercase GUID.
    pub id: String,
    /// Display name.
    pub display_name: String,
    /// Description.
    pub description: String,
    /// `isArchived`.
    pub archived: bool,
}

/// A service in the health overview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    /// Service ID, e.g. `Exchange`.
    pub id: String,
    /// Display name, e.g. `Exchange Online`.
    pub name: String,
    /// camelCase `serviceHealthStatus`.
    pub status: String,
}

/// A service health issue (`serviceHealthIssue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// e.g. `EX000001`.
    pub id: String,
    /// Title.
    pub title: String,
    /// Service display name.
    pub service: String,
    /// Feature.
    pub feature: String,
    /// Feature group.
    pub feature_group: String,
    /// camelCase `serviceHealthStatus`.
    pub status: String,
    /// `incident` or `advisory`.
    pub classification: String,
    /// `microsoft`, `thirdParty` or `customer`.
    pub origin: String,
    /// Impact description.
    pub impact_description: String,
    /// ISO-8601 UTC.
    pub start_date_time: String,
    /// ISO-8601 UTC; `None` while open.
    pub end_date_time: Option<String>,
    /// ISO-8601 UTC.
    pub last_modified_date_time: String,
    /// `isResolved`.
    pub is_resolved: bool,
}

/// What [`super::SimHandle::open_issue`] and scenario `open_issue` steps create.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IssueSpec {
    /// e.g. `EX000001`; an existing issue with this ID is replaced (reopened).
    pub id: String,
    /// Service display name, e.g. `Exchange Online`.
    pub service: String,
    /// Title; default `Users may be unable to access <service>`.
    #[serde(default)]
    pub title: Option<String>,
    /// `incident` (default) or `advisory`.
    #[serde(default)]
    pub classification: Option<String>,
    /// Default `serviceDegradation`.
    #[serde(default)]
    pub status: Option<String>,
    /// Default `General`.
    #[serde(default)]
    pub feature: Option<String>,
    /// Default `Service availability`.
    #[serde(default)]
    pub feature_group: Option<String>,
    /// Default derived from the title.
    #[serde(default)]
    pub impact_description: Option<String>,
}

impl IssueSpec {
    /// A spec with only the required fields.
    pub fn new(id: impl Into<String>, service: impl Into<String>) -> Self {
        IssueSpec {
            id: id.into(),
            service: service.into(),
            title: None,
            classification: None,
            status: None,
            feature: None,
            feature_group: None,
            impact_description: None,
        }
    }

    /// Checks enum-like fields.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.id.trim().is_empty() {
            return Err("issue id must not be empty".into());
        }
        if self.service.trim().is_empty() {
            return Err("issue service must not be empty".into());
        }
        if let Some(c) = &self.classification {
            check_classification(c)?;
        }
        if let Some(s) = &self.status {
            check_status(s)?;
        }
        Ok(())
    }

    /// The issue as opened at `now_iso`.
    pub(crate) fn to_issue(&self, now_iso: &str) -> Issue {
        let title = self.title.clone().unwrap_or_else(|| format!("Users may be unable to access {}", self.service));
        Issue {
            id: self.id.clone(),
            impact_description: self.impact_description.clone().unwrap_or_else(|| format!("{title}.")),
            title,
            service: self.service.clone(),
            feature: self.feature.clone().unwrap_or_else(|| "General".into()),
            feature_group: self.feature_group.clone().unwrap_or_else(|| "Service availability".into()),
            status: self.status.clone().unwrap_or_else(|| "serviceDegradation".into()),
            classification: self.classification.clone().unwrap_or_else(|| "incident".into()),
            origin: "microsoft".into(),
            start_date_time: now_iso.to_string(),
            end_date_time: None,
            last_modified_date_time: now_iso.to_string(),
            is_resolved: false,
        }
    }
}

/// A message center post (`serviceUpdateMessage`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// e.g. `MC000001`.
    pub id: String,
    /// Title.
    pub title: String,
    /// `preventOrFixIssue`, `planForChange` or `stayInformed`.
    pub category: String,
    /// `normal`, `high` or `critical`.
    pub severity: String,
    /// Service display names.
    pub services: Vec<String>,
    /// Tags.
    pub tags: Vec<String>,
    /// `isMajorChange`.
    pub is_major_change: bool,
    /// ISO-8601 UTC.
    pub start_date_time: String,
    /// ISO-8601 UTC.
    pub end_date_time: Option<String>,
    /// ISO-8601 UTC.
    pub last_modified_date_time: String,
    /// ISO-8601 UTC.
    pub action_required_by_date_time: Option<String>,
    /// HTML body.
    pub body: String,
}

/// What a device-code poll answers once the first [`DeviceFlow::after_polls`] polls said
/// `authorization_pending`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceOutcome {
    /// The user signs in: tokens are issued.
    Approve,
    /// The user refuses: `authorization_declined`.
    Decline,
    /// Nobody acts: pending until the code expires or the control API approves or declines it.
    Pending,
}

/// Device code flow behaviour for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceFlow {
    /// After the first `after_polls` pending answers.
    pub outcome: DeviceOutcome,
    /// Number of polls answered `authorization_pending` first.
    pub after_polls: u32,
    /// `interval` in the devicecode answer.
    pub interval_seconds: u64,
    /// `expires_in` in the devicecode answer.
    pub expires_in_seconds: u64,
    /// Answer `slow_down` to polls sooner than `interval_seconds` after the previous one.
    pub enforce_interval: bool,
    /// The UPN who signs in; default the tenant's first user.
    pub user: Option<String>,
}

impl Default for DeviceFlow {
    fn default() -> Self {
        DeviceFlow {
            outcome: DeviceOutcome::Approve,
            after_polls: 1,
            interval_seconds: 5,
            expires_in_seconds: 900,
            enforce_interval: false,
            user: None,
        }
    }
}

/// Mail delivery behaviour for one tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailSettings {
    /// Seconds between send and arrival in the recipient's mailbox.
    pub delivery_delay_seconds: u64,
    /// Sent mail is accepted (202) but never delivered.
    pub drop: bool,
}

impl Default for MailSettings {
    fn default() -> Self {
        MailSettings { delivery_delay_seconds: 2, drop: false }
    }
}

/// A customer of a partner tenant (GDAP).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// The customer's tenant ID.
    pub tenant_id: String,
    /// Display name.
    pub display_name: String,
    /// The partner's delegated admin relationships with this customer
    /// (`/tenantRelationships/delegatedAdminRelationships`).
    pub relationships: Vec<Relationship>,
}

impl Customer {
    /// A customer with one active relationship that ends two years after
    /// the current day (on the simulator's clock).
    pub fn new(tenant_id: &str, display_name: &str) -> Self {
        Customer {
            tenant_id: tenant_id.to_ascii_lowercase(),
            display_name: display_name.to_string(),
            relationships: vec![Relationship::default()],
        }
    }
}

/// One GDAP relationship (`delegatedAdminRelationship`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relationship {
    /// `displayName`.
    pub display_name: String,
    /// `status`: `active`, `expired`, `terminated`, `approvalPending`, ...
    pub status: String,
    /// `endDateTime` (ISO-8601 UTC); `None`: two years after the current
    /// day's midnight UTC on the simulator's clock.
    pub end: Option<String>,
    /// `autoExtendDuration`: `PT0S` (default) or `P180D`.
    pub auto_extend: String,
}

impl Default for Relationship {
    fn default() -> Self {
        Relationship {
            display_name: "m365mon relationship".into(),
            status: "active".into(),
            end: None,
            auto_extend: "PT0S".into(),
        }
    }
}

/// `status` values of `delegatedAdminRelationship` (Graph v1.0).
pub const RELATIONSHIP_STATUSES: &[&str] = &[
    "activating",
    "active",
    "approvalPending",
    "approved",
    "created",
    "expired",
    "expiring",
    "terminated",
    "terminating",
    "terminationRequested",
];

pub(crate) fn check_status(s: &str) -> Result<(), String> {
    if SERVICE_HEALTH_STATUSES.contains(&s) {
        Ok(())
    } else {
        Err(format!("unknown service health status {s:?}; expected one of {}", SERVICE_HEALTH_STATUSES.join(", ")))
    }
}

pub(crate) fn check_classification(s: &str) -> Result<(), String> {
    match s {
        "incident" | "advisory" => Ok(()),
        _ => Err(format!("unknown classification {s:?}; expected incident or advisory")),
    }
}

/// The default health overview: the main Microsoft 365 services, all operational.
pub fn default_services() -> Vec<Service> {
    [
        ("Exchange", "Exchange Online"),
        ("AzureActiveDirectory", "Microsoft Entra"),
        ("SharePoint", "SharePoint Online"),
        ("OneDriveForBusiness", "OneDrive for Business"),
        ("microsoftteams", "Microsoft Teams"),
        ("OSDPPlatform", "Microsoft 365 suite"),
        ("OrgLiveID", "Identity Service"),
        ("Intune", "Microsoft Intune"),
    ]
    .into_iter()
    .map(|(id, name)| Service { id: id.into(), name: name.into(), status: "serviceOperational".into() })
    .collect()
}

impl World {
    /// The tenant whose GUID or one of whose domains is `key` (case-insensitive).
    pub fn tenant(&self, key: &str) -> Option<&Tenant> {
        let i = self.tenant_index(key)?;
        self.tenants.get(i)
    }

    pub(crate) fn tenant_index(&self, key: &str) -> Option<usize> {
        let key = key.to_ascii_lowercase();
        self.tenants.iter().position(|t| t.id == key || t.domains.contains(&key))
    }

    /// The app with this client ID (case-insensitive).
    pub fn app(&self, client_id: &str) -> Option<&App> {
        self.apps.iter().find(|a| a.client_id.eq_ignore_ascii_case(client_id))
    }

    /// The built-in demo world (values fixed; `m365mon demo` depends on them).
    ///
    /// Apps: "m365mon demo" `0e5b0a52-8f1a-4d5e-9d3c-6b7f3c2a9e01` with secret
    /// `demo-secret-not-for-production`, and "tailspin monitor"
    /// `7d3c1f0e-2b4a-4c6d-8e9f-0a1b2c3d4e5f` whose only secret
    /// `tailspin-old-secret` has expired. Tenants contoso, fabrikam and northwind
    /// (GUIDs `1111…`, `2222…`, `3333…`) consent the demo app with every probe role;
    /// tailspin (`4444…`) consents the tailspin app. Each tenant X has
    /// `monitor@X.com` (mailbox and drive), the site
    /// `https://X.sharepoint.com/sites/monitoring`, the team
    /// `aaaaaaaa-0000-4000-8000-00000000000N` and the default services.
    pub fn demo() -> World {
        const DEMO_APP: &str = "0e5b0a52-8f1a-4d5e-9d3c-6b7f3c2a9e01";
        const TAILSPIN_APP: &str = "7d3c1f0e-2b4a-4c6d-8e9f-0a1b2c3d4e5f";
        let apps = vec![
            App {
                client_id: DEMO_APP.into(),
                display_name: "m365mon demo".into(),
                secrets: vec![AppSecret { value: Secret::new("demo-secret-not-for-production"), expired: false }],
                certificates: vec![],
                federated_credentials: vec![],
                public_client: true,
            },
            App {
                client_id: TAILSPIN_APP.into(),
                display_name: "tailspin monitor".into(),
                secrets: vec![AppSecret { value: Secret::new("tailspin-old-secret"), expired: true }],
                certificates: vec![],
                federated_credentials: vec![],
                public_client: false,
            },
        ];
        let tenants = [
            ("contoso", "Contoso", "11111111-1111-4111-8111-111111111111", DEMO_APP),
            ("fabrikam", "Fabrikam", "22222222-2222-4222-8222-222222222222", DEMO_APP),
            ("northwind", "Northwind Traders", "33333333-3333-4333-8333-333333333333", DEMO_APP),
            ("tailspin", "Tailspin Toys", "44444444-4444-4444-8444-444444444444", TAILSPIN_APP),
        ]
        .into_iter()
        .enumerate()
        .map(|(i, (short, name, id, app))| {
            let upn = format!("monitor@{short}.com");
            let site_url = format!("https://{short}.sharepoint.com/sites/monitoring");
            Tenant {
                id: id.into(),
                display_name: name.into(),
                domains: vec![format!("{short}.onmicrosoft.com"), format!("{short}.com")],
                country_letter_code: "US".into(),
                strict_rotation: None,
                consents: vec![Consent {
                    client_id: app.into(),
                    roles: PROBE_ROLES.iter().map(|r| r.to_string()).collect(),
                    scopes: PROBE_ROLES.iter().map(|r| r.to_string()).collect(),
                }],
                users: vec![User {
                    id: ids::derived_guid(&format!("user:{id}:{upn}")),
                    display_name: "Monitoring Mailbox".into(),
                    upn,
                    mailbox: true,
                    drive: true,
                }],
                sites: vec![Site { id: ids::site_id(&site_url), url: site_url, display_name: "Monitoring".into() }],
                teams: vec![Team {
                    id: format!("aaaaaaaa-0000-4000-8000-00000000000{}", i + 1),
                    display_name: format!("{name} Operations"),
                    description: "Team watched by m365mon".into(),
                    archived: false,
                }],
                services: default_services(),
                issues: vec![],
                messages: vec![Message {
                    id: "MC000001".into(),
                    title: "(Updated) Planned maintenance of the demo environment".into(),
                    category: "planForChange".into(),
                    severity: "normal".into(),
                    services: vec!["Microsoft 365 suite".into()],
                    tags: vec!["Updated message".into()],
                    is_major_change: false,
                    start_date_time: "2025-01-01T00:00:00Z".into(),
                    end_date_time: Some("2030-01-01T00:00:00Z".into()),
                    last_modified_date_time: "2025-01-05T10:00:00Z".into(),
                    action_required_by_date_time: None,
                    body: "<p>Synthetic message from the m365mon simulator.</p>".into(),
                }],
                device_flow: DeviceFlow::default(),
                mail: MailSettings::default(),
                customers: vec![],
            }
        })
        .collect();
        World {
            token_lifetime_seconds: DEFAULT_TOKEN_LIFETIME_SECONDS,
            strict_rotation: false,
            device_verification_uri: DEFAULT_VERIFICATION_URI.into(),
            apps,
            tenants,
        }
    }
}

/// App roles the demo app holds: one for each probe (least privilege per
/// protocol doc section 5) plus the mail round-trip roles.
pub const PROBE_ROLES: [&str; 9] = [
    "Organization.Read.All",
    "Mail.ReadBasic.All",
    "Sites.Read.All",
    "Files.Read.All",
    "Team.ReadBasic.All",
    "ServiceHealth.Read.All",
    "ServiceMessage.Read.All",
    "Mail.Send",
    "Mail.ReadWrite",
];
