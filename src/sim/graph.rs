//! Microsoft Graph (protocol doc sections 3-5): bearer-token checks, the
//! permission table, faults, and the probe endpoints.

use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::{Map, Value, json};

use super::collection::{self, CollectionSpec};
use super::fault::{Fault, Target, retry_after_secs};
use super::http::{
    GraphIds, Outcome, Reply, Req, Response, graph_error, graph_malformed, graph_ok, graph_throttled,
    graph_unauthorized, with_header, with_retry_after,
};
use super::jwt::{VerifyError, claim_str, claim_time};
use super::odata::percent_decode;
use super::state::Shared;
use super::world::{Tenant, User};
use super::{ests, gdap, health, ids, mail};

/// Which workload answers, for its error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Workload {
    Directory,
    Exchange,
    SharePoint,
    Teams,
    ServiceHealth,
}

/// A matched route.
pub(crate) struct Route {
    pub target: Option<Target>,
    pub perms: &'static [&'static str],
    pub workload: Workload,
    pub kind: Kind,
}

/// The endpoints, with their path parameters (decoded).
#[derive(Debug, Clone)]
pub(crate) enum Kind {
    Organization(Option<String>),
    MailFolder(String, String),
    FolderMessages(String, String),
    Messages(String),
    Message(String, String),
    CreateDraft(String),
    SendDraft(String, String),
    DeleteMessage(String, String),
    SendMail(String),
    Drive(String),
    JoinedTeams(String),
    SiteRoot,
    SiteByPath(String, String),
    SiteById(String),
    Team(String),
    HealthOverviews,
    HealthOverview(String),
    Issues,
    Issue(String),
    ServiceMessages,
    ServiceMessage(String),
    DelegatedAdminCustomers,
    DelegatedAdminRelationships,
}

impl Kind {
    /// The mailbox a request reads or writes, for Outlook's concurrency limit.
    fn mailbox_user(&self) -> Option<&str> {
        match self {
            Kind::MailFolder(u, _)
            | Kind::FolderMessages(u, _)
            | Kind::Messages(u)
            | Kind::Message(u, _)
            | Kind::CreateDraft(u)
            | Kind::SendDraft(u, _)
            | Kind::DeleteMessage(u, _)
            | Kind::SendMail(u) => Some(u),
            _ => None,
        }
    }
}

const ORG_PERMS: &[&str] =
    &["Organization.Read.All", "Directory.Read.All", "Organization.ReadWrite.All", "Directory.ReadWrite.All"];
const MAIL_READ_PERMS: &[&str] = &["Mail.ReadBasic.All", "Mail.ReadBasic", "Mail.Read", "Mail.ReadWrite"];
const MAIL_WRITE_PERMS: &[&str] = &["Mail.ReadWrite"];
const MAIL_SEND_PERMS: &[&str] = &["Mail.Send"];
const SITES_PERMS: &[&str] = &["Sites.Read.All", "Sites.ReadWrite.All", "Sites.Manage.All", "Sites.FullControl.All"];
const FILES_PERMS: &[&str] = &["Files.Read.All", "Files.ReadWrite.All", "Sites.Read.All", "Sites.ReadWrite.All"];
const TEAM_PERMS: &[&str] = &["Team.ReadBasic.All", "TeamSettings.Read.All", "TeamSettings.ReadWrite.All"];
const JOINED_TEAMS_PERMS: &[&str] =
    &["Team.ReadBasic.All", "TeamSettings.Read.All", "TeamSettings.ReadWrite.All", "User.Read.All"];
const HEALTH_PERMS: &[&str] = &["ServiceHealth.Read.All"];
const MESSAGE_PERMS: &[&str] = &["ServiceMessage.Read.All"];
const GDAP_PERMS: &[&str] = &["DelegatedAdminRelationship.Read.All", "DelegatedAdminRelationship.ReadWrite.All"];

/// Why no route matched.
enum NoRoute {
    /// 400 "Resource not found for the segment".
    Segment(String),
    /// 405.
    Method,
}

fn eq(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

fn route(method: &Method, segs: &[String]) -> Result<Route, NoRoute> {
    use Kind::*;
    use Workload as W;
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let get = |t, p, w, k| {
        if *method == Method::GET {
            Ok(Route { target: t, perms: p, workload: w, kind: k })
        } else {
            Err(NoRoute::Method)
        }
    };
    let m = |want: Method, t, p, w, k| {
        if *method == want { Ok(Route { target: t, perms: p, workload: w, kind: k }) } else { Err(NoRoute::Method) }
    };
    let org = Some(Target::Organization);
    match s.as_slice() {
        [o] if eq(o, "organization") => get(org, ORG_PERMS, W::Directory, Organization(None)),
        [o, id] if eq(o, "organization") => get(org, ORG_PERMS, W::Directory, Organization(Some(id.to_string()))),
        [u, user, rest @ ..] if eq(u, "users") => {
            let user = user.to_string();
            let ex = Some(Target::Exchange);
            let mail = Some(Target::Mail);
            match rest {
                [mf, f] if eq(mf, "mailFolders") => {
                    get(ex, MAIL_READ_PERMS, W::Exchange, MailFolder(user, f.to_string()))
                }
                [mf, f, ms] if eq(mf, "mailFolders") && eq(ms, "messages") => {
                    get(ex, MAIL_READ_PERMS, W::Exchange, FolderMessages(user, f.to_string()))
                }
                [ms] if eq(ms, "messages") => match *method {
                    Method::POST => m(Method::POST, mail, MAIL_WRITE_PERMS, W::Exchange, CreateDraft(user)),
                    _ => get(mail, MAIL_READ_PERMS, W::Exchange, Messages(user)),
                },
                [ms, id] if eq(ms, "messages") => match *method {
                    Method::DELETE => {
                        m(Method::DELETE, mail, MAIL_WRITE_PERMS, W::Exchange, DeleteMessage(user, id.to_string()))
                    }
                    _ => get(mail, MAIL_READ_PERMS, W::Exchange, Message(user, id.to_string())),
                },
                [ms, id, send] if eq(ms, "messages") && eq(send, "send") => {
                    m(Method::POST, mail, MAIL_SEND_PERMS, W::Exchange, SendDraft(user, id.to_string()))
                }
                [sm] if eq(sm, "sendMail") => m(Method::POST, mail, MAIL_SEND_PERMS, W::Exchange, SendMail(user)),
                [d] if eq(d, "drive") => get(Some(Target::Onedrive), FILES_PERMS, W::SharePoint, Drive(user)),
                [jt] if eq(jt, "joinedTeams") => {
                    get(Some(Target::Teams), JOINED_TEAMS_PERMS, W::Teams, JoinedTeams(user))
                }
                [] => Err(NoRoute::Segment("users".into())),
                [other, ..] => Err(NoRoute::Segment(other.to_string())),
            }
        }
        [st, rest @ ..] if eq(st, "sites") => {
            let sp = Some(Target::Sharepoint);
            match rest {
                [r] if eq(r, "root") => get(sp, SITES_PERMS, W::SharePoint, SiteRoot),
                [host, path @ ..] if host.ends_with(':') && !path.is_empty() => {
                    let host = host.trim_end_matches(':').to_string();
                    let path = format!("/{}", path.join("/")).trim_end_matches(':').to_string();
                    get(sp, SITES_PERMS, W::SharePoint, SiteByPath(host, path))
                }
                [id] => get(sp, SITES_PERMS, W::SharePoint, SiteById(id.to_string())),
                _ => Err(NoRoute::Segment("sites".into())),
            }
        }
        [t, id] if eq(t, "teams") => get(Some(Target::Teams), TEAM_PERMS, W::Teams, Team(id.to_string())),
        [a, sa, rest @ ..] if eq(a, "admin") && eq(sa, "serviceAnnouncement") => {
            let sh = Some(Target::ServiceHealth);
            match rest {
                [h] if eq(h, "healthOverviews") => get(sh, HEALTH_PERMS, W::ServiceHealth, HealthOverviews),
                [h, n] if eq(h, "healthOverviews") => {
                    get(sh, HEALTH_PERMS, W::ServiceHealth, HealthOverview(n.to_string()))
                }
                [i] if eq(i, "issues") => get(sh, HEALTH_PERMS, W::ServiceHealth, Issues),
                [i, id] if eq(i, "issues") => get(sh, HEALTH_PERMS, W::ServiceHealth, Issue(id.to_string())),
                [ms] if eq(ms, "messages") => get(sh, MESSAGE_PERMS, W::ServiceHealth, ServiceMessages),
                [ms, id] if eq(ms, "messages") => {
                    get(sh, MESSAGE_PERMS, W::ServiceHealth, ServiceMessage(id.to_string()))
                }
                [] => Err(NoRoute::Segment("serviceAnnouncement".into())),
                [other, ..] => Err(NoRoute::Segment(other.to_string())),
            }
        }
        [tr, d] if eq(tr, "tenantRelationships") && eq(d, "delegatedAdminCustomers") => {
            get(Some(Target::TenantRelationships), GDAP_PERMS, W::Directory, DelegatedAdminCustomers)
        }
        [tr, d] if eq(tr, "tenantRelationships") && eq(d, "delegatedAdminRelationships") => {
            get(Some(Target::TenantRelationships), GDAP_PERMS, W::Directory, DelegatedAdminRelationships)
        }
        [] => Err(NoRoute::Segment(String::new())),
        [first, ..] => Err(NoRoute::Segment(first.to_string())),
    }
}

/// The verified claims of a bearer token.
pub(crate) struct Caller {
    pub tenant: String,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub client_id: String,
}

fn authenticate(shared: &Shared, req: &Req, now: i64) -> Result<Caller, (&'static str, Option<String>)> {
    let token = match req.header("authorization") {
        Some(h) if h.get(..7).is_some_and(|p| p.eq_ignore_ascii_case("bearer ")) => {
            h.get(7..).unwrap_or_default().trim()
        }
        _ => return Err(("Access token is empty.", None)),
    };
    if token.is_empty() {
        return Err(("Access token is empty.", None));
    }
    let claims = match shared.keys.verify(token) {
        Ok(c) => c,
        Err(VerifyError::Malformed) => {
            return Err(("CompactToken parsing failed with error code: 80049217", None));
        }
        Err(VerifyError::BadSignature) => return Err(("Access token validation failure.", None)),
    };
    let tenant = claim_str(&claims, "tid").unwrap_or_default().to_string();
    let exp = claim_time(&claims, "exp").unwrap_or(0);
    let nbf = claim_time(&claims, "nbf").unwrap_or(0);
    if now >= exp || now < nbf {
        return Err(("Access token has expired or is not yet valid.", Some(tenant)));
    }
    let aud = claim_str(&claims, "aud").unwrap_or_default();
    let own = [format!("http://{}/graph", req.host), format!("http://{}/graph", shared.addr)];
    if !(aud == ests::PUBLIC_GRAPH || aud == "00000003-0000-0000-c000-000000000000" || own.iter().any(|o| o == aud)) {
        return Err(("Access token validation failure. Invalid audience.", Some(tenant)));
    }
    let roles = match claims.get("roles") {
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => vec![],
    };
    let scopes =
        claim_str(&claims, "scp").map(|s| s.split_whitespace().map(str::to_string).collect()).unwrap_or_default();
    Ok(Caller { tenant, roles, scopes, client_id: claim_str(&claims, "appid").unwrap_or_default().to_string() })
}

fn forbidden(w: Workload, perms: &[&str], ids: &GraphIds, now: i64) -> Response {
    let (code, msg) = match w {
        Workload::Directory => {
            ("Authorization_RequestDenied", "Insufficient privileges to complete the operation.".to_string())
        }
        Workload::Exchange => ("ErrorAccessDenied", "Access is denied. Check credentials and try again.".to_string()),
        Workload::SharePoint => ("accessDenied", "Access denied".to_string()),
        Workload::Teams | Workload::ServiceHealth => (
            "Forbidden",
            format!("Missing role permissions on the request. API requires one of '{}'.", perms.join(", ")),
        ),
    };
    graph_error(StatusCode::FORBIDDEN, ids, now, code, &msg)
}

fn not_found(w: Workload, ids: &GraphIds, now: i64) -> Response {
    let (code, msg) = match w {
        Workload::Directory => (
            "Request_ResourceNotFound",
            "Resource does not exist or one of its queried reference-property objects are not present.",
        ),
        Workload::Exchange => ("ErrorItemNotFound", "The specified object was not found in the store."),
        Workload::SharePoint => ("itemNotFound", "The resource could not be found."),
        Workload::Teams => ("NotFound", "No team found with the given Group Id."),
        Workload::ServiceHealth => ("NotFound", "The requested resource was not found."),
    };
    graph_error(StatusCode::NOT_FOUND, ids, now, code, msg)
}

/// The Graph answer to a request.
pub(crate) async fn handle(shared: &Arc<Shared>, req: &Req) -> Outcome {
    let ids = GraphIds::for_req(req);
    let now = shared.rt().now();
    let authority = format!("{}/login", req.origin());
    let rest = req.path.strip_prefix("/graph").unwrap_or_default();
    let (version, tail) = match rest.trim_start_matches('/').split_once('/') {
        Some((v, t)) => (v, t),
        None => (rest.trim_start_matches('/'), ""),
    };
    if version != "v1.0" && version != "beta" {
        let msg = format!("Invalid version: {version}");
        return Outcome::send(graph_error(StatusCode::BAD_REQUEST, &ids, now, "BadRequest", &msg), None);
    }
    let caller = match authenticate(shared, req, now) {
        Ok(c) => c,
        Err((msg, tenant)) => {
            return Outcome::send(graph_unauthorized(&ids, now, msg, &authority), tenant);
        }
    };
    let tenant = Some(caller.tenant.clone());
    let segs: Vec<String> = tail.split('/').filter(|s| !s.is_empty()).map(percent_decode).collect();
    let route = match route(&req.method, &segs) {
        Ok(r) => r,
        Err(NoRoute::Segment(s)) => {
            let msg = format!("Resource not found for the segment '{s}'.");
            return Outcome::send(graph_error(StatusCode::BAD_REQUEST, &ids, now, "BadRequest", &msg), tenant);
        }
        Err(NoRoute::Method) => {
            let msg = "Specified HTTP method is not allowed for the request target.";
            return Outcome::send(
                graph_error(StatusCode::METHOD_NOT_ALLOWED, &ids, now, "Request_BadRequest", msg),
                tenant,
            );
        }
    };
    // Outlook counts every request to a mailbox, including ones still waiting on a slow backend.
    let _slot = match route.kind.mailbox_user() {
        Some(user) => match mail::acquire_slot(shared, &caller.client_id, &caller.tenant, user) {
            Some(slot) => Some(slot),
            None => {
                let r = graph_error(
                    StatusCode::TOO_MANY_REQUESTS,
                    &ids,
                    now,
                    "ApplicationThrottled",
                    "Application is over its MailboxConcurrency limit.",
                );
                return Outcome::send(with_retry_after(r, 1), tenant);
            }
        },
        None => None,
    };
    let fault = route.target.and_then(|t| shared.rt().fault(&caller.tenant, t));
    if let Some(f) = fault {
        let r = match f {
            Fault::Slow { delay } => {
                tokio::time::sleep(delay).await;
                None
            }
            Fault::Down => Some(down(&ids, now)),
            Fault::Unavailable { retry_after } => {
                Some(with_retry_after(down(&ids, now), retry_after_secs(retry_after)))
            }
            Fault::Throttled { retry_after } => Some(graph_throttled(&ids, now, retry_after_secs(retry_after))),
            Fault::Forbidden | Fault::NotConsented => Some(forbidden(route.workload, route.perms, &ids, now)),
            Fault::NotFound => Some(not_found(route.workload, &ids, now)),
            Fault::Malformed => Some(graph_malformed(&ids)),
            Fault::ConnectionReset => {
                return Outcome { reply: Reply::Reset, tenant };
            }
            Fault::BadSecret | Fault::ExpiredSecret | Fault::UnknownTenant => {
                Some(graph_unauthorized(&ids, now, "Access token validation failure.", &authority))
            }
            Fault::ServerError => {
                let message = shared.rt().server_error_message.clone();
                Some(graph_error(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &ids,
                    now,
                    "generalException",
                    message.as_deref().unwrap_or("General exception while processing."),
                ))
            }
            Fault::RefreshExpired | Fault::RefreshRevoked | Fault::ConsentRevoked => None,
        };
        if let Some(r) = r {
            return Outcome::send(r, tenant);
        }
    }
    let allowed =
        route.perms.iter().any(|p| caller.roles.iter().chain(&caller.scopes).any(|r| r.eq_ignore_ascii_case(p)));
    if !allowed {
        return Outcome::send(forbidden(route.workload, route.perms, &ids, now), tenant);
    }
    let ctx = Ctx { shared, req, ids: &ids, now, caller: &caller, base: format!("{}/graph/{version}", req.origin()) };
    let resp = endpoint(&ctx, route).await;
    Outcome::send(resp, tenant)
}

fn down(ids: &GraphIds, now: i64) -> Response {
    graph_error(
        StatusCode::SERVICE_UNAVAILABLE,
        ids,
        now,
        "serviceNotAvailable",
        "The service is temporarily unavailable. Please retry later.",
    )
}

/// What an endpoint needs.
pub(crate) struct Ctx<'a> {
    pub shared: &'a Arc<Shared>,
    pub req: &'a Req,
    pub ids: &'a GraphIds,
    pub now: i64,
    pub caller: &'a Caller,
    /// `http://host/graph/v1.0`.
    pub base: String,
}

impl Ctx<'_> {
    /// A 200 with `$select` applied.
    pub fn ok_object(&self, obj: Map<String, Value>) -> Response {
        let select: Option<Vec<String>> =
            self.req.query_param("$select").map(|s| s.split(',').map(|x| x.trim().to_string()).collect());
        graph_ok(StatusCode::OK, self.ids, &Value::Object(collection::project(&obj, select.as_deref())))
    }

    pub fn error(&self, status: StatusCode, code: &str, msg: &str) -> Response {
        graph_error(status, self.ids, self.now, code, msg)
    }

    /// The caller's tenant (a copy; the lock is not held).
    pub fn tenant(&self) -> Option<Tenant> {
        self.shared.rt().world.tenant(&self.caller.tenant).cloned()
    }

    /// A collection answer.
    pub fn collection(&self, spec: &CollectionSpec, items: Vec<Map<String, Value>>) -> Response {
        match collection::serve(self.req, spec, items) {
            Ok((body, applied)) => {
                let r = graph_ok(StatusCode::OK, self.ids, &body);
                match applied {
                    Some(n) => with_header(r, "preference-applied", &format!("odata.maxpagesize={n}")),
                    None => r,
                }
            }
            Err((code, msg)) => self.error(StatusCode::BAD_REQUEST, code, &msg),
        }
    }
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Finds a user by UPN or object ID.
pub(crate) fn find_user<'a>(t: &'a Tenant, key: &str) -> Option<&'a User> {
    t.users.iter().find(|u| u.upn.eq_ignore_ascii_case(key) || u.id.eq_ignore_ascii_case(key))
}

async fn endpoint(cx: &Ctx<'_>, route: Route) -> Response {
    let Some(t) = cx.tenant() else {
        return cx.error(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            "Access token validation failure. Unknown tenant.",
        );
    };
    match route.kind {
        Kind::Organization(None) => {
            let spec = CollectionSpec {
                type_name: "organization",
                filterable: &["id", "displayName"],
                default_page: 100,
                max_page: 999,
                context: format!("{}/$metadata#organization", cx.base),
                self_url: format!("{}/organization", cx.base),
            };
            cx.collection(&spec, vec![organization(&t)])
        }
        Kind::Organization(Some(id)) => {
            if !id.eq_ignore_ascii_case(&t.id) {
                return not_found(Workload::Directory, cx.ids, cx.now);
            }
            let mut o = organization(&t);
            o.insert("@odata.context".into(), json!(format!("{}/$metadata#organization/$entity", cx.base)));
            cx.ok_object(o)
        }
        Kind::MailFolder(u, f) => mail::mail_folder(cx, &t, &u, &f),
        Kind::FolderMessages(u, f) => mail::folder_messages(cx, &t, &u, &f),
        Kind::Messages(u) => mail::list_messages(cx, &t, &u),
        Kind::Message(u, id) => mail::get_message(cx, &t, &u, &id),
        Kind::CreateDraft(u) => mail::create_draft(cx, &t, &u).await,
        Kind::SendDraft(u, id) => mail::send_draft(cx, &t, &u, &id).await,
        Kind::DeleteMessage(u, id) => mail::delete_message(cx, &t, &u, &id),
        Kind::SendMail(u) => mail::send_mail(cx, &t, &u).await,
        Kind::Drive(u) => drive(cx, &t, &u),
        Kind::JoinedTeams(u) => {
            if find_user(&t, &u).is_none() {
                return not_found(Workload::Directory, cx.ids, cx.now);
            }
            let value: Vec<Value> = t
                .teams
                .iter()
                .map(|tm| json!({"id": tm.id, "displayName": tm.display_name, "description": tm.description}))
                .collect();
            graph_ok(
                StatusCode::OK,
                cx.ids,
                &json!({"@odata.context": format!("{}/$metadata#teams", cx.base), "value": value}),
            )
        }
        Kind::SiteRoot => {
            let host = t
                .sites
                .first()
                .and_then(|s| s.url.strip_prefix("https://"))
                .and_then(|r| r.split('/').next())
                .map(str::to_string)
                .unwrap_or_else(|| format!("{}.sharepoint.com", tenant_prefix(&t)));
            cx.ok_object(site_json(
                cx,
                &format!("https://{host}"),
                &ids::site_id(&format!("https://{host}")),
                "Communication site",
            ))
        }
        Kind::SiteByPath(host, path) => {
            let want = format!("https://{}{}", host.to_ascii_lowercase(), path.to_ascii_lowercase());
            match t.sites.iter().find(|s| s.url.to_ascii_lowercase() == want) {
                Some(s) => cx.ok_object(site_json(cx, &s.url, &s.id, &s.display_name)),
                None => cx.error(StatusCode::NOT_FOUND, "itemNotFound", "Requested site could not be found"),
            }
        }
        Kind::SiteById(id) => match t.sites.iter().find(|s| s.id.eq_ignore_ascii_case(&id)) {
            Some(s) => cx.ok_object(site_json(cx, &s.url, &s.id, &s.display_name)),
            None => cx.error(StatusCode::NOT_FOUND, "itemNotFound", "Requested site could not be found"),
        },
        Kind::Team(id) => match t.teams.iter().find(|tm| tm.id.eq_ignore_ascii_case(&id)) {
            Some(tm) => cx.ok_object(team_json(cx, &t, tm)),
            None => cx.error(StatusCode::NOT_FOUND, "NotFound", &format!("No team found with Group Id {id}")),
        },
        Kind::HealthOverviews => health::overviews(cx, &t),
        Kind::HealthOverview(n) => health::overview(cx, &t, &n),
        Kind::Issues => health::issues(cx, &t),
        Kind::Issue(id) => health::issue(cx, &t, &id),
        Kind::ServiceMessages => health::messages(cx, &t),
        Kind::ServiceMessage(id) => health::message(cx, &t, &id),
        Kind::DelegatedAdminCustomers => gdap::customers(cx, &t),
        Kind::DelegatedAdminRelationships => gdap::relationships(cx, &t),
    }
}

/// The first label of the tenant's first domain (`contoso` for contoso.onmicrosoft.com).
fn tenant_prefix(t: &Tenant) -> &str {
    t.domains.first().and_then(|d| d.split('.').next()).unwrap_or("tenant")
}

fn organization(t: &Tenant) -> Map<String, Value> {
    let domains: Vec<Value> = t
        .domains
        .iter()
        .enumerate()
        .map(|(i, d)| {
            json!({
                "capabilities": "Email, OfficeCommunicationsOnline",
                "isDefault": i == 0,
                "isInitial": d.ends_with(".onmicrosoft.com") && t.domains.iter().position(|x| x.ends_with(".onmicrosoft.com")) == Some(i),
                "name": d,
                "type": "Managed",
            })
        })
        .collect();
    obj(json!({
        "id": t.id,
        "displayName": t.display_name,
        "tenantType": "AAD",
        "countryLetterCode": t.country_letter_code,
        "createdDateTime": "2020-01-01T00:00:00Z",
        "verifiedDomains": domains,
        "assignedPlans": [
            {"assignedDateTime": "2020-01-01T00:00:00Z", "capabilityStatus": "Enabled", "service": "exchange", "servicePlanId": "efb87545-963c-4e0d-99df-69c6916d9eb0"},
            {"assignedDateTime": "2020-01-01T00:00:00Z", "capabilityStatus": "Enabled", "service": "SharePoint", "servicePlanId": "5dbe027f-2339-4123-9542-606e4d348a72"},
            {"assignedDateTime": "2020-01-01T00:00:00Z", "capabilityStatus": "Enabled", "service": "TeamspaceAPI", "servicePlanId": "57ff2da0-773e-42df-b2af-ffb7a2317929"}
        ],
    }))
}

fn site_json(cx: &Ctx, url: &str, id: &str, name: &str) -> Map<String, Value> {
    let short = url.rsplit('/').next().unwrap_or_default();
    obj(json!({
        "@odata.context": format!("{}/$metadata#sites/$entity", cx.base),
        "id": id,
        "displayName": name,
        "name": short,
        "webUrl": url,
        "createdDateTime": "2017-05-09T20:56:00Z",
        "lastModifiedDateTime": "2017-05-09T20:56:01Z",
        "siteCollection": {"hostname": id.split(',').next().unwrap_or_default()},
    }))
}

fn team_json(cx: &Ctx, t: &Tenant, tm: &super::world::Team) -> Map<String, Value> {
    obj(json!({
        "@odata.context": format!("{}/$metadata#teams/$entity", cx.base),
        "id": tm.id,
        "createdDateTime": "2020-01-01T00:00:00Z",
        "displayName": tm.display_name,
        "description": tm.description,
        "internalId": format!("19:{}@thread.tacv2", tm.id.replace('-', "")),
        "classification": null,
        "specialization": "none",
        "visibility": "private",
        "webUrl": format!("https://teams.microsoft.com/l/team/19%3a{}%40thread.tacv2/conversations?groupId={}&tenantId={}", tm.id.replace('-', ""), tm.id, t.id),
        "isArchived": tm.archived,
        "isMembershipLimitedToOwners": false,
        "memberSettings": {"allowCreateUpdateChannels": true, "allowCreatePrivateChannels": true, "allowDeleteChannels": true, "allowAddRemoveApps": true, "allowCreateUpdateRemoveTabs": true, "allowCreateUpdateRemoveConnectors": true},
        "guestSettings": {"allowCreateUpdateChannels": false, "allowDeleteChannels": false},
        "messagingSettings": {"allowUserEditMessages": true, "allowUserDeleteMessages": true, "allowOwnerDeleteMessages": true, "allowTeamMentions": true, "allowChannelMentions": true},
        "funSettings": {"allowGiphy": true, "giphyContentRating": "moderate", "allowStickersAndMemes": true, "allowCustomMemes": true},
        "discoverySettings": {"showInTeamsSearchAndSuggestions": true},
        "summary": {"ownersCount": 1, "membersCount": t.users.len().max(1), "guestsCount": 0},
    }))
}

fn drive(cx: &Ctx, t: &Tenant, u: &str) -> Response {
    let Some(user) = find_user(t, u) else {
        return cx.error(StatusCode::NOT_FOUND, "itemNotFound", &format!("The user '{u}' was not found."));
    };
    if !user.drive {
        return cx.error(StatusCode::NOT_FOUND, "ResourceNotFound", "User's mysite not found.");
    }
    let host = format!("{}-my.sharepoint.com", tenant_prefix(t));
    let personal = user.upn.replace(['@', '.'], "_");
    let drive_id = format!("b!{}", ids::derived_guid(&format!("drive:{}", user.id)).replace('-', ""));
    cx.ok_object(obj(json!({
        "@odata.context": format!("{}/$metadata#drives/$entity", cx.base),
        "id": drive_id,
        "name": "OneDrive",
        "driveType": "business",
        "createdDateTime": "2020-01-01T00:00:00Z",
        "lastModifiedDateTime": "2020-01-02T00:00:00Z",
        "webUrl": format!("https://{host}/personal/{personal}/Documents"),
        "owner": {"user": {"id": user.id, "displayName": user.display_name, "email": user.upn}},
        "quota": {"deleted": 256_938, "remaining": 1_099_447_353_539_u64, "state": "normal", "total": 1_099_511_627_776_u64, "used": 64_017_299},
    })))
}
