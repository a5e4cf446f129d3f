//! Delegated sign-in: the device authorization endpoint, device code
//! polling, refresh tokens (with rotation), and delegated token minting.

use std::collections::HashMap;
use std::sync::Arc;

use hyper::{Method, StatusCode};
use serde_json::{Value, json};

use super::ests::{
    Cred, Endpoint, PUBLIC_GRAPH, REFRESH_INACTIVITY_SECONDS, Res, TenantRef, alias_not_supported, app_not_in_tenant,
    base_claims, client_auth, consent_required, graph_bases, graph_scope, invalid_scope, lookup, parse_form,
    refresh_expired, resolve_tenant, tenant_not_found, token_fault, token_urls, verify_cred,
};
use super::http::{EstsError, Req, Response, ests_ok};
use super::ids;
use super::state::{DeviceCode, DeviceState, RefreshRecord, Runtime, Shared};
use super::world::{App, DeviceOutcome, Tenant, User};

/// OIDC scopes that may accompany a resource scope.
const OIDC_SCOPES: [&str; 4] = ["openid", "profile", "offline_access", "email"];

/// A parsed delegated scope request.
struct DelegatedScope {
    resource: String,
    perms: Vec<String>,
    oidc: Vec<String>,
}

fn parse_delegated_scope(scope: &str, bases: &[String]) -> Result<DelegatedScope, EstsError> {
    let mut resource: Option<String> = None;
    let mut perms = Vec::new();
    let mut oidc = Vec::new();
    for part in scope.split_whitespace() {
        if OIDC_SCOPES.iter().any(|o| o.eq_ignore_ascii_case(part)) {
            oidc.push(part.to_ascii_lowercase());
            continue;
        }
        let (base, perm) = match graph_scope(part, bases) {
            Some((b, p)) => (b, p.to_string()),
            None if !part.contains("://") && !part.contains('/') => (PUBLIC_GRAPH.to_string(), part.to_string()),
            None => return Err(invalid_scope(part)),
        };
        if let Some(r) = &resource
            && *r != base
        {
            return Err(EstsError::bad(
                "invalid_scope",
                700_022,
                format!(
                    "The provided value for the input parameter scope is not valid because it contains more than one resource. Scope {scope} is not valid."
                ),
            ));
        }
        resource = Some(base);
        perms.push(perm);
    }
    Ok(DelegatedScope { resource: resource.unwrap_or_else(|| PUBLIC_GRAPH.to_string()), perms, oidc })
}

/// The delegated scopes granted for a request, or 65001.
fn grant_scopes(app: &App, t: &Tenant, perms: &[String]) -> Result<Vec<String>, EstsError> {
    let consent = t.consents.iter().find(|c| c.client_id == app.client_id).ok_or_else(|| consent_required(app))?;
    if perms.is_empty() || perms.iter().any(|p| p == ".default") {
        return Ok(consent.scopes.clone());
    }
    let mut out = Vec::new();
    for p in perms {
        match consent.scopes.iter().find(|s| s.eq_ignore_ascii_case(p)) {
            Some(s) => out.push(s.clone()),
            None => return Err(consent_required(app)),
        }
    }
    Ok(out)
}

fn device_user(t: &Tenant) -> User {
    let upn = t.device_flow.user.clone();
    let found = match &upn {
        Some(u) => t.users.iter().find(|x| x.upn == *u),
        None => t.users.first(),
    };
    found.cloned().unwrap_or_else(|| {
        let upn =
            upn.unwrap_or_else(|| format!("user@{}", t.domains.first().map(String::as_str).unwrap_or("example.com")));
        User {
            id: ids::derived_guid(&format!("user:{}:{upn}", t.id)),
            display_name: "Device User".into(),
            upn,
            mailbox: false,
            drive: false,
        }
    })
}

/// Mints delegated tokens and, with `offline_access`, a refresh token.
#[allow(clippy::too_many_arguments)]
fn delegated_body(
    shared: &Shared,
    rt: &mut Runtime,
    t: &Tenant,
    app: &App,
    user: &User,
    resource: &str,
    scopes: &[String],
    oidc: &[String],
    authority: &str,
) -> Value {
    let now = rt.now();
    let lifetime = rt.world.token_lifetime_seconds;
    let mut claims = base_claims(t, app, resource, now, lifetime);
    claims["idtyp"] = json!("user");
    claims["scp"] = json!(scopes.join(" "));
    claims["oid"] = json!(user.id);
    claims["sub"] = json!(ids::derived_guid(&format!("sub:{}:{}", app.client_id, user.id)));
    claims["upn"] = json!(user.upn);
    claims["name"] = json!(user.display_name);
    let access = shared.keys.mint(&claims);
    let mut scope_list: Vec<String> = scopes.iter().map(|s| format!("{resource}/{s}")).collect();
    scope_list.extend(oidc.iter().cloned());
    let mut body = json!({
        "token_type": "Bearer",
        "scope": scope_list.join(" "),
        "expires_in": lifetime,
        "ext_expires_in": lifetime,
        "access_token": access,
    });
    if oidc.iter().any(|o| o == "offline_access") {
        let rt_value = format!("0.SIM{}", ids::random_token(48));
        rt.refresh_tokens.insert(
            rt_value.clone(),
            RefreshRecord {
                tenant: t.id.clone(),
                client_id: app.client_id.clone(),
                user_upn: user.upn.clone(),
                resource: resource.to_string(),
                scopes: scopes.to_vec(),
                oidc: oidc.to_vec(),
                last_used_unix: now,
                valid: true,
            },
        );
        body["refresh_token"] = json!(rt_value);
    }
    if oidc.iter().any(|o| o == "openid") {
        let id_claims = json!({
            "aud": app.client_id,
            "iss": format!("{authority}/{}/v2.0", t.id),
            "iat": now,
            "nbf": now,
            "exp": now + 3600,
            "name": user.display_name,
            "oid": user.id,
            "preferred_username": user.upn,
            "sub": ids::derived_guid(&format!("sub:{}:{}", app.client_id, user.id)),
            "tid": t.id,
            "ver": "2.0",
        });
        body["id_token"] = json!(shared.keys.mint(&id_claims));
    }
    body
}

pub(super) async fn refresh(
    shared: &Arc<Shared>,
    req: &Req,
    form: &HashMap<String, String>,
    path_tenant: Option<String>,
    seg: &str,
    tenant_out: &mut Option<String>,
) -> Res<Response> {
    let (client_id, cred) = client_auth(req, form)?;
    let client_id = client_id.ok_or_else(|| EstsError::missing("client_id"))?;
    let rt_value = form
        .get("refresh_token")
        .cloned()
        .filter(|s| !s.is_empty())
        .ok_or_else(|| EstsError::missing("refresh_token"))?;
    let malformed = || EstsError::bad("invalid_grant", 9_002_313, "Invalid request. Request is malformed or invalid.");
    let record = shared.rt().refresh_tokens.get(&rt_value).cloned().ok_or_else(malformed)?;
    if let Some(p) = &path_tenant
        && *p != record.tenant
    {
        return Err(malformed().into());
    }
    if path_tenant.is_none() {
        *tenant_out = Some(record.tenant.clone());
        token_fault(shared, &record.tenant, seg, &client_id, Endpoint::Refresh).await?;
    }
    if !record.client_id.eq_ignore_ascii_case(&client_id) {
        return Err(EstsError::bad(
            "invalid_grant",
            700_005,
            "Provided Authorization Code is intended to use against other tenant or application.",
        )
        .with_suberror("client_mismatch")
        .into());
    }
    let (app, t, now, strict) = {
        let rt = shared.rt();
        let app = rt.world.app(&client_id).cloned().ok_or_else(|| app_not_in_tenant(&client_id, seg))?;
        let t = rt.world.tenant(&record.tenant).cloned().ok_or_else(|| tenant_not_found(seg))?;
        let strict = t.strict_rotation.unwrap_or(rt.world.strict_rotation);
        (app, t, rt.now(), strict)
    };
    if !matches!(cred, Cred::None) || !app.public_client {
        verify_cred(&app, &cred, &token_urls(shared, req), now)?;
    }
    if !record.valid {
        return Err(EstsError::bad(
            "invalid_grant",
            70_008,
            "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.",
        )
        .into());
    }
    if now - record.last_used_unix > REFRESH_INACTIVITY_SECONDS {
        return Err(refresh_expired(now).into());
    }
    if !t.consents.iter().any(|c| c.client_id == app.client_id) {
        return Err(consent_required(&app).into());
    }
    let (resource, scopes, oidc) = match form.get("scope").map(|s| s.trim()).filter(|s| !s.is_empty()) {
        None => (record.resource.clone(), grant_scopes(&app, &t, &record.scopes)?, record.oidc.clone()),
        Some(s) => {
            let d = parse_delegated_scope(s, &graph_bases(shared, req))?;
            let mut oidc = d.oidc;
            // The refresh grant keeps offline access; clients often omit it here.
            if !oidc.iter().any(|o| o == "offline_access") {
                oidc.push("offline_access".into());
            }
            (d.resource, grant_scopes(&app, &t, &d.perms)?, oidc)
        }
    };
    let user = t.users.iter().find(|u| u.upn == record.user_upn).cloned().unwrap_or_else(|| device_user(&t));
    let authority = format!("{}/login", req.origin());
    let mut rt = shared.rt();
    if let Some(old) = rt.refresh_tokens.get_mut(&rt_value) {
        old.last_used_unix = now;
        if strict {
            old.valid = false;
        }
    }
    let body = delegated_body(shared, &mut rt, &t, &app, &user, &resource, &scopes, &oidc, &authority);
    Ok(ests_ok(&body))
}

pub(super) async fn devicecode(
    shared: &Arc<Shared>,
    req: &Req,
    seg: &str,
    tenant_out: &mut Option<String>,
) -> Res<Response> {
    if req.method != Method::POST {
        return Err(EstsError::bad(
            "invalid_request",
            900_561,
            format!("The endpoint only accepts POST requests. Received a {} request.", req.method),
        )
        .into());
    }
    let form = parse_form(&req.body);
    let client_id =
        form.get("client_id").cloned().filter(|s| !s.is_empty()).ok_or_else(|| EstsError::missing("client_id"))?;
    let tenant = {
        let rt = shared.rt();
        match resolve_tenant(&rt, seg) {
            TenantRef::Unknown => return Err(tenant_not_found(seg).into()),
            TenantRef::Alias("consumers") => return Err(alias_not_supported("consumers").into()),
            TenantRef::Alias(_) => rt
                .world
                .tenants
                .iter()
                .find(|t| t.consents.iter().any(|c| c.client_id.eq_ignore_ascii_case(&client_id)))
                .map(|t| t.id.clone())
                .ok_or_else(|| app_not_in_tenant(&client_id, seg))?,
            TenantRef::Known(g) => g,
        }
    };
    *tenant_out = Some(tenant.clone());
    token_fault(shared, &tenant, seg, &client_id, Endpoint::DeviceAuthorization).await?;
    let scope = form
        .get("scope")
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| EstsError::missing("scope"))?;
    parse_delegated_scope(&scope, &graph_bases(shared, req))?;
    let mut rt = shared.rt();
    let (_, t) = lookup(&rt, &client_id, &tenant, seg)?;
    let now = rt.now();
    let user_code = ids::user_code();
    let device_code = format!("DAQABIQEAAAD--{}", ids::random_token(48));
    let flow = &t.device_flow;
    rt.device_codes.insert(
        device_code.clone(),
        DeviceCode {
            user_code: user_code.clone(),
            tenant: t.id.clone(),
            client_id: client_id.to_ascii_lowercase(),
            scope,
            created_unix: now,
            expires_in: flow.expires_in_seconds,
            interval: flow.interval_seconds,
            polls: 0,
            last_poll_unix: None,
            state: DeviceState::Scripted,
        },
    );
    let uri = rt.world.device_verification_uri.clone();
    Ok(ests_ok(&json!({
        "user_code": user_code,
        "device_code": device_code,
        "verification_uri": uri,
        "expires_in": flow.expires_in_seconds,
        "interval": flow.interval_seconds,
        "message": format!("To sign in, use a web browser to open the page {uri} and enter the code {user_code} to authenticate."),
    })))
}

fn bad_device_code() -> EstsError {
    EstsError::bad(
        "bad_verification_code",
        70_000,
        "The provided value for the input parameter 'device_code' is not valid.",
    )
}

pub(super) async fn device_poll(
    shared: &Arc<Shared>,
    req: &Req,
    form: &HashMap<String, String>,
    path_tenant: Option<String>,
    seg: &str,
    tenant_out: &mut Option<String>,
) -> Res<Response> {
    let (client_id, cred) = client_auth(req, form)?;
    let client_id = client_id.ok_or_else(|| EstsError::missing("client_id"))?;
    let code =
        form.get("device_code").cloned().filter(|s| !s.is_empty()).ok_or_else(|| EstsError::missing("device_code"))?;
    let dc = shared.rt().device_codes.get(&code).cloned().ok_or_else(bad_device_code)?;
    if !dc.client_id.eq_ignore_ascii_case(&client_id) || path_tenant.as_ref().is_some_and(|p| *p != dc.tenant) {
        return Err(bad_device_code().into());
    }
    if path_tenant.is_none() {
        *tenant_out = Some(dc.tenant.clone());
        token_fault(shared, &dc.tenant, seg, &client_id, Endpoint::DevicePoll).await?;
    }
    let (app, t) = {
        let rt = shared.rt();
        lookup(&rt, &client_id, &dc.tenant, seg)?
    };
    let now = shared.rt().now();
    if !matches!(cred, Cred::None) || !app.public_client {
        verify_cred(&app, &cred, &token_urls(shared, req), now)?;
    }
    // Count the poll and decide, under one lock.
    let decision = {
        let mut rt = shared.rt();
        let Some(entry) = rt.device_codes.get_mut(&code) else {
            return Err(bad_device_code().into());
        };
        let too_fast = t.device_flow.enforce_interval
            && entry.last_poll_unix.is_some_and(|p| now - p < i64::try_from(entry.interval).unwrap_or(5));
        entry.last_poll_unix = Some(now);
        entry.polls += 1;
        if entry.state == DeviceState::Redeemed {
            PollDecision::AlreadyRedeemed
        } else if now - entry.created_unix > i64::try_from(entry.expires_in).unwrap_or(900) {
            PollDecision::Expired
        } else if too_fast {
            PollDecision::SlowDown
        } else {
            match entry.state {
                DeviceState::Approved => PollDecision::Approve,
                DeviceState::Declined => PollDecision::Decline,
                _ if entry.polls <= t.device_flow.after_polls => PollDecision::Pending,
                _ => match t.device_flow.outcome {
                    DeviceOutcome::Approve => PollDecision::Approve,
                    DeviceOutcome::Decline => PollDecision::Decline,
                    DeviceOutcome::Pending => PollDecision::Pending,
                },
            }
        }
    };
    match decision {
        PollDecision::Pending => Err(EstsError::bad(
            "authorization_pending",
            70_016,
            "OAuth 2.0 device flow error. Authorization is pending. Continue polling.",
        )
        .into()),
        PollDecision::SlowDown => Err(EstsError {
            status: StatusCode::BAD_REQUEST,
            error: "slow_down",
            code: None,
            description: "Polling too frequently: wait at least the interval between polls, then add 5 seconds.".into(),
            suberror: None,
            retry_after: None,
        }
        .into()),
        PollDecision::Expired => Err(EstsError::bad(
            "expired_token",
            70_020,
            "The provided value for the input parameter 'device_code' is not valid. This device code has expired.",
        )
        .into()),
        PollDecision::AlreadyRedeemed => Err(EstsError::bad(
            "invalid_grant",
            90_120,
            "The device code was already used: the request has already been authorized or declined.",
        )
        .into()),
        PollDecision::Decline => {
            Err(EstsError::bad("authorization_declined", 70_000, "The end user denied the authorization request.")
                .into())
        }
        PollDecision::Approve => {
            let d = parse_delegated_scope(&dc.scope, &graph_bases(shared, req))?;
            let scopes = grant_scopes(&app, &t, &d.perms)?;
            let user = device_user(&t);
            let authority = format!("{}/login", req.origin());
            let mut rt = shared.rt();
            if let Some(entry) = rt.device_codes.get_mut(&code) {
                entry.state = DeviceState::Redeemed;
            }
            let body = delegated_body(shared, &mut rt, &t, &app, &user, &d.resource, &scopes, &d.oidc, &authority);
            Ok(ests_ok(&body))
        }
    }
}

enum PollDecision {
    Pending,
    SlowDown,
    Expired,
    AlreadyRedeemed,
    Decline,
    Approve,
}

/// Approves (`true`) or declines a pending device code by user code.
pub(crate) fn settle_device_code(rt: &mut Runtime, user_code: &str, approve: bool) -> bool {
    let mut found = false;
    for dc in rt.device_codes.values_mut() {
        if dc.user_code.eq_ignore_ascii_case(user_code) && dc.state != DeviceState::Redeemed {
            dc.state = if approve { DeviceState::Approved } else { DeviceState::Declined };
            found = true;
        }
    }
    found
}
