//! Probe entries (`probes:` of a subscription or of `subscription_defaults`).

use std::collections::HashMap;
use std::time::Duration;

use super::check::{Located, MapView, Report, list_of, string_of, unknown};
use super::yaml::{Loc, Node};
use super::{ProbeKind, values};

/// Keys every probe accepts.
const COMMON_KEYS: &[&str] = &["type", "name", "interval", "timeout"];

/// The probes a subscription gets when neither it nor the defaults list any.
pub(super) const DEFAULT_PROBES: [ProbeKind; 3] = [ProbeKind::Auth, ProbeKind::Organization, ProbeKind::ServiceHealth];

/// A parameter of one probe type, checked and normalised by `check`.
struct Param {
    key: &'static str,
    check: fn(&str) -> Result<String, String>,
    required: bool,
}

const fn required(key: &'static str, check: fn(&str) -> Result<String, String>) -> Param {
    Param { key, check, required: true }
}

const fn optional(key: &'static str, check: fn(&str) -> Result<String, String>) -> Param {
    Param { key, check, required: false }
}

/// One probe type: its `type:` value, its parameters and how to build the
/// [`ProbeKind`] from their checked values, in `params` order (`None` for
/// an optional parameter left out). A new probe type is a new row here.
struct ProbeType {
    name: &'static str,
    params: &'static [Param],
    build: fn(Vec<Option<String>>) -> ProbeKind,
}

fn first(params: Vec<Option<String>>) -> String {
    params.into_iter().next().flatten().unwrap_or_default()
}

/// The checked value of the parameter at `i` (required ones are always there).
fn nth(params: &[Option<String>], i: usize) -> Option<String> {
    params.get(i).cloned().flatten()
}

/// The recipient of a mail round trip: mail goes to an address, so an
/// object ID (allowed for `from`) will not do.
fn check_recipient(s: &str) -> Result<String, String> {
    if values::is_guid(s) {
        return Err(format!(
            "invalid to \"{s}\": expected the recipient's e-mail address (user@domain); mail cannot be addressed to an object ID"
        ));
    }
    values::check_email(s)
}

/// A subscription name: checked here for its form, and once all
/// subscriptions are read for existence.
fn check_subscription_ref(s: &str) -> Result<String, String> {
    values::check_name(s).map(|()| s.to_owned())
}

const TYPES: &[ProbeType] = &[
    ProbeType { name: "auth", params: &[], build: |_| ProbeKind::Auth },
    ProbeType { name: "organization", params: &[], build: |_| ProbeKind::Organization },
    ProbeType {
        name: "exchange",
        params: &[required("mailbox", |s| values::check_user("mailbox", s))],
        build: |p| ProbeKind::Exchange { mailbox: first(p) },
    },
    ProbeType {
        name: "sharepoint",
        params: &[required("site", values::check_site)],
        build: |p| ProbeKind::Sharepoint { site: first(p) },
    },
    ProbeType {
        name: "onedrive",
        params: &[required("user", |s| values::check_user("user", s))],
        build: |p| ProbeKind::Onedrive { user: first(p) },
    },
    ProbeType {
        name: "teams",
        params: &[required("team_id", values::check_guid)],
        build: |p| ProbeKind::Teams { team_id: first(p) },
    },
    ProbeType { name: "service_health", params: &[], build: |_| ProbeKind::ServiceHealth },
    ProbeType {
        name: "mail_roundtrip",
        params: &[
            required("from", |s| values::check_user("from", s)),
            required("to", check_recipient),
            optional("to_subscription", check_subscription_ref),
        ],
        build: |p| ProbeKind::MailRoundtrip {
            from: nth(&p, 0).unwrap_or_default(),
            to: nth(&p, 1).unwrap_or_default(),
            to_subscription: nth(&p, 2),
        },
    },
    ProbeType { name: "message_center", params: &[], build: |_| ProbeKind::MessageCenter },
];

/// A checked probe entry; interval and timeout are resolved per subscription.
#[derive(Debug, Clone)]
pub(super) struct ProbeSpec {
    pub name: String,
    pub kind: ProbeKind,
    pub interval: Option<Located<Duration>>,
    pub timeout: Option<Located<Duration>>,
    /// Where the entry is written (the built-in default probes have no place).
    pub at: Option<Loc>,
    /// The entry's key path, e.g. `subscriptions[0].probes[2]`.
    pub path: String,
    /// `to_subscription` of a mail round trip, checked to exist once all
    /// subscriptions are known.
    pub to_subscription: Option<Located<String>>,
}

/// Parses a `probes:` list. Invalid entries are reported and left out;
/// `None` when the value is not a list at all.
pub(super) fn parse_list(r: &mut Report, node: &Node, path: &str) -> Option<Vec<ProbeSpec>> {
    let items = list_of(r, node, path)?;
    if items.is_empty() {
        let defaults: Vec<&str> = DEFAULT_PROBES.iter().map(ProbeKind::type_name).collect();
        r.error(
            node.loc,
            path,
            format!("at least one probe is required; leave out \"probes\" to get {}", defaults.join(", ")),
        );
        return None;
    }
    let mut specs = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    for (item_path, item) in items {
        let Some((spec, name_loc)) = parse_one(r, item, &item_path) else { continue };
        if let Some(first) = seen.get(&spec.name) {
            r.error(
                name_loc,
                &item_path,
                format!(
                    "duplicate probe name \"{}\" (also used by {first}); give one of them a different \"name\"",
                    spec.name
                ),
            );
            continue;
        }
        seen.insert(spec.name.clone(), item_path);
        specs.push(spec);
    }
    Some(specs)
}

/// One probe entry, and where its name comes from (for duplicate reports).
fn parse_one(r: &mut Report, node: &Node, path: &str) -> Option<(ProbeSpec, Option<Loc>)> {
    let map = MapView::new(r, node, path)?;
    let type_names: Vec<&str> = TYPES.iter().map(|t| t.name).collect();
    let ty = map.required_string(r, "type").and_then(|t| {
        let found = TYPES.iter().find(|ty| ty.name == t.value);
        if found.is_none() {
            r.error(t.loc, &t.path, unknown("probe type", &t.value, &type_names));
        }
        found
    });

    match ty {
        Some(ty) => {
            let mut allowed: Vec<&str> = COMMON_KEYS.to_vec();
            allowed.extend(ty.params.iter().map(|p| p.key));
            for e in map.entries() {
                if allowed.contains(&e.key.as_str()) {
                    continue;
                }
                match TYPES.iter().find(|t| t.params.iter().any(|p| p.key == e.key)) {
                    Some(owner) => r.error(
                        e.key_loc,
                        path,
                        format!("key \"{}\" is only allowed on probes of type \"{}\"", e.key, owner.name),
                    ),
                    None => r.error(e.key_loc, path, unknown("key", &e.key, &allowed)),
                }
            }
        }
        None => {
            // Without a known type, still catch keys that fit no type at all.
            let mut allowed: Vec<&str> = COMMON_KEYS.to_vec();
            allowed.extend(TYPES.iter().flat_map(|t| t.params.iter().map(|p| p.key)));
            map.deny_unknown(r, &allowed);
        }
    }

    let mut params = Vec::new();
    let mut to_subscription = None;
    for p in ty.map(|t| t.params).unwrap_or_default() {
        let Some(node) = map.get(p.key) else {
            if p.required {
                r.error(
                    map.loc,
                    path,
                    format!("missing required key \"{}\" for a probe of type \"{}\"", p.key, ty.map_or("", |t| t.name)),
                );
            } else {
                params.push(None);
            }
            continue;
        };
        let Some(s) = string_of(r, node, &map.path_of(p.key)) else { continue };
        match (p.check)(&s.value) {
            Ok(v) => {
                if p.key == "to_subscription" {
                    to_subscription = Some(Located { value: v.clone(), loc: s.loc, path: s.path.clone() });
                }
                params.push(Some(v));
            }
            Err(msg) => r.error(s.loc, &s.path, msg),
        }
    }

    let name = map.string(r, "name").filter(|n| match values::check_name(&n.value) {
        Ok(()) => true,
        Err(msg) => {
            r.error(n.loc, &n.path, msg);
            false
        }
    });
    let interval = map.duration(r, "interval", values::MAX_PROBE_INTERVAL);
    let timeout = map.duration(r, "timeout", values::MAX_PROBE_TIMEOUT);

    let ty = ty?;
    // A bad value is reported once; a half-built probe would only add follow-up noise.
    let bad = |key: &str, ok: bool| map.has(key) && !ok;
    if params.len() != ty.params.len()
        || bad("name", name.is_some())
        || bad("interval", interval.is_some())
        || bad("timeout", timeout.is_some())
    {
        return None;
    }
    let name_loc = name.as_ref().map_or(map.loc, |n| n.loc);
    let spec = ProbeSpec {
        name: name.map_or_else(|| ty.name.to_owned(), |n| n.value),
        kind: (ty.build)(params),
        interval,
        timeout,
        at: map.loc,
        path: path.to_owned(),
        to_subscription,
    };
    Some((spec, name_loc))
}
