//! Mailboxes: folder reads (the exchange probe) and mail send/list/delete.

use hyper::StatusCode;
use serde_json::json;

use super::graph::{Ctx, find_user};
use super::http::Response;
use super::ids;
use super::world::{Tenant, User};

/// Messages and in-flight requests per mailbox.
#[derive(Debug, Default)]
pub(crate) struct MailState {}

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

/// The mailbox owner, or the Exchange 404.
fn mailbox<'a>(cx: &Ctx, t: &'a Tenant, u: &str) -> Result<&'a User, Response> {
    let Some(user) = find_user(t, u) else {
        return Err(cx.error(
            StatusCode::NOT_FOUND,
            "ErrorInvalidUser",
            &format!("The requested user '{u}' is invalid."),
        ));
    };
    if !user.mailbox {
        return Err(cx.error(
            StatusCode::NOT_FOUND,
            "MailboxNotEnabledForRESTAPI",
            "The mailbox is either inactive, soft-deleted, or is hosted on-premise.",
        ));
    }
    Ok(user)
}

fn folder_id(user: &User, folder: &str) -> String {
    format!(
        "AAMkA{}AAA=",
        ids::derived_guid(&format!("folder:{}:{folder}", user.id)).replace('-', "")
    )
}

pub(crate) fn mail_folder(cx: &Ctx, t: &Tenant, u: &str, f: &str) -> Response {
    let user = match mailbox(cx, t, u) {
        Ok(u) => u,
        Err(r) => return r,
    };
    let key = f.to_ascii_lowercase();
    let Some((name, display)) = WELL_KNOWN
        .iter()
        .find(|(n, _)| *n == key || folder_id(user, n) == f)
    else {
        return cx.error(
            StatusCode::NOT_FOUND,
            "ErrorItemNotFound",
            "The specified object was not found in the store.",
        );
    };
    let mut obj = serde_json::Map::new();
    obj.insert(
        "@odata.context".into(),
        json!(format!(
            "{}/$metadata#users('{}')/mailFolders/$entity",
            cx.base, user.upn
        )),
    );
    obj.insert("id".into(), json!(folder_id(user, name)));
    obj.insert("displayName".into(), json!(display));
    obj.insert(
        "parentFolderId".into(),
        json!(folder_id(user, "msgfolderroot")),
    );
    obj.insert("childFolderCount".into(), json!(0));
    obj.insert("unreadItemCount".into(), json!(0));
    obj.insert("totalItemCount".into(), json!(0));
    obj.insert("sizeInBytes".into(), json!(0));
    obj.insert("isHidden".into(), json!(false));
    cx.ok_object(obj)
}

fn not_yet(cx: &Ctx) -> Response {
    cx.error(
        StatusCode::NOT_IMPLEMENTED,
        "NotImplemented",
        "The simulator does not implement this mail endpoint yet.",
    )
}

pub(crate) fn folder_messages(cx: &Ctx, _t: &Tenant, _u: &str, _f: &str) -> Response {
    not_yet(cx)
}

pub(crate) fn list_messages(cx: &Ctx, _t: &Tenant, _u: &str) -> Response {
    not_yet(cx)
}

pub(crate) fn get_message(cx: &Ctx, _t: &Tenant, _u: &str, _id: &str) -> Response {
    not_yet(cx)
}

pub(crate) async fn create_draft(cx: &Ctx<'_>, _t: &Tenant, _u: &str) -> Response {
    not_yet(cx)
}

pub(crate) async fn send_draft(cx: &Ctx<'_>, _t: &Tenant, _u: &str, _id: &str) -> Response {
    not_yet(cx)
}

pub(crate) fn delete_message(cx: &Ctx, _t: &Tenant, _u: &str, _id: &str) -> Response {
    not_yet(cx)
}

pub(crate) async fn send_mail(cx: &Ctx<'_>, _t: &Tenant, _u: &str) -> Response {
    not_yet(cx)
}
