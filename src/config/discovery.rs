//! `discovery:`: partner tenants whose GDAP customers become subscriptions.

use std::collections::HashMap;
use std::time::Duration;

use super::check::{MapView, Report, list_of, string_of};
use super::credentials::CredentialsSection;
use super::global::GlobalSection;
use super::subscriptions::{DEFAULTS_KEYS, Defaults, Settings, credential_ref, settings};
use super::yaml::Node;
use super::{Discovery, SubscriptionTemplate, values};

const KEYS: &[&str] =
    &["name", "credential", "partner_tenant_id", "refresh_interval", "subscription_template", "exclude"];

/// Default for `discovery[].refresh_interval`.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(3600);

pub(super) fn parse_list(
    r: &mut Report,
    node: Option<&Node>,
    global: &GlobalSection,
    creds: &CredentialsSection,
    defaults: &Defaults,
) -> Vec<Discovery> {
    let Some(items) = node.and_then(|n| list_of(r, n, "discovery")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for (path, item) in items {
        let Some(map) = MapView::new(r, item, &path) else { continue };
        map.deny_unknown(r, KEYS);
        let name = map.unique_name(r, &mut seen, "discovery");
        if let Some(d) = parse_one(r, &map, name.map(|n| n.value), global, creds, defaults) {
            out.push(d);
        }
    }
    out
}

fn parse_one(
    r: &mut Report,
    map: &MapView<'_>,
    name: Option<String>,
    global: &GlobalSection,
    creds: &CredentialsSection,
    defaults: &Defaults,
) -> Option<Discovery> {
    let credential = credential_ref(r, map, creds).and_then(|c| {
        if is_delegated(creds, &c.value) {
            r.error(
                c.loc,
                &c.path,
                format!(
                    "credential \"{}\" is delegated (a signed-in account); discovery reads the partner tenant as the app: use an application credential",
                    c.value
                ),
            );
            return None;
        }
        Some(c.value)
    });
    let partner = map.required_string(r, "partner_tenant_id").and_then(|t| {
        values::check_tenant(&t.value)
            .map_err(|msg| r.error(t.loc, &t.path, msg.replace("invalid tenant_id", "invalid partner_tenant_id")))
            .ok()
    });
    let refresh_interval = if map.has("refresh_interval") {
        map.duration(r, "refresh_interval", values::MAX_REFRESH_INTERVAL).map(|d| d.value)
    } else {
        Some(DEFAULT_REFRESH_INTERVAL)
    };
    let exclude = exclude(r, map);
    let template = template(r, map, global, creds, defaults, credential.as_deref());
    Some(Discovery {
        name: name?,
        credential: credential?,
        partner_tenant_id: partner?,
        refresh_interval: refresh_interval?,
        template: template?,
        exclude: exclude?,
    })
}

/// `subscription_template`, resolved like a subscription without name and
/// tenant. Without a credential anywhere, the discovery's own applies.
fn template(
    r: &mut Report,
    map: &MapView<'_>,
    global: &GlobalSection,
    creds: &CredentialsSection,
    defaults: &Defaults,
    own_credential: Option<&str>,
) -> Option<SubscriptionTemplate> {
    let path = map.path_of("subscription_template");
    let absent = Node::null();
    let node = map.get("subscription_template").unwrap_or(&absent);
    let t = MapView::new(r, node, &path)?;
    t.deny_unknown(r, DEFAULTS_KEYS);
    // A missing or unknown discovery credential is reported already: the
    // empty fallback keeps it from being reported a second time here.
    let mut refs = Vec::new();
    let settings = settings(r, &t, global, creds, defaults, Some(own_credential.unwrap_or("")), &mut refs);
    // A template applies to every customer, so a fixed recipient subscription
    // would make them all read one mailbox: refused rather than guessed at.
    for to in &refs {
        r.error(to.loc, &to.path, "to_subscription is not supported in a subscription_template");
    }
    let Settings { credential, admins, probes } = settings?;
    if !refs.is_empty() {
        return None;
    }
    if is_delegated(creds, &credential) {
        // `m365mon login --subscription` takes subscriptions of the file, and
        // discovered ones come and go: their sign-in could never be made.
        r.error(
            t.loc,
            &t.path,
            format!(
                "credential \"{credential}\" is delegated (a signed-in account), which discovered subscriptions cannot log in with: use an application credential"
            ),
        );
        return None;
    }
    (!credential.is_empty()).then_some(SubscriptionTemplate { credential, admins, probes })
}

fn is_delegated(creds: &CredentialsSection, name: &str) -> bool {
    creds.valid.get(name).is_some_and(|c| matches!(c.kind, super::CredentialKind::Delegated(_)))
}

/// `exclude`: customer tenant GUIDs, lowercased, first occurrence kept.
fn exclude(r: &mut Report, map: &MapView<'_>) -> Option<Vec<String>> {
    let Some(items) = map.list(r, "exclude") else {
        return if map.has("exclude") { None } else { Some(Vec::new()) };
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    let mut ok = true;
    for (path, item) in &items {
        let Some(s) = string_of(r, item, path) else {
            ok = false;
            continue;
        };
        match values::check_guid(&s.value) {
            Ok(g) if !out.contains(&g) => out.push(g),
            Ok(_) => {}
            Err(msg) => {
                r.error(s.loc, &s.path, format!("{msg} (customers are excluded by tenant GUID)"));
                ok = false;
            }
        }
    }
    ok.then_some(out)
}
