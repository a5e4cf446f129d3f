//! GDAP (granular delegated admin privileges) as a partner tenant sees it:
//! `/tenantRelationships/delegatedAdminCustomers` and
//! `/tenantRelationships/delegatedAdminRelationships`, shaped as in Graph
//! v1.0 (the protocol doc has no section on them; see Microsoft's
//! "List delegatedAdminRelationships" page). Both page like every
//! collection: `$top` up to 300, `Prefer: odata.maxpagesize`, `@odata.nextLink`.

use serde_json::json;

use super::clock;
use super::collection::CollectionSpec;
use super::graph::Ctx;
use super::health::obj;
use super::http::Response;
use super::ids;
use super::world::{Customer, Relationship, Tenant};

/// Two years: the longest GDAP relationship, used for relationships
/// without an explicit end.
const DEFAULT_DURATION_SECONDS: i64 = 730 * 86_400;

fn spec<'a>(cx: &Ctx, name: &str, type_name: &'a str, filterable: &'a [&'a str]) -> CollectionSpec<'a> {
    CollectionSpec {
        type_name,
        filterable,
        default_page: 100,
        max_page: 300,
        context: format!("{}/$metadata#tenantRelationships/{name}", cx.base),
        self_url: format!("{}/tenantRelationships/{name}", cx.base),
    }
}

pub(crate) fn customers(cx: &Ctx, t: &Tenant) -> Response {
    let items = t
        .customers
        .iter()
        .map(|c| obj(json!({"id": c.tenant_id, "tenantId": c.tenant_id, "displayName": c.display_name})))
        .collect();
    cx.collection(
        &spec(cx, "delegatedAdminCustomers", "delegatedAdminCustomer", &["id", "tenantId", "displayName"]),
        items,
    )
}

/// The relationship's end: as configured, else two years after today's
/// midnight UTC (stable within a day, so repeated reads agree).
fn end_of(r: &Relationship, now: i64) -> i64 {
    r.end
        .as_deref()
        .and_then(clock::parse_iso_millis)
        .map(|ms| ms / 1000)
        .unwrap_or_else(|| now - now.rem_euclid(86_400) + DEFAULT_DURATION_SECONDS)
}

fn relationship_json(partner: &Tenant, c: &Customer, k: usize, r: &Relationship, now: i64) -> serde_json::Value {
    let end = end_of(r, now);
    let activated = end - DEFAULT_DURATION_SECONDS;
    let pending = matches!(r.status.as_str(), "approvalPending" | "created" | "approved");
    let id = format!("{}-{}", ids::derived_guid(&format!("gdap:{}:{}:{k}", partner.id, c.tenant_id)), c.tenant_id);
    json!({
        "@odata.type": "#microsoft.graph.delegatedAdminRelationship",
        "@odata.etag": format!("W/\"{}\"", ids::derived_guid(&format!("etag:{id}"))),
        "id": id,
        "displayName": r.display_name,
        "duration": "P730D",
        "customer": {"tenantId": c.tenant_id, "displayName": c.display_name},
        "accessDetails": {"unifiedRoles": [{"roleDefinitionId": "f2ef992c-3afb-46b9-b7cf-a126ee74c451"}]},
        "status": r.status,
        "autoExtendDuration": r.auto_extend,
        "createdDateTime": clock::fmt_iso(activated - 600),
        "lastModifiedDateTime": clock::fmt_iso(activated),
        "activatedDateTime": if pending { serde_json::Value::Null } else { json!(clock::fmt_iso(activated)) },
        "endDateTime": if pending { serde_json::Value::Null } else { json!(clock::fmt_iso(end)) },
    })
}

pub(crate) fn relationships(cx: &Ctx, t: &Tenant) -> Response {
    let items = t
        .customers
        .iter()
        .flat_map(|c| c.relationships.iter().enumerate().map(move |(k, r)| (c, k, r)))
        .map(|(c, k, r)| obj(relationship_json(t, c, k, r, cx.now)))
        .collect();
    let filterable = &["id", "displayName", "status", "endDateTime", "createdDateTime", "activatedDateTime"];
    cx.collection(&spec(cx, "delegatedAdminRelationships", "delegatedAdminRelationship", filterable), items)
}
