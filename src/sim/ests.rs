//! The Entra ID v2.0 token service (protocol doc section 1): the token
//! endpoint's dispatch, client authentication (secret in the body, HTTP
//! Basic, certificate or federated assertion), `client_credentials`,
//! token-endpoint faults, AADSTS errors and OIDC discovery. Delegated grants
//! (device code, refresh token) are in `delegated`.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::fault::{Fault, Target, retry_after_secs};
use super::http::{EstsError, Outcome, Reply, Req, Response, ests_ok, ests_raw};
use super::ids;
use super::state::{Runtime, Shared};
use super::world::{App, Tenant};
use super::{assertion, delegated};

/// `client_assertion_type` for JWT assertions.
pub(crate) const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// `grant_type` of device code polling.
const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// The public Graph resource.
pub(crate) const PUBLIC_GRAPH: &str = "https://graph.microsoft.com";
/// Inactivity after which a refresh token stops working (AADSTS700082).
pub(super) const REFRESH_INACTIVITY_SECONDS: i64 = 90 * 24 * 3600;

/// Why a request stopped before success.
pub(crate) enum Fail {
    Ests(EstsError),
    Reset,
    Malformed,
}

impl From<EstsError> for Fail {
    fn from(e: EstsError) -> Self {
        Fail::Ests(e)
    }
}

pub(super) type Res<T> = Result<T, Fail>;

/// Which endpoint (and grant) a fault is being applied to.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Endpoint {
    ClientCredentials,
    Refresh,
    DevicePoll,
    DeviceAuthorization,
    Other,
}

pub(crate) async fn handle(shared: &Arc<Shared>, req: &Req) -> Outcome {
    let authority = format!("{}/login", req.origin());
    let rest = req.path.strip_prefix("/login/").unwrap_or_default();
    let segs: Vec<&str> = rest.split('/').collect();
    let mut tenant_guid: Option<String> = None;
    let result = match segs.as_slice() {
        [tenant, "oauth2", "v2.0", "token"] => token(shared, req, tenant, &mut tenant_guid).await,
        [tenant, "oauth2", "v2.0", "devicecode"] => delegated::devicecode(shared, req, tenant, &mut tenant_guid).await,
        [tenant, "v2.0", ".well-known", "openid-configuration"] => discovery(shared, req, tenant, &authority),
        _ => Err(Fail::Ests(EstsError::new(
            StatusCode::NOT_FOUND,
            "invalid_request",
            9_002_313,
            format!("Invalid request. The path '{}' is not an endpoint of this authority.", req.path),
        ))),
    };
    let now = shared.rt().now();
    let reply = match result {
        Ok(r) => Reply::Send(r),
        Err(Fail::Ests(e)) => Reply::Send(e.response(req, now, &authority)),
        Err(Fail::Reset) => Reply::Reset,
        Err(Fail::Malformed) => Reply::Send(ests_raw(StatusCode::OK, r#"{"token_type":"Bearer","expires_in":35"#)),
    };
    Outcome { reply, tenant: tenant_guid }
}

/// A tenant path segment, resolved.
pub(super) enum TenantRef {
    Known(String),
    Alias(&'static str),
    Unknown,
}

pub(super) fn resolve_tenant(rt: &Runtime, seg: &str) -> TenantRef {
    match seg.to_ascii_lowercase().as_str() {
        "common" => TenantRef::Alias("common"),
        "organizations" => TenantRef::Alias("organizations"),
        "consumers" => TenantRef::Alias("consumers"),
        _ => match rt.world.tenant(seg) {
            Some(t) => TenantRef::Known(t.id.clone()),
            None => TenantRef::Unknown,
        },
    }
}

pub(super) fn tenant_not_found(seg: &str) -> EstsError {
    EstsError::bad(
        "invalid_tenant",
        90_002,
        format!(
            "Tenant '{seg}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud. Check with your subscription administrator, this may happen if there are no active subscriptions for the tenant."
        ),
    )
}

pub(super) fn alias_not_supported(alias: &str) -> EstsError {
    EstsError::bad(
        "invalid_request",
        9_001_023,
        format!(
            "The grant type is not supported over the /{alias} or /consumers endpoints. Please use the /organizations or tenant-specific endpoint."
        ),
    )
}

pub(super) fn app_not_in_tenant(client_id: &str, tenant: &str) -> EstsError {
    EstsError::bad(
        "unauthorized_client",
        700_016,
        format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant."
        ),
    )
}

pub(super) fn bad_secret(client_id: &str) -> EstsError {
    EstsError::client(
        7_000_215,
        format!(
            "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '{client_id}'."
        ),
    )
}

pub(super) fn expired_secret(client_id: &str) -> EstsError {
    EstsError::client(
        7_000_222,
        format!(
            "The provided client secret keys for app '{client_id}' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds."
        ),
    )
}

pub(super) fn no_credential() -> EstsError {
    EstsError::client(
        7_000_218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
    )
}

pub(super) fn consent_required(app: &App) -> EstsError {
    EstsError::bad(
        "invalid_grant",
        65_001,
        format!(
            "The user or administrator has not consented to use the application with ID '{}' named '{}'. Send an interactive authorization request for this user and resource.",
            app.client_id, app.display_name
        ),
    )
    .with_suberror("consent_required")
}

/// Applies the tenant's token-endpoint fault, if any.
pub(super) async fn token_fault(
    shared: &Arc<Shared>,
    tenant: &str,
    seg: &str,
    client_id: &str,
    ep: Endpoint,
) -> Res<()> {
    let fault = shared.rt().fault(tenant, Target::Token);
    let Some(fault) = fault else { return Ok(()) };
    let transient =
        |status, code, text: &str| EstsError::new(status, "temporarily_unavailable", code, text.to_string());
    let err = match fault {
        Fault::Slow { delay } => {
            tokio::time::sleep(delay).await;
            return Ok(());
        }
        Fault::Down => {
            transient(StatusCode::SERVICE_UNAVAILABLE, 90_033, "A transient error has occurred. Please try again.")
        }
        Fault::Unavailable { retry_after } => {
            transient(StatusCode::SERVICE_UNAVAILABLE, 90_033, "A transient error has occurred. Please try again.")
                .with_retry_after(retry_after_secs(retry_after))
        }
        Fault::Throttled { retry_after } => transient(
            StatusCode::TOO_MANY_REQUESTS,
            90_055,
            "The request was throttled because of too many requests from this tenant. Please try again later.",
        )
        .with_retry_after(retry_after_secs(retry_after)),
        Fault::ServerError => EstsError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            50_000,
            "There was an error issuing a token or an issue with our sign-in service.",
        ),
        Fault::Forbidden => EstsError::bad(
            "invalid_grant",
            53_003,
            "Access has been blocked by Conditional Access policies. The access policy does not allow token issuance.",
        ),
        Fault::NotFound | Fault::UnknownTenant => tenant_not_found(seg),
        Fault::Malformed => return Err(Fail::Malformed),
        Fault::ConnectionReset => return Err(Fail::Reset),
        Fault::NotConsented => app_not_in_tenant(client_id, seg),
        Fault::BadSecret if ep != Endpoint::DeviceAuthorization => bad_secret(client_id),
        Fault::ExpiredSecret if ep != Endpoint::DeviceAuthorization => expired_secret(client_id),
        Fault::RefreshExpired if ep == Endpoint::Refresh => refresh_expired(shared.rt().now()),
        Fault::RefreshRevoked if ep == Endpoint::Refresh => refresh_revoked(),
        Fault::ConsentRevoked if ep == Endpoint::Refresh => {
            let app = shared.rt().world.app(client_id).cloned();
            match app {
                Some(app) => consent_required(&app),
                None => app_not_in_tenant(client_id, seg),
            }
        }
        _ => return Ok(()),
    };
    Err(err.into())
}

pub(super) fn refresh_expired(now: i64) -> EstsError {
    let issued = super::clock::fmt_iso(now - REFRESH_INACTIVITY_SECONDS - 3600);
    EstsError::bad(
        "invalid_grant",
        700_082,
        format!("The refresh token has expired due to inactivity. The token was issued on {issued} and was inactive for 90.00:00:00."),
    )
    .with_suberror("bad_token")
}

pub(super) fn refresh_revoked() -> EstsError {
    EstsError::bad(
        "invalid_grant",
        50_173,
        "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password.",
    )
}

pub(super) fn parse_form(body: &[u8]) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        out.entry(k.into_owned()).or_insert_with(|| v.into_owned());
    }
    out
}

/// How the client authenticated.
pub(super) enum Cred {
    None,
    Secret(String),
    Assertion { typ: String, assertion: String },
}

/// Finds client_id and the one credential (protocol doc 1.2).
pub(super) fn client_auth(req: &Req, form: &HashMap<String, String>) -> Res<(Option<String>, Cred)> {
    let malformed_basic = || {
        EstsError::bad(
            "invalid_request",
            9_002_313,
            "Invalid request. The Authorization header is not valid HTTP Basic.",
        )
    };
    let basic = match req.header("authorization") {
        Some(h) if h.get(..6).is_some_and(|p| p.eq_ignore_ascii_case("basic ")) => {
            let raw = STANDARD.decode(h.get(6..).unwrap_or_default().trim()).map_err(|_| malformed_basic())?;
            let text = String::from_utf8(raw).map_err(|_| malformed_basic())?;
            let (id, secret) = text.split_once(':').ok_or_else(malformed_basic)?;
            let dec = |s: &str| -> String {
                url::form_urlencoded::parse(format!("x={s}").as_bytes())
                    .next()
                    .map(|(_, v)| v.into_owned())
                    .unwrap_or_default()
            };
            Some((dec(id), dec(secret)))
        }
        _ => None,
    };
    let body_secret = form.get("client_secret").cloned();
    let assertion = form.get("client_assertion").cloned();
    let count = usize::from(basic.is_some()) + usize::from(body_secret.is_some()) + usize::from(assertion.is_some());
    if count > 1 {
        return Err(EstsError::bad(
            "invalid_request",
            9_002_313,
            "Invalid request. The request carries more than one client credential; send exactly one of client_secret, HTTP Basic or client_assertion.",
        )
        .into());
    }
    let mut client_id = form.get("client_id").cloned().filter(|s| !s.is_empty());
    let cred = if let Some((id, secret)) = basic {
        if let Some(body_id) = &client_id
            && !body_id.eq_ignore_ascii_case(&id)
        {
            return Err(EstsError::bad(
                "invalid_request",
                9_002_313,
                "Invalid request. The client_id in the body differs from the one in the Authorization header.",
            )
            .into());
        }
        client_id = Some(id);
        Cred::Secret(secret)
    } else if let Some(s) = body_secret {
        Cred::Secret(s)
    } else if let Some(a) = assertion {
        Cred::Assertion { typ: form.get("client_assertion_type").cloned().unwrap_or_default(), assertion: a }
    } else {
        Cred::None
    };
    Ok((client_id, cred))
}

/// Checks a credential against the app. `token_urls` are the URLs the
/// assertion's `aud` may name.
pub(super) fn verify_cred(app: &App, cred: &Cred, token_urls: &[String], now: i64) -> Res<()> {
    match cred {
        Cred::None => Err(no_credential().into()),
        Cred::Secret(s) => {
            let found = app.secrets.iter().find(|x| {
                aws_lc_rs::constant_time::verify_slices_are_equal(x.value.expose().as_bytes(), s.as_bytes()).is_ok()
            });
            match found {
                Some(x) if x.expired => Err(expired_secret(&app.client_id).into()),
                Some(_) => Ok(()),
                None => Err(bad_secret(&app.client_id).into()),
            }
        }
        Cred::Assertion { typ, assertion } => {
            if typ != JWT_BEARER {
                return Err(EstsError::bad(
                    "invalid_request",
                    9_002_313,
                    format!("Invalid request. client_assertion_type must be '{JWT_BEARER}'."),
                )
                .into());
            }
            assertion::verify(app, assertion, token_urls, now).map_err(Fail::Ests)
        }
    }
}

/// The Graph roots this simulator accepts in scopes: its own (by Host header
/// and by listener address) and the public one.
pub(super) fn graph_bases(shared: &Shared, req: &Req) -> Vec<String> {
    vec![format!("http://{}/graph", req.host), format!("http://{}/graph", shared.addr), PUBLIC_GRAPH.to_string()]
}

/// Splits `scope` into (resource base, permission) when it names a Graph root.
pub(super) fn graph_scope<'a>(scope: &'a str, bases: &[String]) -> Option<(String, &'a str)> {
    bases.iter().find_map(|b| {
        let n = b.len();
        let head = scope.get(..n)?;
        let rest = scope.get(n..)?;
        (head.eq_ignore_ascii_case(b) && rest.starts_with('/') && rest.len() > 1).then(|| (b.clone(), &rest[1..]))
    })
}

pub(super) fn invalid_scope(scope: &str) -> EstsError {
    EstsError::bad(
        "invalid_scope",
        70_011,
        format!(
            "The provided request must include a 'scope' input parameter. The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."
        ),
    )
}

/// The token URLs an assertion's `aud` may name.
pub(super) fn token_urls(shared: &Shared, req: &Req) -> Vec<String> {
    vec![format!("http://{}{}", req.host, req.path), format!("http://{}{}", shared.addr, req.path)]
}

async fn token(shared: &Arc<Shared>, req: &Req, seg: &str, tenant_out: &mut Option<String>) -> Res<Response> {
    let tref = {
        let mut rt = shared.rt();
        let tref = resolve_tenant(&rt, seg);
        let key = match &tref {
            TenantRef::Known(g) => g.clone(),
            _ => seg.to_ascii_lowercase(),
        };
        *rt.token_requests.entry(key).or_insert(0) += 1;
        tref
    };
    if let TenantRef::Known(g) = &tref {
        *tenant_out = Some(g.clone());
    }
    if req.method != Method::POST {
        return Err(EstsError::bad(
            "invalid_request",
            900_561,
            format!("The endpoint only accepts POST requests. Received a {} request.", req.method),
        )
        .into());
    }
    let form = parse_form(&req.body);
    let grant = form.get("grant_type").cloned().unwrap_or_default();
    let ep = match grant.as_str() {
        "client_credentials" => Endpoint::ClientCredentials,
        "refresh_token" => Endpoint::Refresh,
        DEVICE_CODE_GRANT | "device_code" => Endpoint::DevicePoll,
        _ => Endpoint::Other,
    };
    let client_id_hint = form.get("client_id").cloned().unwrap_or_default();
    let tenant = match tref {
        TenantRef::Unknown => return Err(tenant_not_found(seg).into()),
        TenantRef::Alias(a) if ep == Endpoint::ClientCredentials || a == "consumers" => {
            return Err(alias_not_supported(a).into());
        }
        TenantRef::Alias(_) => None,
        TenantRef::Known(g) => {
            token_fault(shared, &g, seg, &client_id_hint, ep).await?;
            Some(g)
        }
    };
    if grant.is_empty() {
        return Err(EstsError::missing("grant_type").into());
    }
    match ep {
        Endpoint::ClientCredentials => {
            client_credentials(shared, req, &form, tenant.as_deref().unwrap_or_default(), seg)
        }
        Endpoint::Refresh => delegated::refresh(shared, req, &form, tenant, seg, tenant_out).await,
        Endpoint::DevicePoll => delegated::device_poll(shared, req, &form, tenant, seg, tenant_out).await,
        _ => Err(EstsError::bad(
            "unsupported_grant_type",
            70_003,
            format!("The app requested an unsupported grant type '{grant}'."),
        )
        .into()),
    }
}

/// App, tenant and consent for a request, or the AADSTS error.
pub(super) fn lookup(rt: &Runtime, client_id: &str, tenant: &str, seg: &str) -> Result<(App, Tenant), EstsError> {
    let app = rt.world.app(client_id).cloned().ok_or_else(|| app_not_in_tenant(client_id, seg))?;
    let t = rt.world.tenant(tenant).cloned().ok_or_else(|| tenant_not_found(seg))?;
    if !t.consents.iter().any(|c| c.client_id == app.client_id) {
        return Err(app_not_in_tenant(client_id, seg));
    }
    Ok((app, t))
}

fn client_credentials(
    shared: &Arc<Shared>,
    req: &Req,
    form: &HashMap<String, String>,
    tenant: &str,
    seg: &str,
) -> Res<Response> {
    let (client_id, cred) = client_auth(req, form)?;
    let client_id = client_id.ok_or_else(|| EstsError::missing("client_id"))?;
    let (app, t, now, lifetime) = {
        let rt = shared.rt();
        let (app, t) = lookup(&rt, &client_id, tenant, seg)?;
        (app, t, rt.now(), rt.world.token_lifetime_seconds)
    };
    verify_cred(&app, &cred, &token_urls(shared, req), now)?;
    let scope = form.get("scope").map(|s| s.trim().to_string()).unwrap_or_default();
    if scope.is_empty() {
        return Err(EstsError::missing("scope").into());
    }
    let bases = graph_bases(shared, req);
    let parts: Vec<&str> = scope.split_whitespace().collect();
    let resource = match parts.as_slice() {
        [one] => match graph_scope(one, &bases) {
            Some((base, ".default")) => base,
            Some(_) => {
                return Err(EstsError::bad(
                    "invalid_scope",
                    1_002_012,
                    format!("The provided value for scope {one} is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI)."),
                )
                .into());
            }
            None => return Err(invalid_scope(one).into()),
        },
        _ => {
            let resources: Vec<Option<String>> = parts.iter().map(|p| graph_scope(p, &bases).map(|(b, _)| b)).collect();
            if resources.iter().all(Option::is_some) && resources.windows(2).any(|w| w[0] != w[1]) {
                return Err(EstsError::bad(
                    "invalid_scope",
                    700_022,
                    format!("The provided value for the input parameter scope is not valid because it contains more than one resource. Scope {scope} is not valid."),
                )
                .into());
            }
            return Err(invalid_scope(&scope).into());
        }
    };
    let roles = t.consents.iter().find(|c| c.client_id == app.client_id).map(|c| c.roles.clone()).unwrap_or_default();
    let mut claims = base_claims(&t, &app, &resource, now, lifetime);
    claims["idtyp"] = json!("app");
    let sp = ids::derived_guid(&format!("sp:{}:{}", t.id, app.client_id));
    claims["oid"] = json!(sp);
    claims["sub"] = json!(sp);
    if !roles.is_empty() {
        claims["roles"] = json!(roles);
    }
    let token = shared.keys.mint(&claims);
    Ok(ests_ok(&json!({
        "token_type": "Bearer",
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": token,
    })))
}

pub(super) fn base_claims(t: &Tenant, app: &App, resource: &str, now: i64, lifetime: u64) -> Value {
    json!({
        "aud": resource,
        "iss": format!("https://sts.windows.net/{}/", t.id),
        "iat": now,
        "nbf": now,
        "exp": now + i64::try_from(lifetime).unwrap_or(3599),
        "tid": t.id,
        "appid": app.client_id,
        "app_displayname": app.display_name,
        "uti": ids::random_token(16),
        "ver": "1.0",
    })
}

fn discovery(shared: &Arc<Shared>, req: &Req, seg: &str, authority: &str) -> Res<Response> {
    let rt = shared.rt();
    let tid = match resolve_tenant(&rt, seg) {
        TenantRef::Known(g) => g,
        TenantRef::Alias(_) => "{tenantid}".to_string(),
        TenantRef::Unknown => return Err(tenant_not_found(seg).into()),
    };
    let base = format!("{authority}/{seg}");
    Ok(ests_ok(&json!({
        "issuer": format!("{authority}/{tid}/v2.0"),
        "authorization_endpoint": format!("{base}/oauth2/v2.0/authorize"),
        "token_endpoint": format!("{base}/oauth2/v2.0/token"),
        "device_authorization_endpoint": format!("{base}/oauth2/v2.0/devicecode"),
        "jwks_uri": format!("{base}/discovery/v2.0/keys"),
        "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "client_secret_basic"],
        "response_types_supported": ["code", "id_token", "code id_token", "id_token token"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "tenant_region_scope": "EU",
        "cloud_instance_name": "microsoftonline.com",
        "cloud_graph_host_name": "graph.windows.net",
        "msgraph_host": req.host.clone() + "/graph",
    })))
}
