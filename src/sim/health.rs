//! Service communications (`/admin/serviceAnnouncement/*`, protocol doc
//! 5.1-5.3).

use hyper::StatusCode;
use serde_json::{Map, Value, json};

use super::collection::CollectionSpec;
use super::graph::Ctx;
use super::http::Response;
use super::world::{Issue, Message, Service, Tenant};

pub(crate) fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

const ISSUE_FIELDS: &[&str] = &[
    "id",
    "title",
    "service",
    "feature",
    "featureGroup",
    "status",
    "classification",
    "origin",
    "isResolved",
    "startDateTime",
    "endDateTime",
    "lastModifiedDateTime",
    "impactDescription",
];

pub(crate) fn issue_json(i: &Issue) -> Map<String, Value> {
    let mut posts = vec![json!({
        "createdDateTime": i.start_date_time,
        "postType": "regular",
        "description": {"contentType": "html", "content": format!("Title: {}<br>User impact: {}<br>Current status: We're investigating.", i.title, i.impact_description)},
    })];
    if i.is_resolved {
        posts.push(json!({
            "createdDateTime": i.end_date_time.clone().unwrap_or_else(|| i.last_modified_date_time.clone()),
            "postType": "regular",
            "description": {"contentType": "html", "content": format!("Title: {}<br>Final status: We've confirmed that the issue is resolved.", i.title)},
        }));
    }
    obj(json!({
        "startDateTime": i.start_date_time,
        "endDateTime": i.end_date_time,
        "lastModifiedDateTime": i.last_modified_date_time,
        "title": i.title,
        "id": i.id,
        "impactDescription": i.impact_description,
        "classification": i.classification,
        "origin": i.origin,
        "status": i.status,
        "service": i.service,
        "feature": i.feature,
        "featureGroup": i.feature_group,
        "isResolved": i.is_resolved,
        "highImpact": null,
        "details": [{"name": "NotifyInApp", "value": "True"}],
        "posts": posts,
    }))
}

fn service_json(s: &Service, issues: Option<&[Issue]>) -> Map<String, Value> {
    let mut m = obj(json!({"service": s.name, "status": s.status, "id": s.id}));
    if let Some(all) = issues {
        let list: Vec<Value> =
            all.iter().filter(|i| i.service == s.name).map(|i| Value::Object(issue_json(i))).collect();
        m.insert("issues".into(), Value::Array(list));
    }
    m
}

fn message_json(m: &Message) -> Map<String, Value> {
    obj(json!({
        "startDateTime": m.start_date_time,
        "endDateTime": m.end_date_time,
        "lastModifiedDateTime": m.last_modified_date_time,
        "title": m.title,
        "id": m.id,
        "category": m.category,
        "severity": m.severity,
        "tags": m.tags,
        "isMajorChange": m.is_major_change,
        "actionRequiredByDateTime": m.action_required_by_date_time,
        "services": m.services,
        "expiryDateTime": null,
        "hasAttachments": false,
        "viewPoint": null,
        "details": [],
        "body": {"contentType": "html", "content": m.body},
    }))
}

fn spec<'a>(cx: &Ctx, name: &str, type_name: &'a str, filterable: &'a [&'a str]) -> CollectionSpec<'a> {
    CollectionSpec {
        type_name,
        filterable,
        default_page: 100,
        max_page: 1000,
        context: format!("{}/$metadata#admin/serviceAnnouncement/{name}", cx.base),
        self_url: format!("{}/admin/serviceAnnouncement/{name}", cx.base),
    }
}

pub(crate) fn overviews(cx: &Ctx, t: &Tenant) -> Response {
    let expand = cx.req.query_param("$expand").is_some_and(|e| e.split(',').any(|x| x.trim() == "issues"));
    let items = t.services.iter().map(|s| service_json(s, expand.then_some(t.issues.as_slice()))).collect();
    cx.collection(&spec(cx, "healthOverviews", "serviceHealth", &["id", "service", "status"]), items)
}

pub(crate) fn overview(cx: &Ctx, t: &Tenant, name: &str) -> Response {
    match t.services.iter().find(|s| s.name.eq_ignore_ascii_case(name) || s.id.eq_ignore_ascii_case(name)) {
        Some(s) => {
            let expand = cx.req.query_param("$expand").is_some_and(|e| e.contains("issues"));
            let mut m = service_json(s, expand.then_some(t.issues.as_slice()));
            m.insert(
                "@odata.context".into(),
                json!(format!("{}/$metadata#admin/serviceAnnouncement/healthOverviews/$entity", cx.base)),
            );
            cx.ok_object(m)
        }
        None => cx.error(StatusCode::NOT_FOUND, "NotFound", &format!("The service '{name}' was not found.")),
    }
}

pub(crate) fn issues(cx: &Ctx, t: &Tenant) -> Response {
    let items = t.issues.iter().map(issue_json).collect();
    cx.collection(&spec(cx, "issues", "serviceHealthIssue", ISSUE_FIELDS), items)
}

pub(crate) fn issue(cx: &Ctx, t: &Tenant, id: &str) -> Response {
    match t.issues.iter().find(|i| i.id.eq_ignore_ascii_case(id)) {
        Some(i) => {
            let mut m = issue_json(i);
            m.insert(
                "@odata.context".into(),
                json!(format!("{}/$metadata#admin/serviceAnnouncement/issues/$entity", cx.base)),
            );
            cx.ok_object(m)
        }
        None => cx.error(StatusCode::NOT_FOUND, "NotFound", &format!("The issue '{id}' was not found.")),
    }
}

pub(crate) fn messages(cx: &Ctx, t: &Tenant) -> Response {
    let items = t.messages.iter().map(message_json).collect();
    let fields = &[
        "id",
        "title",
        "category",
        "severity",
        "isMajorChange",
        "startDateTime",
        "endDateTime",
        "lastModifiedDateTime",
        "actionRequiredByDateTime",
    ];
    cx.collection(&spec(cx, "messages", "serviceUpdateMessage", fields), items)
}

pub(crate) fn message(cx: &Ctx, t: &Tenant, id: &str) -> Response {
    match t.messages.iter().find(|m| m.id.eq_ignore_ascii_case(id)) {
        Some(m) => {
            let mut j = message_json(m);
            j.insert(
                "@odata.context".into(),
                json!(format!("{}/$metadata#admin/serviceAnnouncement/messages/$entity", cx.base)),
            );
            cx.ok_object(j)
        }
        None => cx.error(StatusCode::NOT_FOUND, "NotFound", &format!("The message '{id}' was not found.")),
    }
}
