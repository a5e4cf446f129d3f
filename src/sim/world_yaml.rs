//! Loading a [`World`] from YAML.
//!
//! The format is documented in the `sim` module docs ("World file").

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use crate::config::Secret;

use super::error::SimError;
use super::ids;
use super::world::*;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWorld {
    #[serde(default)]
    token_lifetime_seconds: Option<Spanned<u64>>,
    #[serde(default)]
    strict_rotation: bool,
    #[serde(default)]
    device_verification_uri: Option<String>,
    #[serde(default)]
    apps: Vec<Spanned<RawApp>>,
    #[serde(default)]
    tenants: Vec<Spanned<RawTenant>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    client_id: Spanned<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    public_client: bool,
    #[serde(default)]
    secrets: Vec<RawSecret>,
    #[serde(default)]
    certificates: Vec<Spanned<RawCert>>,
    #[serde(default)]
    federated_credentials: Vec<FedRaw>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSecret {
    value: String,
    #[serde(default)]
    expired: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCert {
    #[serde(default)]
    file: Option<String>,
    #[serde(default)]
    pem: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FedRaw {
    issuer: String,
    subject: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    id: Spanned<String>,
    #[serde(default)]
    display_name: Option<String>,
    domains: Vec<Spanned<String>>,
    #[serde(default)]
    country: Option<String>,
    #[serde(default)]
    strict_rotation: Option<bool>,
    #[serde(default)]
    consents: Vec<Spanned<RawConsent>>,
    #[serde(default)]
    users: Vec<Spanned<RawUser>>,
    #[serde(default)]
    sites: Vec<Spanned<RawSite>>,
    #[serde(default)]
    teams: Vec<Spanned<RawTeam>>,
    #[serde(default)]
    services: Option<Vec<Spanned<RawService>>>,
    #[serde(default)]
    issues: Vec<Spanned<RawIssue>>,
    #[serde(default)]
    messages: Vec<Spanned<RawMessage>>,
    #[serde(default)]
    device_flow: Option<Spanned<RawDeviceFlow>>,
    #[serde(default)]
    mail: Option<RawMail>,
    #[serde(default)]
    customers: Vec<Spanned<RawCustomer>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConsent {
    client_id: String,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scopes: Option<Vec<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUser {
    upn: String,
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default = "yes")]
    mailbox: bool,
    #[serde(default = "yes")]
    drive: bool,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSite {
    url: String,
    #[serde(default)]
    display_name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTeam {
    id: String,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    archived: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawService {
    id: String,
    name: String,
    #[serde(default)]
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawIssue {
    id: String,
    service: String,
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    classification: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    feature: Option<String>,
    #[serde(default)]
    feature_group: Option<String>,
    #[serde(default)]
    impact_description: Option<String>,
    #[serde(default)]
    origin: Option<String>,
    start: String,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    last_modified: Option<String>,
    #[serde(default)]
    resolved: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMessage {
    id: String,
    title: String,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    severity: Option<String>,
    #[serde(default)]
    services: Vec<String>,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default)]
    major_change: bool,
    start: String,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    last_modified: Option<String>,
    #[serde(default)]
    action_required_by: Option<String>,
    #[serde(default)]
    body: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDeviceFlow {
    #[serde(default)]
    outcome: Option<String>,
    #[serde(default, alias = "approve_after_polls")]
    after_polls: Option<u32>,
    #[serde(default)]
    interval_seconds: Option<u64>,
    #[serde(default)]
    expires_in_seconds: Option<u64>,
    #[serde(default)]
    enforce_interval: bool,
    #[serde(default)]
    user: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMail {
    #[serde(default)]
    delivery_delay_seconds: Option<u64>,
    #[serde(default)]
    drop: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCustomer {
    tenant_id: String,
    display_name: String,
    #[serde(default)]
    relationships: Option<Vec<RawRelationship>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRelationship {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    end: Option<String>,
    #[serde(default)]
    auto_extend: Option<String>,
}

impl World {
    /// Reads a world file (the `--tenants` file). Certificate `file:` paths are
    /// relative to the file's directory. Errors name the file, line and column.
    pub fn from_yaml_file(path: &Path) -> Result<World, SimError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SimError::Read { path: path.display().to_string(), source })?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        parse(&text, &path.display().to_string(), &base)
    }

    /// Parses world YAML. `origin` names the text in errors; certificate
    /// `file:` paths are relative to the current directory.
    pub fn from_yaml_str(text: &str, origin: &str) -> Result<World, SimError> {
        parse(text, origin, Path::new("."))
    }
}

struct Ctx<'a> {
    origin: &'a str,
    base: &'a Path,
}

impl Ctx<'_> {
    fn err(&self, loc: Location, msg: impl Into<String>) -> SimError {
        SimError::at(self.origin, Some(loc), msg)
    }
}

fn parse(text: &str, origin: &str, base: &Path) -> Result<World, SimError> {
    let raw: RawWorld = serde_saphyr::from_str(text).map_err(|e| SimError::from_yaml(origin, &e))?;
    let cx = Ctx { origin, base };
    let token_lifetime_seconds = match raw.token_lifetime_seconds {
        Some(s) if s.value == 0 => {
            return Err(cx.err(s.referenced, "token_lifetime_seconds must be at least 1"));
        }
        Some(s) => s.value,
        None => DEFAULT_TOKEN_LIFETIME_SECONDS,
    };
    let mut apps: Vec<App> = Vec::new();
    for (i, a) in raw.apps.into_iter().enumerate() {
        let app = convert_app(&cx, i, a)?;
        apps.push(app);
    }
    let mut tenants: Vec<Tenant> = Vec::new();
    let mut seen_keys: HashSet<String> = HashSet::new();
    for (i, t) in raw.tenants.into_iter().enumerate() {
        let tenant = convert_tenant(&cx, i, t, &apps, &mut seen_keys)?;
        tenants.push(tenant);
    }
    Ok(World {
        token_lifetime_seconds,
        strict_rotation: raw.strict_rotation,
        device_verification_uri: raw.device_verification_uri.unwrap_or_else(|| DEFAULT_VERIFICATION_URI.into()),
        apps,
        tenants,
    })
}

fn guid(cx: &Ctx, loc: Location, path: &str, value: &str) -> Result<String, SimError> {
    if ids::is_guid(value) {
        Ok(value.to_ascii_lowercase())
    } else {
        Err(cx.err(loc, format!("{path}: {value:?} is not a GUID (8-4-4-4-12 hex digits)")))
    }
}

fn convert_app(cx: &Ctx, i: usize, a: Spanned<RawApp>) -> Result<App, SimError> {
    let loc = a.referenced;
    let a = a.value;
    let client_id = guid(cx, a.client_id.referenced, &format!("apps[{i}].client_id"), &a.client_id.value)?;
    let mut certificates = Vec::new();
    for (j, c) in a.certificates.into_iter().enumerate() {
        let path = format!("apps[{i}].certificates[{j}]");
        let pem: Vec<u8> = match (c.value.file, c.value.pem) {
            (Some(f), None) => {
                let full: PathBuf = cx.base.join(&f);
                std::fs::read(&full)
                    .map_err(|e| cx.err(c.referenced, format!("{path}.file: cannot read {}: {e}", full.display())))?
            }
            (None, Some(p)) => p.into_bytes(),
            _ => {
                return Err(cx.err(c.referenced, format!("{path}: set exactly one of file or pem")));
            }
        };
        let cert = parse_certificate(&pem).map_err(|e| cx.err(c.referenced, format!("{path}: {e}")))?;
        certificates.push(cert);
    }
    let _ = loc;
    Ok(App {
        display_name: a.display_name.unwrap_or_else(|| format!("app {client_id}")),
        client_id,
        secrets: a.secrets.into_iter().map(|s| AppSecret { value: Secret::new(s.value), expired: s.expired }).collect(),
        certificates,
        federated_credentials: a
            .federated_credentials
            .into_iter()
            .map(|f| FederatedCredential { issuer: f.issuer, subject: f.subject })
            .collect(),
        public_client: a.public_client,
    })
}

/// Parses the first certificate of a PEM file: thumbprints and RSA key.
pub(crate) fn parse_certificate(pem: &[u8]) -> Result<AppCertificate, String> {
    let (_, pem) = x509_parser::pem::parse_x509_pem(pem).map_err(|e| format!("not a PEM certificate: {e}"))?;
    if pem.label != "CERTIFICATE" {
        return Err(format!("expected a CERTIFICATE PEM block, found {:?}", pem.label));
    }
    let cert = pem.parse_x509().map_err(|e| format!("not a valid X.509 certificate: {e}"))?;
    let spki = cert.public_key();
    if spki.algorithm.algorithm != x509_parser::oid_registry::OID_PKCS1_RSAENCRYPTION {
        return Err("only RSA certificates are supported".into());
    }
    Ok(AppCertificate {
        x5t: ids::x5t(&pem.contents),
        x5t_s256: ids::x5t_s256(&pem.contents),
        public_key_der: spki.subject_public_key.data.to_vec(),
        not_after_unix: cert.validity().not_after.timestamp(),
    })
}

fn convert_tenant(
    cx: &Ctx,
    i: usize,
    t: Spanned<RawTenant>,
    apps: &[App],
    seen: &mut HashSet<String>,
) -> Result<Tenant, SimError> {
    let tloc = t.referenced;
    let t = t.value;
    let p = format!("tenants[{i}]");
    let id = guid(cx, t.id.referenced, &format!("{p}.id"), &t.id.value)?;
    if !seen.insert(id.clone()) {
        return Err(cx.err(t.id.referenced, format!("{p}.id: tenant {id} is defined twice")));
    }
    if t.domains.is_empty() {
        return Err(cx.err(tloc, format!("{p}.domains: list at least one domain, e.g. contoso.onmicrosoft.com")));
    }
    let mut domains = Vec::new();
    for (j, d) in t.domains.iter().enumerate() {
        let name = d.value.trim().to_ascii_lowercase();
        if name.is_empty() || !name.contains('.') || name.contains('/') || name.contains(' ') {
            return Err(cx.err(d.referenced, format!("{p}.domains[{j}]: {:?} is not a domain name", d.value)));
        }
        if !seen.insert(name.clone()) {
            return Err(cx.err(d.referenced, format!("{p}.domains[{j}]: domain {name} is used twice")));
        }
        domains.push(name);
    }
    let mut consents: Vec<Consent> = Vec::new();
    for (j, c) in t.consents.into_iter().enumerate() {
        let cid = c.value.client_id.to_ascii_lowercase();
        if !apps.iter().any(|a| a.client_id == cid) {
            return Err(cx.err(
                c.referenced,
                format!("{p}.consents[{j}].client_id: no app with client_id {:?} under apps", c.value.client_id),
            ));
        }
        if consents.iter().any(|x| x.client_id == cid) {
            return Err(cx.err(c.referenced, format!("{p}.consents[{j}]: app {cid} is consented twice")));
        }
        let scopes = c.value.scopes.unwrap_or_else(|| c.value.roles.clone());
        consents.push(Consent { client_id: cid, roles: c.value.roles, scopes });
    }
    let mut users: Vec<User> = Vec::new();
    for (j, u) in t.users.into_iter().enumerate() {
        let upn = u.value.upn.trim().to_ascii_lowercase();
        if !upn.contains('@') {
            return Err(
                cx.err(u.referenced, format!("{p}.users[{j}].upn: {:?} is not a user principal name", u.value.upn))
            );
        }
        if users.iter().any(|x| x.upn == upn) {
            return Err(cx.err(u.referenced, format!("{p}.users[{j}].upn: {upn} is listed twice")));
        }
        let uid = match u.value.id {
            Some(x) => guid(cx, u.referenced, &format!("{p}.users[{j}].id"), &x)?,
            None => ids::derived_guid(&format!("user:{id}:{upn}")),
        };
        users.push(User {
            id: uid,
            display_name: u.value.display_name.unwrap_or_else(|| upn.split('@').next().unwrap_or_default().to_string()),
            upn,
            mailbox: u.value.mailbox,
            drive: u.value.drive,
        });
    }
    let mut sites = Vec::new();
    for (j, s) in t.sites.into_iter().enumerate() {
        let url = s.value.url.trim_end_matches('/').to_string();
        let ok = url.strip_prefix("https://").is_some_and(|r| r.contains('/') && !r.starts_with('/'));
        if !ok {
            return Err(cx.err(
                s.referenced,
                format!(
                    "{p}.sites[{j}].url: {:?} is not a site URL like https://contoso.sharepoint.com/sites/ops",
                    s.value.url
                ),
            ));
        }
        let name = url.rsplit('/').next().unwrap_or_default().to_string();
        sites.push(Site { id: ids::site_id(&url), display_name: s.value.display_name.unwrap_or(name), url });
    }
    let mut teams: Vec<Team> = Vec::new();
    for (j, tm) in t.teams.into_iter().enumerate() {
        let tid = guid(cx, tm.referenced, &format!("{p}.teams[{j}].id"), &tm.value.id)?;
        if teams.iter().any(|x| x.id == tid) {
            return Err(cx.err(tm.referenced, format!("{p}.teams[{j}].id: team {tid} is listed twice")));
        }
        teams.push(Team {
            id: tid,
            display_name: tm.value.display_name.unwrap_or_else(|| "Team".into()),
            description: tm.value.description.unwrap_or_default(),
            archived: tm.value.archived,
        });
    }
    let services = match t.services {
        None => default_services(),
        Some(list) => {
            let mut out: Vec<Service> = Vec::new();
            for (j, s) in list.into_iter().enumerate() {
                let status = s.value.status.unwrap_or_else(|| "serviceOperational".into());
                check_status(&status).map_err(|e| cx.err(s.referenced, format!("{p}.services[{j}].status: {e}")))?;
                if out.iter().any(|x| x.name == s.value.name || x.id == s.value.id) {
                    return Err(
                        cx.err(s.referenced, format!("{p}.services[{j}]: service {:?} is listed twice", s.value.name))
                    );
                }
                out.push(Service { id: s.value.id, name: s.value.name, status });
            }
            out
        }
    };
    let mut issues: Vec<Issue> = Vec::new();
    for (j, is) in t.issues.into_iter().enumerate() {
        let ip = format!("{p}.issues[{j}]");
        let loc = is.referenced;
        let r = is.value;
        let spec = IssueSpec {
            id: r.id,
            service: r.service,
            title: r.title,
            classification: r.classification,
            status: r.status,
            feature: r.feature,
            feature_group: r.feature_group,
            impact_description: r.impact_description,
        };
        spec.validate().map_err(|e| cx.err(loc, format!("{ip}: {e}")))?;
        if issues.iter().any(|x| x.id == spec.id) {
            return Err(cx.err(loc, format!("{ip}.id: issue {} is listed twice", spec.id)));
        }
        for (key, v) in
            [("start", Some(&r.start)), ("end", r.end.as_ref()), ("last_modified", r.last_modified.as_ref())]
        {
            if let Some(v) = v
                && super::clock::parse_iso_millis(v).is_none()
            {
                return Err(
                    cx.err(loc, format!("{ip}.{key}: {v:?} is not an ISO-8601 UTC time like 2025-01-10T08:00:00Z"))
                );
            }
        }
        let mut issue = spec.to_issue(&r.start);
        if let Some(o) = r.origin {
            issue.origin = o;
        }
        issue.last_modified_date_time = r.last_modified.unwrap_or_else(|| r.end.clone().unwrap_or(r.start.clone()));
        issue.is_resolved = r.resolved;
        issue.end_date_time = r.end;
        issues.push(issue);
    }
    let mut messages = Vec::new();
    for (j, m) in t.messages.into_iter().enumerate() {
        let loc = m.referenced;
        let r = m.value;
        for v in [Some(&r.start), r.end.as_ref(), r.last_modified.as_ref(), r.action_required_by.as_ref()]
            .into_iter()
            .flatten()
        {
            if super::clock::parse_iso_millis(v).is_none() {
                return Err(cx.err(
                    loc,
                    format!("{p}.messages[{j}]: {v:?} is not an ISO-8601 UTC time like 2025-01-10T08:00:00Z"),
                ));
            }
        }
        messages.push(Message {
            id: r.id,
            title: r.title,
            category: r.category.unwrap_or_else(|| "stayInformed".into()),
            severity: r.severity.unwrap_or_else(|| "normal".into()),
            services: r.services,
            tags: r.tags,
            is_major_change: r.major_change,
            last_modified_date_time: r.last_modified.unwrap_or_else(|| r.start.clone()),
            start_date_time: r.start,
            end_date_time: r.end,
            action_required_by_date_time: r.action_required_by,
            body: r.body.unwrap_or_default(),
        });
    }
    let device_flow = match t.device_flow {
        None => DeviceFlow::default(),
        Some(d) => {
            let def = DeviceFlow::default();
            let outcome = match d.value.outcome.as_deref() {
                None | Some("approve") => DeviceOutcome::Approve,
                Some("decline") => DeviceOutcome::Decline,
                Some("pending") => DeviceOutcome::Pending,
                Some(o) => {
                    return Err(cx.err(
                        d.referenced,
                        format!("{p}.device_flow.outcome: unknown outcome {o:?}; expected approve, decline or pending"),
                    ));
                }
            };
            DeviceFlow {
                outcome,
                after_polls: d.value.after_polls.unwrap_or(def.after_polls),
                interval_seconds: d.value.interval_seconds.unwrap_or(def.interval_seconds),
                expires_in_seconds: d.value.expires_in_seconds.unwrap_or(def.expires_in_seconds),
                enforce_interval: d.value.enforce_interval,
                user: d.value.user.map(|u| u.to_ascii_lowercase()),
            }
        }
    };
    let mail = match t.mail {
        None => MailSettings::default(),
        Some(m) => MailSettings {
            delivery_delay_seconds: m.delivery_delay_seconds.unwrap_or(MailSettings::default().delivery_delay_seconds),
            drop: m.drop,
        },
    };
    let mut customers = Vec::new();
    for (j, c) in t.customers.into_iter().enumerate() {
        let cp = format!("{p}.customers[{j}]");
        let cid = guid(cx, c.referenced, &format!("{cp}.tenant_id"), &c.value.tenant_id)?;
        let mut customer = Customer::new(&cid, &c.value.display_name);
        if let Some(list) = c.value.relationships {
            customer.relationships = list
                .into_iter()
                .enumerate()
                .map(|(k, r)| relationship(cx, c.referenced, &format!("{cp}.relationships[{k}]"), r))
                .collect::<Result<_, _>>()?;
        }
        customers.push(customer);
    }
    let display_name = t.display_name.unwrap_or_else(|| {
        let d = &domains[0];
        d.split('.').next().unwrap_or(d).to_string()
    });
    Ok(Tenant {
        id,
        display_name,
        domains,
        country_letter_code: t.country.unwrap_or_else(|| "US".into()),
        strict_rotation: t.strict_rotation,
        consents,
        users,
        sites,
        teams,
        services,
        issues,
        messages,
        device_flow,
        mail,
        customers,
    })
}

fn relationship(cx: &Ctx, loc: Location, path: &str, r: RawRelationship) -> Result<Relationship, SimError> {
    let def = Relationship::default();
    let status = r.status.unwrap_or(def.status);
    if !RELATIONSHIP_STATUSES.contains(&status.as_str()) {
        return Err(cx.err(
            loc,
            format!("{path}.status: unknown status {status:?}; expected one of {}", RELATIONSHIP_STATUSES.join(", ")),
        ));
    }
    if let Some(e) = &r.end
        && super::clock::parse_iso_millis(e).is_none()
    {
        return Err(cx.err(loc, format!("{path}.end: {e:?} is not an ISO-8601 UTC time like 2026-06-30T00:00:00Z")));
    }
    Ok(Relationship {
        display_name: r.display_name.unwrap_or(def.display_name),
        status,
        end: r.end,
        auto_extend: r.auto_extend.unwrap_or(def.auto_extend),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "\
apps:
  - client_id: 0e5b0a52-8f1a-4d5e-9d3c-6b7f3c2a9e01
    secrets: [{value: s}]
tenants:
  - id: 11111111-1111-4111-8111-111111111111
    domains: [contoso.onmicrosoft.com]
    consents:
      - client_id: 0e5b0a52-8f1a-4d5e-9d3c-6b7f3c2a9e01
        roles: [Organization.Read.All]
    users: [{upn: Monitor@contoso.com}]
";

    fn err(text: &str) -> String {
        match World::from_yaml_str(text, "w.yml") {
            Ok(_) => panic!("expected an error"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn minimal_world_gets_defaults() {
        let w = World::from_yaml_str(MINIMAL, "w.yml").unwrap();
        assert_eq!(w.token_lifetime_seconds, 3599);
        let t = w.tenant("CONTOSO.onmicrosoft.com").unwrap();
        assert_eq!(t.display_name, "contoso");
        assert_eq!(t.users[0].upn, "monitor@contoso.com");
        assert!(t.users[0].mailbox && t.users[0].drive);
        assert_eq!(t.services.len(), default_services().len());
        assert_eq!(t.consents[0].scopes, vec!["Organization.Read.All".to_string()]);
        assert!(w.tenant("11111111-1111-4111-8111-111111111111").is_some());
    }

    #[test]
    fn unknown_key_is_reported_with_its_line() {
        let text = MINIMAL.replace("    users:", "    userz:");
        let e = err(&text);
        assert!(e.starts_with("w.yml:10:5: unknown field `userz`"), "{e}");
        assert!(e.contains("userz"), "{e}");
    }

    #[test]
    fn bad_guid_is_reported_with_its_line() {
        let text = MINIMAL.replace("  - id: 11111111-1111-4111-8111-111111111111", "  - id: contoso");
        let e = err(&text);
        assert_eq!(e, "w.yml:5:9: tenants[0].id: \"contoso\" is not a GUID (8-4-4-4-12 hex digits)");
    }

    #[test]
    fn consent_for_unknown_app_is_rejected() {
        let text = MINIMAL.replace(
            "      - client_id: 0e5b0a52-8f1a-4d5e-9d3c-6b7f3c2a9e01",
            "      - client_id: 9e5b0a52-8f1a-4d5e-9d3c-6b7f3c2a9e01",
        );
        let e = err(&text);
        assert!(e.starts_with("w.yml:8:"), "{e}");
        assert!(e.contains("no app with client_id"), "{e}");
    }

    #[test]
    fn bad_status_and_duplicate_domain_are_rejected() {
        let text = format!("{MINIMAL}    services: [{{id: Exchange, name: Exchange Online, status: ok}}]\n");
        assert!(err(&text).contains("unknown service health status \"ok\""));
        let text =
            format!("{MINIMAL}  - id: 22222222-2222-4222-8222-222222222222\n    domains: [Contoso.onmicrosoft.com]\n");
        assert!(err(&text).contains("domain contoso.onmicrosoft.com is used twice"));
    }

    #[test]
    fn syntax_error_has_a_location() {
        let e = err("apps: [\n");
        assert!(e.starts_with("w.yml:"), "{e}");
    }

    #[test]
    fn missing_certificate_file_is_reported() {
        let text = MINIMAL.replace("    secrets: [{value: s}]", "    certificates: [{file: /nonexistent/x.pem}]");
        let e = err(&text);
        assert!(e.contains("apps[0].certificates[0].file: cannot read /nonexistent/x.pem"), "{e}");
    }

    #[test]
    fn demo_world_has_the_documented_values() {
        let w = World::demo();
        assert_eq!(w.tenants.len(), 4);
        let f = w.tenant("fabrikam.onmicrosoft.com").unwrap();
        assert_eq!(f.id, "22222222-2222-4222-8222-222222222222");
        assert_eq!(f.users[0].upn, "monitor@fabrikam.com");
        assert_eq!(f.sites[0].url, "https://fabrikam.sharepoint.com/sites/monitoring");
        assert_eq!(f.teams[0].id, "aaaaaaaa-0000-4000-8000-000000000002");
        let tail = w.tenant("tailspin.onmicrosoft.com").unwrap();
        assert_eq!(tail.consents[0].client_id, "7d3c1f0e-2b4a-4c6d-8e9f-0a1b2c3d4e5f");
        assert!(w.app("7d3c1f0e-2b4a-4c6d-8e9f-0a1b2c3d4e5f").unwrap().secrets[0].expired);
    }
}
