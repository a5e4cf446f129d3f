//! The control API under `/_sim/` (documented in the module docs of [`super`]).

use std::time::Duration;

use hyper::{Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::actions::known_status;
use super::fault::{Fault, Target};
use super::http::{Req, Response, json_response};
use super::state::{Runtime, Shared};
use super::world::{Customer, IssueSpec, RELATIONSHIP_STATUSES};

/// A control API failure: status and reason.
struct Fail(StatusCode, String);

impl Fail {
    fn response(self) -> Response {
        json_response(self.0, &json!({"error": self.1}))
    }
}

fn bad(msg: impl Into<String>) -> Fail {
    Fail(StatusCode::BAD_REQUEST, msg.into())
}

fn parse<T: for<'de> Deserialize<'de>>(req: &Req) -> Result<T, Fail> {
    serde_json::from_slice(&req.body).map_err(|e| bad(format!("invalid JSON body: {e}")))
}

fn known_tenant(rt: &Runtime, tenant: &str) -> Result<String, Fail> {
    match rt.world.tenant(tenant) {
        Some(t) => Ok(t.id.clone()),
        None => {
            let known: Vec<String> = rt.world.tenants.iter().flat_map(|t| t.domains.first().cloned()).collect();
            Err(bad(format!("unknown tenant {tenant:?}; known tenants: {}", known.join(", "))))
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FaultBody {
    tenant: String,
    target: String,
    fault: String,
    #[serde(default)]
    retry_after_seconds: Option<u64>,
    #[serde(default)]
    delay_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomerBody {
    partner: String,
    tenant_id: String,
    display_name: String,
    #[serde(default)]
    relationship_status: Option<String>,
    #[serde(default)]
    relationship_end: Option<String>,
}

fn post_customer(shared: &Shared, req: &Req) -> Result<Response, Fail> {
    let b: CustomerBody = parse(req)?;
    if !super::ids::is_guid(&b.tenant_id) {
        return Err(bad(format!("tenant_id {:?} is not a GUID", b.tenant_id)));
    }
    let mut customer = Customer::new(&b.tenant_id, &b.display_name);
    if let Some(status) = b.relationship_status {
        if !RELATIONSHIP_STATUSES.contains(&status.as_str()) {
            return Err(bad(format!(
                "unknown relationship_status {status:?}; expected one of {}",
                RELATIONSHIP_STATUSES.join(", ")
            )));
        }
        customer.relationships[0].status = status;
    }
    if let Some(end) = b.relationship_end {
        if super::clock::parse_iso_millis(&end).is_none() {
            return Err(bad(format!("relationship_end {end:?} is not an ISO-8601 UTC time like 2026-06-30T00:00:00Z")));
        }
        customer.relationships[0].end = Some(end);
    }
    let mut rt = shared.rt();
    let partner = known_tenant(&rt, &b.partner)?;
    rt.upsert_customer(&partner, customer).map_err(bad)?;
    Ok(json_response(StatusCode::OK, &json!({"partner": partner, "tenant_id": b.tenant_id.to_ascii_lowercase()})))
}

fn delete_customer(shared: &Shared, req: &Req) -> Result<Response, Fail> {
    let (Some(partner), Some(tenant_id)) = (req.query_param("partner"), req.query_param("tenant_id")) else {
        return Err(bad("give ?partner=&tenant_id="));
    };
    let mut rt = shared.rt();
    let partner = known_tenant(&rt, &partner)?;
    if rt.remove_customer(&partner, &tenant_id).map_err(bad)? {
        Ok(json_response(StatusCode::OK, &json!({"partner": partner, "removed": tenant_id})))
    } else {
        Err(Fail(StatusCode::NOT_FOUND, format!("tenant {partner} has no customer {tenant_id:?}")))
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthBody {
    tenant: String,
    service: String,
    status: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IssueBody {
    tenant: String,
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
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResolveBody {
    #[serde(default)]
    tenant: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviceBody {
    user_code: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MailBody {
    tenant: String,
    #[serde(default)]
    delivery_delay_seconds: Option<u64>,
    #[serde(default)]
    drop: Option<bool>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ClockBody {
    seconds: u64,
}

fn fault_json(tenant: &str, target: Target, f: &Fault) -> Value {
    let mut v = json!({"tenant": tenant, "target": target.as_str(), "fault": f.name()});
    if let Some(r) = f.retry_after() {
        v["retry_after_seconds"] = json!(super::fault::retry_after_secs(r));
    }
    if let Fault::Slow { delay } = f {
        v["delay_ms"] = json!(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
    }
    v
}

/// Serves one control request (never recorded in the request log).
pub(crate) fn handle(shared: &Shared, req: &Req) -> Response {
    let path = req.path.trim_end_matches('/');
    let segs: Vec<&str> = path.split('/').skip(2).collect();
    let m = &req.method;
    let r = match (m, segs.as_slice()) {
        (&Method::GET, []) => Ok(info(shared, req)),
        (&Method::GET, ["faults"]) => {
            let rt = shared.rt();
            let list: Vec<Value> = rt.faults.iter().map(|((t, g), f)| fault_json(t, *g, f)).collect();
            Ok(json_response(StatusCode::OK, &json!({"faults": list})))
        }
        (&Method::POST, ["faults"]) => post_fault(shared, req),
        (&Method::DELETE, ["faults"]) => delete_faults(shared, req),
        (&Method::POST, ["service-health"]) => (|| {
            let b: HealthBody = parse(req)?;
            known_status(&b.status).map_err(bad)?;
            let mut rt = shared.rt();
            let tid = known_tenant(&rt, &b.tenant)?;
            rt.set_service_status(&tid, &b.service, &b.status).map_err(bad)?;
            Ok(json_response(StatusCode::OK, &json!({"tenant": tid, "service": b.service, "status": b.status})))
        })(),
        (&Method::POST, ["issues"]) => (|| {
            let b: IssueBody = parse(req)?;
            let spec = IssueSpec {
                id: b.id,
                service: b.service,
                title: b.title,
                classification: b.classification,
                status: b.status,
                feature: b.feature,
                feature_group: b.feature_group,
                impact_description: b.impact_description,
            };
            let mut rt = shared.rt();
            let tid = known_tenant(&rt, &b.tenant)?;
            rt.open_issue(&tid, &spec).map_err(bad)?;
            let issue = rt
                .world
                .tenant(&tid)
                .and_then(|t| t.issues.iter().find(|i| i.id == spec.id))
                .map(super::health::issue_json);
            Ok(json_response(StatusCode::CREATED, &json!({"tenant": tid, "issue": issue})))
        })(),
        (&Method::POST, ["issues", id, "resolve"]) => (|| {
            let body_tenant = if req.body.is_empty() { None } else { parse::<ResolveBody>(req)?.tenant };
            let tenant = body_tenant
                .or_else(|| req.query_param("tenant"))
                .ok_or_else(|| bad("give the tenant in the JSON body or as ?tenant="))?;
            let mut rt = shared.rt();
            let tid = known_tenant(&rt, &tenant)?;
            rt.resolve_issue(&tid, id).map_err(|e| Fail(StatusCode::NOT_FOUND, e))?;
            Ok(json_response(StatusCode::OK, &json!({"tenant": tid, "resolved": id})))
        })(),
        (&Method::GET, ["requests"]) => {
            let rt = shared.rt();
            let list: Vec<&super::state::RecordedRequest> = rt.requests.iter().collect();
            Ok(json_response(StatusCode::OK, &json!({"requests": list})))
        }
        (&Method::POST, ["device", action @ ("approve" | "decline")]) => (|| {
            let b: DeviceBody = parse(req)?;
            let mut rt = shared.rt();
            if super::delegated::settle_device_code(&mut rt, &b.user_code, *action == "approve") {
                Ok(json_response(StatusCode::OK, &json!({"user_code": b.user_code, "result": action})))
            } else {
                Err(Fail(StatusCode::NOT_FOUND, format!("no pending device code with user code {:?}", b.user_code)))
            }
        })(),
        (&Method::POST, ["mail"]) => (|| {
            let b: MailBody = parse(req)?;
            let mut rt = shared.rt();
            let tid = known_tenant(&rt, &b.tenant)?;
            rt.set_mail_delivery(&tid, b.delivery_delay_seconds, b.drop).map_err(bad)?;
            let mail = rt.world.tenant(&tid).map(|t| t.mail.clone()).unwrap_or_default();
            Ok(json_response(
                StatusCode::OK,
                &json!({"tenant": tid, "delivery_delay_seconds": mail.delivery_delay_seconds, "drop": mail.drop}),
            ))
        })(),
        (&Method::POST, ["clock", "advance"]) => (|| {
            let b: ClockBody = parse(req)?;
            let mut rt = shared.rt();
            rt.clock_offset += Duration::from_secs(b.seconds);
            Ok(json_response(StatusCode::OK, &json!({"clock_offset_seconds": rt.clock_offset.as_secs()})))
        })(),
        (&Method::POST, ["customers"]) => post_customer(shared, req),
        (&Method::DELETE, ["customers"]) => delete_customer(shared, req),
        (
            _,
            ["customers"]
            | ["faults"]
            | ["service-health"]
            | ["issues"]
            | ["requests"]
            | []
            | ["issues", _, "resolve"]
            | ["device", _]
            | ["mail"]
            | ["clock", "advance"],
        ) => Err(Fail(StatusCode::METHOD_NOT_ALLOWED, format!("{m} is not allowed on {path}"))),
        _ => Err(Fail(StatusCode::NOT_FOUND, format!("no control endpoint {path}; see GET /_sim"))),
    };
    r.unwrap_or_else(Fail::response)
}

fn post_fault(shared: &Shared, req: &Req) -> Result<Response, Fail> {
    let b: FaultBody = parse(req)?;
    let target: Target = b.target.parse().map_err(bad)?;
    let fault = Fault::from_parts(
        &b.fault,
        b.retry_after_seconds.map(Duration::from_secs),
        b.delay_ms.map(Duration::from_millis),
    )
    .map_err(|e| bad(e.replace("retry_after", "retry_after_seconds").replace("no delay", "no delay_ms")))?;
    let token_only = matches!(
        fault,
        Fault::BadSecret
            | Fault::ExpiredSecret
            | Fault::UnknownTenant
            | Fault::RefreshExpired
            | Fault::RefreshRevoked
            | Fault::ConsentRevoked
    );
    if token_only && target != Target::Token {
        return Err(bad(format!("fault {} applies to the token target only", fault.name())));
    }
    let mut rt = shared.rt();
    let tid = known_tenant(&rt, &b.tenant)?;
    rt.set_fault(&tid, target, fault);
    Ok(json_response(StatusCode::OK, &fault_json(&tid, target, &fault)))
}

fn delete_faults(shared: &Shared, req: &Req) -> Result<Response, Fail> {
    let target = req.query_param("target").map(|t| t.parse::<Target>()).transpose().map_err(bad)?;
    let mut rt = shared.rt();
    let tenant = match req.query_param("tenant") {
        Some(t) => Some(known_tenant(&rt, &t)?),
        None => None,
    };
    let n = rt.clear_faults(tenant.as_deref(), target);
    Ok(json_response(StatusCode::OK, &json!({"cleared": n})))
}

fn info(shared: &Shared, req: &Req) -> Response {
    let rt = shared.rt();
    let tenants: Vec<Value> = rt
        .world
        .tenants
        .iter()
        .map(|t| json!({"id": t.id, "display_name": t.display_name, "domains": t.domains}))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({
            "authority_host": format!("{}/login", req.origin()),
            "graph_endpoint": format!("{}/graph", req.origin()),
            "tenants": tenants,
            "targets": Target::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
            "faults": Fault::NAMES,
            "endpoints": [
                "GET /_sim", "GET /_sim/faults", "POST /_sim/faults", "DELETE /_sim/faults[?tenant=&target=]",
                "POST /_sim/service-health", "POST /_sim/issues", "POST /_sim/issues/{id}/resolve",
                "GET /_sim/requests", "POST /_sim/device/approve", "POST /_sim/device/decline", "POST /_sim/mail", "POST /_sim/clock/advance",
                "POST /_sim/customers", "DELETE /_sim/customers?partner=&tenant_id="
            ],
        }),
    )
}
