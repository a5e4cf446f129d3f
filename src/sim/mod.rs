//! The Entra ID and Microsoft Graph simulator, used by the tests,
//! `m365mon simulate` and `m365mon demo`.
//!
//! It follows `shared/docs/microsoft-protocol.md` (sections 0-6): paths, bodies,
//! headers, status codes and `Retry-After` as Microsoft sends them.
//!
//! # Routing
//! One loopback listener serves three prefixes:
//! - `/login`: the authority. `POST /login/{tenant}/oauth2/v2.0/token`,
//!   `POST /login/{tenant}/oauth2/v2.0/devicecode`,
//!   `GET /login/{tenant}/v2.0/.well-known/openid-configuration`.
//!   [`SimHandle::authority_host`] is `http://HOST:PORT/login`.
//! - `/graph`: Microsoft Graph, `/graph/v1.0/...` (and `/graph/beta/...`).
//!   [`SimHandle::graph_endpoint`] is `http://HOST:PORT/graph`.
//! - `/_sim`: the control API below.
//!
//! Anything else answers a Graph-style 404; an unknown Graph path answers
//! 400 `BadRequest` "Resource not found for the segment '...'".
//!
//! # Token endpoint
//! Grants: `client_credentials` (secret in the body, HTTP Basic, certificate
//! assertion, federated assertion), `refresh_token` (always rotates; the old
//! token stays valid unless `strict_rotation`), and device code polling. The
//! scope must be `<graph>/.default` where `<graph>` is this simulator's
//! `http://HOST:PORT/graph` or `https://graph.microsoft.com`. Errors carry the
//! AADSTS codes of protocol doc 1.9 in the 1.8 body shape, with the 1.1
//! headers. Minted access tokens are **RS256** JWTs signed with an RSA-2048
//! key that aws-lc-rs generates when the first simulator of the process
//! starts (`kid` `sim-key-1`; each instance adds its own `xms_sim_instance`
//! claim and accepts only its own tokens), with the claims of doc 1.7 (`roles` for app tokens, only when roles were consented;
//! `scp` for delegated tokens).
//!
//! Simulator simplifications (documented choices where the doc is unconfirmed):
//! - Federated assertions are matched on `iss`/`sub` against the app's
//!   federated credentials, `aud` must be `api://AzureADTokenExchange` and
//!   `exp` in the future; their **signature is not checked**.
//! - A certificate assertion is one whose `iss` is not a federated issuer of
//!   the app; its `x5t#S256` (else `x5t`) picks the certificate and its
//!   RS256/PS256 signature is verified. Wrong `aud`, a missing `jti` or `exp`:
//!   AADSTS50027 (401); `iss`/`sub` not the client ID: AADSTS50048 (401).
//! - Device flow: unknown `device_code` is `bad_verification_code` AADSTS70000,
//!   a declined one `authorization_declined` AADSTS70000, `slow_down` has no
//!   AADSTS code. `common`/`organizations` bind a device code to the first
//!   tenant that consented the app.
//! - Delegated scopes default to the consented app roles' names.
//! - Token-endpoint faults: `down`/`unavailable` are 503
//!   `temporarily_unavailable` AADSTS90033, `throttled` 429 AADSTS90055,
//!   `server_error` 500 AADSTS50000, `forbidden` 400 AADSTS53003.
//!
//! # Graph
//! Bearer tokens must be signed by this simulator and unexpired (else 401
//! `InvalidAuthenticationToken` with `WWW-Authenticate`); the tenant is the
//! token's `tid`; `roles` (or `scp`) must hold one of the permissions of doc
//! section 5, else 403 with the workload's code (`Authorization_RequestDenied`,
//! `ErrorAccessDenied`, `accessDenied`, `Forbidden`). Every answer carries the
//! doc 3.2 headers (`request-id`, `client-request-id` echoed, ...).
//! Collections support `$filter` (`eq ne gt ge lt le and or not`), `$orderby`,
//! `$top`, `$skip`, `$select`, `Prefer: odata.maxpagesize` and absolute
//! `@odata.nextLink`s.
//!
//! Mail (doc 5.5-5.8): `sendMail` (JSON or base64 MIME) and draft + `send`
//! answer 202 and deliver to recipients that are mailbox users of any tenant
//! after the recipient tenant's `mail.delivery_delay_seconds` (on
//! `tokio::time`), unless `mail.drop`; messages get an `internetMessageId`
//! like `<SIM...@SIMPR01MB0001.eurprd01.prod.outlook.com>`; lists enforce
//! Outlook's `InefficientFilter` rule; more than 4 concurrent requests per
//! (app, mailbox) answer 429 `ApplicationThrottled`.
//!
//! # Faults
//! Per (tenant, [`Target`]): see [`Fault`]. Graph targets match their paths;
//! [`Target::Token`] matches the token and devicecode endpoints.
//! `slow` sleeps with `tokio::time`, so paused-time tests work.
//!
//! # Control API
//! JSON in and out; bad input answers 400 `{"error": "..."}`. Control
//! requests are not recorded in the request log.
//!
//! | Request | Body / query | Effect |
//! |---|---|---|
//! | `GET /_sim` | | tenants, targets, fault names, endpoints |
//! | `GET /_sim/faults` | | `{"faults":[{"tenant","target","fault","retry_after_seconds"?,"delay_ms"?}]}` |
//! | `POST /_sim/faults` | `{"tenant","target","fault","retry_after_seconds"?,"delay_ms"?}` | sets a fault |
//! | `DELETE /_sim/faults` | `?tenant=&target=` (both optional) | clears matching faults, `{"cleared":n}` |
//! | `POST /_sim/service-health` | `{"tenant","service","status"}` | sets a service status (unknown services are added) |
//! | `POST /_sim/issues` | `{"tenant","id","service","title"?,"classification"?,"status"?,"feature"?,"feature_group"?,"impact_description"?}` | opens (or reopens) an issue, 201 |
//! | `POST /_sim/issues/{id}/resolve` | `{"tenant"}` or `?tenant=` | resolves it (404 if unknown) |
//! | `GET /_sim/requests` | | `{"requests":[{"method","path","query","tenant","client_request_id","status"}]}` |
//! | `POST /_sim/device/approve`, `/_sim/device/decline` | `{"user_code"}` | settles a pending device code |
//! | `POST /_sim/mail` | `{"tenant","delivery_delay_seconds"?,"drop"?}` | changes mail delivery to that tenant's mailboxes |
//! | `POST /_sim/clock/advance` | `{"seconds"}` | moves the simulator's wall clock forward |
//! | `POST /_sim/customers` | `{"partner","tenant_id","display_name","relationship_status"?,"relationship_end"?}` | adds (or replaces) a GDAP customer of the partner tenant |
//! | `DELETE /_sim/customers` | `?partner=&tenant_id=` | removes it (404 if not listed) |
//!
//! Tenants are given as GUID or any verified domain.
//!
//! # World file (`--tenants`)
//! Loaded by [`World::from_yaml_file`]; unknown keys and bad values are
//! errors naming `file:line:column`. Only `tenants[].id` and `domains`, and
//! `apps[].client_id`, are required.
//!
//! ```yaml
//! token_lifetime_seconds: 3599          # optional
//! strict_rotation: false               # optional; a used refresh token stops working
//! device_verification_uri: https://microsoft.com/devicelogin   # optional
//! apps:
//!   - client_id: 0e5b0a52-8f1a-4d5e-9d3c-6b7f3c2a9e01
//!     display_name: m365mon demo
//!     public_client: false             # "allow public client flows" (device code)
//!     secrets:
//!       - value: s3cr3t
//!         expired: false
//!     certificates:                    # each: file (relative to this file) or inline pem
//!       - file: ../certs/app.crt.pem
//!     federated_credentials:
//!       - issuer: https://token.actions.githubusercontent.com
//!         subject: repo:example/repo:ref:refs/heads/main
//! tenants:
//!   - id: 11111111-1111-4111-8111-111111111111
//!     display_name: Contoso
//!     domains: [contoso.onmicrosoft.com, contoso.com]   # first = default domain
//!     country: US
//!     strict_rotation: true            # optional override
//!     consents:                        # apps with a service principal here
//!       - client_id: 0e5b0a52-8f1a-4d5e-9d3c-6b7f3c2a9e01
//!         roles: [Organization.Read.All]   # empty: token without roles -> Graph 403
//!         scopes: [Organization.Read.All]  # delegated (scp); default = roles
//!     users:
//!       - upn: monitor@contoso.com
//!         id: GUID                     # optional; derived from the UPN
//!         display_name: Monitor        # optional
//!         mailbox: true                # optional, default true
//!         drive: true                  # optional, default true
//!     sites:
//!       - url: https://contoso.sharepoint.com/sites/monitoring
//!         display_name: Monitoring     # optional
//!     teams:
//!       - id: GUID
//!         display_name: Ops            # optional
//!         description: ...             # optional
//!         archived: false              # optional
//!     services:                        # optional; default: the main M365 services, operational
//!       - {id: Exchange, name: Exchange Online, status: serviceOperational}
//!     issues:                          # start is required; the rest optional
//!       - {id: EX000001, service: Exchange Online, title: ..., classification: incident,
//!          status: serviceDegradation, feature: ..., feature_group: ..., impact_description: ...,
//!          origin: microsoft, start: 2025-01-10T08:00:00Z, end: ..., last_modified: ..., resolved: false}
//!     messages:                        # message center; start is required
//!       - {id: MC000001, title: ..., category: planForChange, severity: normal, tags: [...],
//!          major_change: false, services: [SharePoint Online], start: 2025-01-01T00:00:00Z,
//!          end: ..., last_modified: ..., action_required_by: ..., body: "<p>html</p>"}
//!     device_flow:                     # polls answer authorization_pending after_polls times
//!       outcome: approve               # (alias approve_after_polls), then: approve | decline | pending
//!       after_polls: 1
//!       interval_seconds: 5
//!       expires_in_seconds: 900
//!       enforce_interval: false        # true: polls sooner than the interval get slow_down
//!       user: monitor@contoso.com      # who signs in; default the first user
//!     mail: {delivery_delay_seconds: 2, drop: false}
//!     customers:                       # delegatedAdminCustomers of a partner tenant
//!       - tenant_id: GUID
//!         display_name: Fabrikam
//!         relationships:               # optional; default one active, ending in two years
//!           - {status: active, end: 2026-06-30T00:00:00Z, display_name: ..., auto_extend: PT0S}
//! ```
//!
//! # Scenario file (`--scenario`)
//! See [`Scenario`].

mod actions;
mod assertion;
mod clock;
mod collection;
mod control;
mod delegated;
mod duration;
mod error;
mod ests;
mod fault;
mod gdap;
mod graph;
mod health;
mod http;
mod ids;
mod jwt;
mod mail;
mod odata;
mod router;
mod scenario;
mod server;
mod state;
mod world;
mod world_yaml;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use assertion::FEDERATED_AUDIENCE;
pub use duration::{format_duration, parse_duration};
pub use error::{Located, SimError};
pub use fault::{DEFAULT_RETRY_AFTER, DEFAULT_SLOW_DELAY, Fault, Target};
pub use scenario::{Action, Scenario, Step};
pub use state::{MAX_RECORDED_REQUESTS, RecordedRequest};
pub use world::{
    App, AppCertificate, AppSecret, Consent, Customer, DEFAULT_TOKEN_LIFETIME_SECONDS, DEFAULT_VERIFICATION_URI,
    DeviceFlow, DeviceOutcome, FederatedCredential, Issue, IssueSpec, MailSettings, Message, PROBE_ROLES,
    RELATIONSHIP_STATUSES, Relationship, SERVICE_HEALTH_STATUSES, Service, Site, Team, Tenant, User, World,
    default_services,
};

use state::Shared;

/// A running simulator. Clones share it; it stops on [`SimHandle::shutdown`]
/// or when the last clone is dropped.
#[derive(Clone)]
pub struct SimHandle {
    inner: Arc<Inner>,
}

struct Inner {
    shared: Arc<Shared>,
    shutdown: watch::Sender<bool>,
    server: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The server and scenario tasks watch this channel and end.
        let _ = self.shutdown.send(true);
    }
}

/// Starts the simulator on `listener` and returns at once (the server runs
/// in a spawned task).
///
/// # Panics
/// Only if the crypto library cannot generate an RSA key, which means the
/// process cannot do TLS either.
pub async fn start(listener: TcpListener, world: World) -> SimHandle {
    // The first start generates an RSA key (a few hundred ms of CPU): keep it off the async workers.
    let keys = match tokio::task::spawn_blocking(jwt::SigningKeys::generate).await {
        Ok(Ok(k)) => k,
        Ok(Err(e)) => panic!("simulator cannot create its signing key: {e}"),
        Err(e) => panic!("simulator key generation task failed: {e}"),
    };
    let addr =
        listener.local_addr().map(loopback_for_unspecified).unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
    let shared = Arc::new(Shared::new(world, keys, addr));
    let (tx, rx) = watch::channel(false);
    let server = tokio::spawn(server::serve(listener, shared.clone(), rx));
    SimHandle { inner: Arc::new(Inner { shared, shutdown: tx, server: Mutex::new(Some(server)) }) }
}

fn loopback_for_unspecified(a: SocketAddr) -> SocketAddr {
    match a.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), a.port()),
        IpAddr::V6(ip) if ip.is_unspecified() => SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), a.port()),
        _ => a,
    }
}

impl SimHandle {
    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The listening address (an unspecified bind address is reported as loopback).
    pub fn addr(&self) -> SocketAddr {
        self.shared().addr
    }

    /// `http://ADDR/login`, the authority base (no trailing slash).
    pub fn authority_host(&self) -> String {
        format!("http://{}/login", self.addr())
    }

    /// `http://ADDR/graph`, the Graph root (no trailing slash).
    pub fn graph_endpoint(&self) -> String {
        format!("http://{}/graph", self.addr())
    }

    /// Injects `fault` for (tenant, target); `tenant` is a GUID or any of its domains.
    pub fn set_fault(&self, tenant: &str, target: Target, fault: Fault) {
        self.shared().rt().set_fault(tenant, target, fault);
    }

    /// Removes the fault for (tenant, target).
    pub fn clear_fault(&self, tenant: &str, target: Target) {
        self.shared().rt().clear_faults(Some(tenant), Some(target));
    }

    /// Sets the message of the `server_error` fault's Graph error body
    /// (`None`: the usual "General exception while processing.").
    pub fn set_server_error_message(&self, message: Option<&str>) {
        self.shared().rt().server_error_message = message.map(str::to_string);
    }

    /// Removes every fault.
    pub fn clear_all_faults(&self) {
        self.shared().rt().clear_faults(None, None);
    }

    /// The faults in force: (tenant GUID, target, fault), sorted.
    pub fn faults(&self) -> Vec<(String, Target, Fault)> {
        self.shared().rt().faults.iter().map(|((t, g), f)| (t.clone(), *g, *f)).collect()
    }

    /// Sets a service's health status (by display name or ID, e.g.
    /// `("Exchange Online", "serviceDegradation")`); an unknown service is
    /// added, any status string is accepted (to test unknown values).
    pub fn set_service_status(&self, tenant: &str, service_name: &str, status: &str) {
        if let Err(e) = self.shared().rt().set_service_status(tenant, service_name, status) {
            tracing::warn!(error = %e, "set_service_status ignored");
        }
    }

    /// Opens (or reopens) a service health issue, started now.
    pub fn open_issue(&self, tenant: &str, issue: IssueSpec) {
        if let Err(e) = self.shared().rt().open_issue(tenant, &issue) {
            tracing::warn!(error = %e, "open_issue ignored");
        }
    }

    /// Resolves an issue now.
    pub fn resolve_issue(&self, tenant: &str, id: &str) {
        if let Err(e) = self.shared().rt().resolve_issue(tenant, id) {
            tracing::warn!(error = %e, "resolve_issue ignored");
        }
    }

    /// Sets how mail sent to this tenant's mailboxes is delivered: after
    /// `delay` (whole seconds), or never when `drop`.
    pub fn set_mail_delivery(&self, tenant: &str, delay: Duration, drop: bool) {
        if let Err(e) = self.shared().rt().set_mail_delivery(tenant, Some(delay.as_secs()), Some(drop)) {
            tracing::warn!(error = %e, "set_mail_delivery ignored");
        }
    }

    /// Adds a GDAP customer to the partner tenant (or replaces the one with
    /// the same tenant ID): `delegatedAdminCustomers` and
    /// `delegatedAdminRelationships` list it from now on.
    pub fn upsert_customer(&self, partner: &str, customer: Customer) {
        if let Err(e) = self.shared().rt().upsert_customer(partner, customer) {
            tracing::warn!(error = %e, "upsert_customer ignored");
        }
    }

    /// Removes a GDAP customer (by tenant ID) from the partner tenant; false if it was not listed.
    pub fn remove_customer(&self, partner: &str, tenant_id: &str) -> bool {
        self.shared().rt().remove_customer(partner, tenant_id).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "remove_customer ignored");
            false
        })
    }

    /// POSTs (and other requests) to the token endpoint for this tenant (GUID
    /// or domain; unknown tenants count under the name used).
    pub fn token_requests(&self, tenant: &str) -> u64 {
        let rt = self.shared().rt();
        let key = rt.tenant_key(tenant);
        rt.token_requests.get(&key).copied().unwrap_or(0)
    }

    /// The request log, oldest first (at most [`MAX_RECORDED_REQUESTS`]).
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared().rt().requests.iter().cloned().collect()
    }

    /// Empties the request log and the token request counters.
    pub fn clear_requests(&self) {
        let mut rt = self.shared().rt();
        rt.requests.clear();
        rt.token_requests.clear();
    }

    /// Runs a scenario in a task (its timers are `tokio::time`, so paused
    /// time works). It ends with the scenario, on shutdown, or when aborted.
    pub fn run_scenario(&self, scenario: Scenario) -> JoinHandle<()> {
        tokio::spawn(scenario::run(self.inner.shared.clone(), scenario, self.inner.shutdown.subscribe()))
    }

    /// Approves a pending device code by its user code; false if none matches.
    pub fn approve_device_code(&self, user_code: &str) -> bool {
        delegated::settle_device_code(&mut self.shared().rt(), user_code, true)
    }

    /// Declines a pending device code by its user code; false if none matches.
    pub fn decline_device_code(&self, user_code: &str) -> bool {
        delegated::settle_device_code(&mut self.shared().rt(), user_code, false)
    }

    /// Moves the simulator's wall clock forward (token expiry, assertion
    /// time windows, refresh-token inactivity, device code expiry).
    pub fn advance_clock(&self, by: Duration) {
        self.shared().rt().clock_offset += by;
    }

    /// A copy of the current world (with service statuses and issues as changed so far).
    pub fn world(&self) -> World {
        self.shared().rt().world.clone()
    }

    /// Stops accepting connections, gives open ones a second to finish, and
    /// waits for the server task.
    pub async fn shutdown(self) {
        let _ = self.inner.shutdown.send(true);
        let task = self.inner.server.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

impl std::fmt::Debug for SimHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimHandle").field("addr", &self.addr()).finish_non_exhaustive()
    }
}
