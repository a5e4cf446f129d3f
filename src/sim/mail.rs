//! Mailboxes (protocol doc 5.5-5.8): folder reads (the exchange probe), mail
//! send (`sendMail`, draft + `send`), message lists with `$filter`, and
//! deletion.
//!
//! Sent mail is delivered to every recipient that is a user with a mailbox in
//! any tenant of the world, after the recipient tenant's
//! `mail.delivery_delay_seconds` (measured on `tokio::time`, so paused-time
//! tests work), unless that tenant's `mail.drop` is set. Outlook's limit of 4
//! concurrent requests per (app, mailbox) answers 429 `ApplicationThrottled`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hyper::StatusCode;
use serde_json::{Map, Value, json};
use tokio::time::Instant;

use super::clock::fmt_iso;
use super::collection::CollectionSpec;
use super::graph::{Ctx, find_user};
use super::http::{Response, graph_empty, graph_ok};
use super::ids;
use super::odata;
use super::state::Shared;
use super::world::{Tenant, User};

/// Concurrent requests allowed per (app, mailbox), as Outlook does.
pub const MAILBOX_CONCURRENCY: u32 = 4;

/// A stored message.
#[derive(Debug, Clone)]
pub(crate) struct StoredMessage {
    id: String,
    internet_message_id: String,
    conversation_id: String,
    folder: &'static str,
    subject: String,
    body_type: String,
    body: String,
    from: String,
    to: Vec<String>,
    headers: Vec<(String, String)>,
    is_draft: bool,
    created: String,
    sent: Option<String>,
    received: Option<String>,
    /// Hidden until this instant (delivery delay).
    visible_at: Option<Instant>,
}

/// Messages and in-flight requests per mailbox.
#[derive(Debug, Default)]
pub(crate) struct MailState {
    /// Keyed by (tenant GUID, user object ID).
    boxes: HashMap<(String, String), Vec<StoredMessage>>,
    /// Keyed by (app ID, tenant GUID, user key lowercased).
    in_flight: HashMap<(String, String, String), u32>,
}

/// Holds one of a mailbox's concurrency slots until dropped.
pub(crate) struct MailboxSlot {
    shared: Arc<Shared>,
    key: (String, String, String),
}

impl Drop for MailboxSlot {
    fn drop(&mut self) {
        let mut rt = self.shared.rt();
        if let Some(n) = rt.mail.in_flight.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                rt.mail.in_flight.remove(&self.key);
            }
        }
    }
}

/// Takes a concurrency slot for (app, tenant, mailbox), or `None` when all
/// [`MAILBOX_CONCURRENCY`] are in use.
pub(crate) fn acquire_slot(shared: &Arc<Shared>, app: &str, tenant: &str, user: &str) -> Option<MailboxSlot> {
    let key = (app.to_ascii_lowercase(), tenant.to_string(), user.to_ascii_lowercase());
    let mut rt = shared.rt();
    let n = rt.mail.in_flight.entry(key.clone()).or_insert(0);
    if *n >= MAILBOX_CONCURRENCY {
        return None;
    }
    *n += 1;
    Some(MailboxSlot { shared: shared.clone(), key })
}

/// Well-known folder names and their display names.
const WELL_KNOWN: [(&str, &str); 8] = [
    ("inbox", "Inbox"),
    ("sentitems", "Sent Items"),
    ("drafts", "Drafts"),
    ("deleteditems", "Deleted Items"),
    ("junkemail", "Junk Email"),
    ("msgfolderroot", "Top of Information Store"),
    ("archive", "Archive"),
    ("outbox", "Outbox"),
];

/// A Graph error not yet rendered: status, code, message.
struct Fail(StatusCode, &'static str, String);

impl Fail {
    fn respond(self, cx: &Ctx) -> Response {
        cx.error(self.0, self.1, &self.2)
    }
}

/// The mailbox owner, or the Exchange 404 (code, message).
fn mailbox<'a>(t: &'a Tenant, u: &str) -> Result<&'a User, (&'static str, String)> {
    let Some(user) = find_user(t, u) else {
        return Err(("ErrorInvalidUser", format!("The requested user '{u}' is invalid.")));
    };
    if !user.mailbox {
        return Err((
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.".into(),
        ));
    }
    Ok(user)
}

macro_rules! owner {
    ($cx:expr, $t:expr, $u:expr) => {
        match mailbox($t, $u) {
            Ok(u) => u,
            Err((code, msg)) => return $cx.error(StatusCode::NOT_FOUND, code, &msg),
        }
    };
}

fn folder_id(user: &User, folder: &str) -> String {
    format!("AAMkA{}AAA=", ids::derived_guid(&format!("folder:{}:{folder}", user.id)).replace('-', ""))
}

/// The well-known name for a folder name or ID.
fn folder_name(user: &User, f: &str) -> Option<(&'static str, &'static str)> {
    let key = f.to_ascii_lowercase();
    WELL_KNOWN.iter().copied().find(|(n, _)| *n == key || folder_id(user, n) == f)
}

fn visible(m: &StoredMessage, now: Instant) -> bool {
    m.visible_at.is_none_or(|v| now >= v)
}

pub(crate) fn mail_folder(cx: &Ctx, t: &Tenant, u: &str, f: &str) -> Response {
    let user = owner!(cx, t, u);
    let Some((name, display)) = folder_name(user, f) else {
        return cx.error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        );
    };
    let now = Instant::now();
    let (total, unread) = {
        let rt = cx.shared.rt();
        let list = rt.mail.boxes.get(&(t.id.clone(), user.id.clone()));
        let n = list.map_or(0, |l| l.iter().filter(|m| m.folder == name && visible(m, now)).count());
        (n, if name == "inbox" { n } else { 0 })
    };
    let mut obj = Map::new();
    obj.insert(
        "@odata.context".into(),
        json!(format!("{}/$metadata#users('{}')/mailFolders/$entity", cx.base, user.upn)),
    );
    obj.insert("id".into(), json!(folder_id(user, name)));
    obj.insert("displayName".into(), json!(display));
    obj.insert("parentFolderId".into(), json!(folder_id(user, "msgfolderroot")));
    obj.insert("childFolderCount".into(), json!(0));
    obj.insert("unreadItemCount".into(), json!(unread));
    obj.insert("totalItemCount".into(), json!(total));
    obj.insert("sizeInBytes".into(), json!(total * 2048));
    obj.insert("isHidden".into(), json!(false));
    cx.ok_object(obj)
}

fn address(a: &str, name: Option<&str>) -> Value {
    json!({"emailAddress": {"name": name.unwrap_or(a), "address": a}})
}

fn message_json(cx: &Ctx, user: &User, m: &StoredMessage) -> Map<String, Value> {
    let preview: String = m.body.chars().take(255).collect();
    let mut o = json!({
        "@odata.etag": format!("W/\"CQAAABYAAAD{}\"", m.id.get(5..21).unwrap_or_default()),
        "id": m.id,
        "createdDateTime": m.created,
        "lastModifiedDateTime": m.sent.clone().unwrap_or_else(|| m.created.clone()),
        "changeKey": "CQAAABYAAAD",
        "categories": [],
        "receivedDateTime": m.received.clone().unwrap_or_else(|| m.created.clone()),
        "sentDateTime": m.sent,
        "hasAttachments": false,
        "internetMessageId": m.internet_message_id,
        "subject": m.subject,
        "bodyPreview": preview,
        "importance": "normal",
        "parentFolderId": folder_id(user, m.folder),
        "conversationId": m.conversation_id,
        "isDeliveryReceiptRequested": false,
        "isReadReceiptRequested": false,
        "isRead": m.folder != "inbox",
        "isDraft": m.is_draft,
        "webLink": format!("https://outlook.office365.com/owa/?ItemID={}&exvsurl=1&viewmodel=ReadMessageItem", m.id),
        "body": {"contentType": m.body_type, "content": m.body},
        "sender": address(&m.from, None),
        "from": address(&m.from, None),
        "toRecipients": m.to.iter().map(|a| address(a, None)).collect::<Vec<_>>(),
        "ccRecipients": [],
        "bccRecipients": [],
        "replyTo": [],
    });
    let selected =
        cx.req.query_param("$select").is_some_and(|s| s.split(',').any(|x| x.trim() == "internetMessageHeaders"));
    if selected {
        o["internetMessageHeaders"] =
            Value::Array(m.headers.iter().map(|(n, v)| json!({"name": n, "value": v})).collect());
    }
    match o {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

const MESSAGE_FIELDS: &[&str] = &[
    "id",
    "subject",
    "internetMessageId",
    "receivedDateTime",
    "sentDateTime",
    "createdDateTime",
    "lastModifiedDateTime",
    "isDraft",
    "isRead",
    "conversationId",
    "importance",
    "hasAttachments",
    "parentFolderId",
];

/// Outlook's rule: with both `$filter` and `$orderby`, the ordered
/// properties must come first in the filter, in the same order.
fn check_inefficient_filter(cx: &Ctx) -> Result<(), Fail> {
    let (Some(filter), Some(orderby)) = (cx.req.query_param("$filter"), cx.req.query_param("$orderby")) else {
        return Ok(());
    };
    let Ok(expr) = odata::parse_filter(&filter) else {
        return Ok(()); // reported by the collection code
    };
    let mut used = vec![];
    odata::fields(&expr, &mut used);
    let ordered: Vec<&str> = orderby.split(',').filter_map(|p| p.split_whitespace().next()).collect();
    let ok = ordered.len() <= used.len() && ordered.iter().zip(&used).all(|(o, u)| o == u);
    if ok {
        Ok(())
    } else {
        Err(Fail(
            StatusCode::BAD_REQUEST,
            "InefficientFilter",
            "The restriction or sort order is too complex for this operation.".into(),
        ))
    }
}

fn list(cx: &Ctx, t: &Tenant, user: &User, folder: Option<&str>, self_path: &str) -> Response {
    if let Err(f) = check_inefficient_filter(cx) {
        return f.respond(cx);
    }
    let now = Instant::now();
    let items: Vec<Map<String, Value>> = {
        let rt = cx.shared.rt();
        let msgs = rt.mail.boxes.get(&(t.id.clone(), user.id.clone())).cloned().unwrap_or_default();
        drop(rt);
        let mut v: Vec<&StoredMessage> =
            msgs.iter().filter(|m| visible(m, now) && folder.is_none_or(|f| m.folder == f)).collect();
        // Newest first, as Outlook lists.
        v.sort_by(|a, b| b.received.cmp(&a.received));
        v.into_iter().map(|m| message_json(cx, user, m)).collect()
    };
    let spec = CollectionSpec {
        type_name: "message",
        filterable: MESSAGE_FIELDS,
        default_page: 10,
        max_page: 1000,
        context: format!("{}/$metadata#users('{}')/messages", cx.base, user.upn),
        self_url: format!("{}/users/{}/{self_path}", cx.base, odata::encode_query_value(&user.upn)),
    };
    cx.collection(&spec, items)
}

pub(crate) fn folder_messages(cx: &Ctx, t: &Tenant, u: &str, f: &str) -> Response {
    let user = owner!(cx, t, u);
    let Some((name, _)) = folder_name(user, f) else {
        return cx.error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        );
    };
    list(cx, t, user, Some(name), &format!("mailFolders/{f}/messages"))
}

pub(crate) fn list_messages(cx: &Ctx, t: &Tenant, u: &str) -> Response {
    let user = owner!(cx, t, u);
    list(cx, t, user, None, "messages")
}

fn not_in_store(cx: &Ctx) -> Response {
    cx.error(StatusCode::NOT_FOUND, "ErrorItemNotFound", "The specified object was not found in the store.")
}

pub(crate) fn get_message(cx: &Ctx, t: &Tenant, u: &str, id: &str) -> Response {
    let user = owner!(cx, t, u);
    let now = Instant::now();
    let found = {
        let rt = cx.shared.rt();
        rt.mail
            .boxes
            .get(&(t.id.clone(), user.id.clone()))
            .and_then(|l| l.iter().find(|m| m.id == id && visible(m, now)).cloned())
    };
    match found {
        Some(m) => {
            let mut o = message_json(cx, user, &m);
            o.insert(
                "@odata.context".into(),
                json!(format!("{}/$metadata#users('{}')/messages/$entity", cx.base, user.upn)),
            );
            cx.ok_object(o)
        }
        None => not_in_store(cx),
    }
}

pub(crate) fn delete_message(cx: &Ctx, t: &Tenant, u: &str, id: &str) -> Response {
    let user = owner!(cx, t, u);
    let removed = {
        let mut rt = cx.shared.rt();
        match rt.mail.boxes.get_mut(&(t.id.clone(), user.id.clone())) {
            Some(l) => {
                let before = l.len();
                l.retain(|m| m.id != id);
                before != l.len()
            }
            None => false,
        }
    };
    if removed { graph_empty(StatusCode::NO_CONTENT, cx.ids) } else { not_in_store(cx) }
}

/// A message as the client described it.
struct Draft {
    subject: String,
    body_type: String,
    body: String,
    to: Vec<String>,
    headers: Vec<(String, String)>,
}

fn bad_json() -> Fail {
    Fail(
        StatusCode::BAD_REQUEST,
        "BadRequest",
        "Unable to read JSON request payload. Please ensure Content-Type header is set and payload is of valid JSON format.".into(),
    )
}

fn recipients(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|r| r["emailAddress"]["address"].as_str().map(|s| s.trim().to_ascii_lowercase()))
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a Graph `message` object.
fn draft_from_json(m: &Value) -> Result<Draft, Fail> {
    if !m.is_object() {
        return Err(bad_json());
    }
    let mut headers = vec![];
    if let Some(list) = m.get("internetMessageHeaders").and_then(Value::as_array) {
        for h in list {
            let name = h["name"].as_str().unwrap_or_default().to_string();
            let value = h["value"].as_str().unwrap_or_default().to_string();
            if !(name.starts_with("x-") || name.starts_with("X-")) {
                return Err(Fail(
                    StatusCode::BAD_REQUEST,
                    "InvalidInternetMessageHeader",
                    format!("The internet message header name '{name}' should start with 'x-' or 'X-'."),
                ));
            }
            headers.push((name, value));
        }
    }
    let mut to = recipients(&m["toRecipients"]);
    to.extend(recipients(&m["ccRecipients"]));
    to.extend(recipients(&m["bccRecipients"]));
    Ok(Draft {
        subject: m["subject"].as_str().unwrap_or_default().to_string(),
        body_type: match m["body"]["contentType"].as_str() {
            Some(t) if t.eq_ignore_ascii_case("html") => "html".into(),
            _ => "text".into(),
        },
        body: m["body"]["content"].as_str().unwrap_or_default().to_string(),
        to,
        headers,
    })
}

/// Reads a base64 MIME message (`Content-Type: text/plain` on sendMail).
fn draft_from_mime(body: &[u8]) -> Result<Draft, Fail> {
    let invalid = || {
        Fail(
            StatusCode::BAD_REQUEST,
            "ErrorMimeContentInvalidBase64String",
            "Invalid base64 string for MIME content.".into(),
        )
    };
    let text: String = String::from_utf8_lossy(body).split_whitespace().collect();
    let raw = STANDARD.decode(text.as_bytes()).map_err(|_| invalid())?;
    let mime = String::from_utf8_lossy(&raw).replace("\r\n", "\n");
    let (head, body) = mime.split_once("\n\n").unwrap_or((&mime, ""));
    let mut d =
        Draft { subject: String::new(), body_type: "text".into(), body: body.to_string(), to: vec![], headers: vec![] };
    for line in head.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        if k.eq_ignore_ascii_case("subject") {
            d.subject = v.to_string();
        } else if k.eq_ignore_ascii_case("to") || k.eq_ignore_ascii_case("cc") {
            for a in v.split(',') {
                let a = a.trim();
                let addr = match (a.find('<'), a.rfind('>')) {
                    (Some(s), Some(e)) if s < e => &a[s + 1..e],
                    _ => a,
                };
                d.to.push(addr.to_ascii_lowercase());
            }
        } else if k.len() > 2 && k[..2].eq_ignore_ascii_case("x-") {
            d.headers.push((k.to_string(), v.to_string()));
        }
    }
    Ok(d)
}

fn new_message(user: &User, d: Draft, folder: &'static str, now_iso: &str) -> StoredMessage {
    let token = ids::random_token(12).to_ascii_uppercase().replace(['-', '_'], "X");
    StoredMessage {
        id: format!("AAMkA{}AAA=", ids::new_guid().replace('-', "")),
        internet_message_id: format!("<SIM{token}@SIMPR01MB0001.eurprd01.prod.outlook.com>"),
        conversation_id: format!("AAQkA{}=", ids::new_guid().replace('-', "")),
        folder,
        subject: d.subject,
        body_type: d.body_type,
        body: d.body,
        from: user.upn.clone(),
        to: d.to,
        headers: d.headers,
        is_draft: folder == "drafts",
        created: now_iso.to_string(),
        sent: None,
        received: None,
        visible_at: None,
    }
}

/// Puts a sent message in the sender's Sent Items (optionally) and queues
/// it for every recipient mailbox in the world.
fn dispatch(shared: &Shared, sender_tenant: &str, sender: &User, mut m: StoredMessage, save: bool, now: i64) {
    let mut rt = shared.rt();
    let sent = fmt_iso(now);
    m.is_draft = false;
    m.sent = Some(sent.clone());
    let deliveries: Vec<(String, String, u64, bool)> =
        m.to.iter()
            .filter_map(|addr| {
                rt.world.tenants.iter().find_map(|t| {
                    t.users
                        .iter()
                        .find(|u| u.upn == *addr && u.mailbox)
                        .map(|u| (t.id.clone(), u.id.clone(), t.mail.delivery_delay_seconds, t.mail.drop))
                })
            })
            .collect();
    let instant = Instant::now();
    for (tenant, user_id, delay, dropped) in deliveries {
        if dropped {
            continue;
        }
        let mut copy = m.clone();
        copy.id = format!("AAMkA{}AAA=", ids::new_guid().replace('-', ""));
        copy.folder = "inbox";
        copy.received = Some(fmt_iso(now + i64::try_from(delay).unwrap_or(0)));
        copy.visible_at = Some(instant + Duration::from_secs(delay));
        rt.mail.boxes.entry((tenant, user_id)).or_default().push(copy);
    }
    if save {
        m.folder = "sentitems";
        m.received = Some(sent);
        rt.mail.boxes.entry((sender_tenant.to_string(), sender.id.clone())).or_default().push(m);
    }
}

pub(crate) async fn send_mail(cx: &Ctx<'_>, t: &Tenant, u: &str) -> Response {
    let user = owner!(cx, t, u);
    let is_mime = cx.req.header("content-type").is_some_and(|c| c.to_ascii_lowercase().starts_with("text/plain"));
    let (draft, save) = if is_mime {
        match draft_from_mime(&cx.req.body) {
            Ok(d) => (d, true),
            Err(f) => return f.respond(cx),
        }
    } else {
        let Ok(body) = serde_json::from_slice::<Value>(&cx.req.body) else {
            return bad_json().respond(cx);
        };
        let d = match draft_from_json(&body["message"]) {
            Ok(d) => d,
            Err(f) => return f.respond(cx),
        };
        (d, body["saveToSentItems"].as_bool().unwrap_or(true))
    };
    if draft.to.is_empty() {
        return cx.error(StatusCode::BAD_REQUEST, "ErrorInvalidRecipients", "At least one recipient isn't valid.");
    }
    let m = new_message(user, draft, "sentitems", &fmt_iso(cx.now));
    dispatch(cx.shared, &t.id, user, m, save, cx.now);
    graph_empty(StatusCode::ACCEPTED, cx.ids)
}

pub(crate) async fn create_draft(cx: &Ctx<'_>, t: &Tenant, u: &str) -> Response {
    let user = owner!(cx, t, u);
    let Ok(body) = serde_json::from_slice::<Value>(&cx.req.body) else {
        return bad_json().respond(cx);
    };
    let draft = match draft_from_json(&body) {
        Ok(d) => d,
        Err(f) => return f.respond(cx),
    };
    let m = new_message(user, draft, "drafts", &fmt_iso(cx.now));
    let mut o = message_json(cx, user, &m);
    o.insert("@odata.context".into(), json!(format!("{}/$metadata#users('{}')/messages/$entity", cx.base, user.upn)));
    cx.shared.rt().mail.boxes.entry((t.id.clone(), user.id.clone())).or_default().push(m);
    graph_ok(StatusCode::CREATED, cx.ids, &Value::Object(o))
}

pub(crate) async fn send_draft(cx: &Ctx<'_>, t: &Tenant, u: &str, id: &str) -> Response {
    let user = owner!(cx, t, u);
    let draft = {
        let mut rt = cx.shared.rt();
        let list = rt.mail.boxes.entry((t.id.clone(), user.id.clone())).or_default();
        list.iter().position(|m| m.id == id && m.is_draft).map(|i| list.remove(i))
    };
    let Some(m) = draft else {
        return not_in_store(cx);
    };
    if m.to.is_empty() {
        cx.shared.rt().mail.boxes.entry((t.id.clone(), user.id.clone())).or_default().push(m);
        return cx.error(StatusCode::BAD_REQUEST, "ErrorInvalidRecipients", "At least one recipient isn't valid.");
    }
    dispatch(cx.shared, &t.id, user, m, true, cx.now);
    graph_empty(StatusCode::ACCEPTED, cx.ids)
}
