//! `subscription_defaults:` and `subscriptions:`, resolved into
//! [`Subscription`]s with every default applied.

use std::collections::HashMap;
use std::time::Duration;

use super::check::{Located, MapView, Report, list_of, string_of, unknown};
use super::credentials::CredentialsSection;
use super::global::GlobalSection;
use super::probes::{self, DEFAULT_PROBES, ProbeSpec};
use super::values::{self, format_duration};
use super::yaml::Node;
use super::{ProbeConfig, Subscription};

const SUBSCRIPTION_KEYS: &[&str] = &["name", "tenant_id", "credential", "admins", "probe_interval", "probes"];
/// Keys of `subscription_defaults`, also those of a discovery's `subscription_template`.
pub(super) const DEFAULTS_KEYS: &[&str] = &["credential", "admins", "probes", "probe_interval"];

/// What `subscription_defaults` fills in. A field that was given but is
/// invalid is `Err(())`: already reported, and subscriptions relying on it
/// are not checked further against it.
#[derive(Default)]
pub(super) struct Defaults {
    credential: Option<Result<Located<String>, ()>>,
    admins: Option<Result<Vec<String>, ()>>,
    probes: Option<Result<Vec<ProbeSpec>, ()>>,
    probe_interval: Option<Result<Located<Duration>, ()>>,
}

pub(super) fn parse_defaults(r: &mut Report, node: Option<&Node>, creds: &CredentialsSection) -> Defaults {
    let Some(map) = node.and_then(|n| MapView::new(r, n, "subscription_defaults")) else {
        return Defaults::default();
    };
    map.deny_unknown(r, DEFAULTS_KEYS);
    let given = |key: &str| map.has(key);
    Defaults {
        credential: given("credential").then(|| credential_ref(r, &map, creds).ok_or(())),
        admins: given("admins").then(|| admins(r, &map).ok_or(())),
        probes: given("probes")
            .then(|| map.get("probes").and_then(|n| probes::parse_list(r, n, &map.path_of("probes"))).ok_or(())),
        probe_interval: given("probe_interval")
            .then(|| map.duration(r, "probe_interval", values::MAX_PROBE_INTERVAL).ok_or(())),
    }
}

pub(super) fn parse_list(
    r: &mut Report,
    node: Option<&Node>,
    global: &GlobalSection,
    creds: &CredentialsSection,
    defaults: &Defaults,
) -> Vec<Subscription> {
    let Some(items) = node.and_then(|n| list_of(r, n, "subscriptions")) else {
        return Vec::new();
    };
    let mut subs = Vec::new();
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut refs = Vec::new();
    for (path, item) in items {
        let Some(map) = MapView::new(r, item, &path) else { continue };
        map.deny_unknown(r, SUBSCRIPTION_KEYS);
        let name = map.unique_name(r, &mut seen, "subscription");
        if let Some(sub) = parse_one(r, &map, name, global, creds, defaults, &mut refs) {
            subs.push(sub);
        }
    }
    // A reference may point forward in the file, so it is checked once all names are known.
    let mut known: Vec<&str> = seen.keys().map(String::as_str).collect();
    known.sort_unstable();
    for to in refs.iter().filter(|to| !seen.contains_key(&to.value)) {
        r.error(to.loc, &to.path, unknown("subscription", &to.value, &known));
    }
    subs
}

fn parse_one(
    r: &mut Report,
    map: &MapView<'_>,
    name: Option<Located<String>>,
    global: &GlobalSection,
    creds: &CredentialsSection,
    defaults: &Defaults,
    refs: &mut Vec<Located<String>>,
) -> Option<Subscription> {
    let tenant_id = map
        .required_string(r, "tenant_id")
        .and_then(|t| values::check_tenant(&t.value).map_err(|msg| r.error(t.loc, &t.path, msg)).ok());
    let settings = settings(r, map, global, creds, defaults, None, refs);
    let Settings { credential, admins, probes } = settings?;
    Some(Subscription { name: name?.value, tenant_id: tenant_id?, credential, admins, probes })
}

/// What a subscription (or a discovery's `subscription_template`) resolves
/// to besides its name and tenant.
pub(super) struct Settings {
    pub credential: String,
    pub admins: Vec<String>,
    pub probes: Vec<ProbeConfig>,
}

/// Resolves `credential`, `admins`, `probe_interval` and `probes` of `map`
/// with `subscription_defaults` and `global` as fallbacks. Without a
/// credential in `map` or the defaults, `fallback_credential` applies; if
/// that is `None` too, the missing key is reported. `to_subscription`
/// references are collected in `refs`, to be checked once all names are known.
pub(super) fn settings(
    r: &mut Report,
    map: &MapView<'_>,
    global: &GlobalSection,
    creds: &CredentialsSection,
    defaults: &Defaults,
    fallback_credential: Option<&str>,
    refs: &mut Vec<Located<String>>,
) -> Option<Settings> {
    let credential = if map.has("credential") {
        credential_ref(r, map, creds).map(|c| c.value)
    } else {
        match (&defaults.credential, fallback_credential) {
            (Some(c), _) => c.clone().ok().map(|c| c.value),
            (None, Some(f)) => Some(f.to_owned()),
            (None, None) => {
                r.error(map.loc, &map.path, "missing required key \"credential\" (subscription_defaults sets none)");
                None
            }
        }
    };

    let admins = if map.has("admins") {
        admins(r, map)
    } else {
        match &defaults.admins {
            Some(a) => a.clone().ok(),
            None => Some(Vec::new()),
        }
    };

    let interval = if map.has("probe_interval") {
        map.duration(r, "probe_interval", values::MAX_PROBE_INTERVAL)
    } else {
        match &defaults.probe_interval {
            Some(i) => i.clone().ok(),
            None => Some(global.interval.clone()),
        }
    };

    let specs = if map.has("probes") {
        map.get("probes").and_then(|n| probes::parse_list(r, n, &map.path_of("probes")))
    } else {
        match &defaults.probes {
            Some(p) => p.clone().ok(),
            None => Some(
                DEFAULT_PROBES
                    .iter()
                    .map(|k| ProbeSpec {
                        name: k.type_name().to_owned(),
                        kind: k.clone(),
                        interval: None,
                        timeout: None,
                        at: None,
                        path: String::new(),
                        to_subscription: None,
                    })
                    .collect(),
            ),
        }
    };

    let interval = interval?;
    refs.extend(specs.iter().flatten().filter_map(|p| p.to_subscription.clone()));
    let probes = specs?.into_iter().filter_map(|spec| effective(r, spec, &interval, global)).collect::<Vec<_>>();
    Some(Settings { credential: credential?, admins: admins?, probes })
}

/// Applies the interval and timeout fallbacks and checks the timeout fits.
fn effective(
    r: &mut Report,
    spec: ProbeSpec,
    sub_interval: &Located<Duration>,
    global: &GlobalSection,
) -> Option<ProbeConfig> {
    let interval = spec.interval.unwrap_or_else(|| sub_interval.clone());
    let timeout = match (spec.timeout, spec.kind.default_timeout()) {
        (Some(t), _) => t,
        (None, Some(default)) => {
            if default > interval.value {
                r.error(
                    spec.at,
                    &spec.path,
                    format!(
                        "a {} probe waits up to its timeout (default {}) and runs at most once per interval, \
                         but the interval is {} ({}); set \"interval\" to {} or more, or a shorter \"timeout\"",
                        spec.kind.type_name(),
                        format_duration(default),
                        format_duration(interval.value),
                        source(&interval, &spec.path),
                        format_duration(default)
                    ),
                );
                return None;
            }
            Located { value: default, loc: None, path: format!("{}.timeout", spec.path) }
        }
        (None, None) => global.timeout.clone(),
    };
    if timeout.value > interval.value {
        // Point at the more specific of the two settings: that is the one to change.
        let (at, other) =
            if specificity(&timeout) >= specificity(&interval) { (&timeout, &interval) } else { (&interval, &timeout) };
        let at = if at.loc.is_some() { at } else { other };
        r.error(
            at.loc,
            &at.path,
            format!(
                "timeout {} ({}) is longer than the interval {} ({})",
                format_duration(timeout.value),
                source(&timeout, &at.path),
                format_duration(interval.value),
                source(&interval, &at.path)
            ),
        );
        return None;
    }
    Some(ProbeConfig { name: spec.name, kind: spec.kind, interval: interval.value, timeout: timeout.value })
}

/// Probe settings beat subscription settings, which beat defaults, which
/// beat `global`.
fn specificity(v: &Located<Duration>) -> u8 {
    let probe = v.path.contains(".probes[");
    // A discovery's subscription_template stands where a subscription would.
    let own = v.path.starts_with("subscriptions[") || v.path.starts_with("discovery[");
    match (own, v.path.starts_with("subscription_defaults"), probe) {
        (true, _, true) => 4,
        (false, true, true) => 3,
        (true, _, false) => 2,
        (false, true, false) => 1,
        _ => 0,
    }
}

/// Where a value came from, as the message shows it.
fn source(v: &Located<Duration>, reported_at: &str) -> String {
    if v.loc.is_none() {
        format!("default of {}", v.path)
    } else if v.path == reported_at {
        "set here".to_owned()
    } else {
        v.path.clone()
    }
}

/// The `credential` key of `map`, checked to name a defined credential.
pub(super) fn credential_ref(r: &mut Report, map: &MapView<'_>, creds: &CredentialsSection) -> Option<Located<String>> {
    let c = map.required_string(r, "credential")?;
    if creds.defined.contains(&c.value) {
        return Some(c);
    }
    let known: Vec<&str> = creds.defined.iter().map(String::as_str).collect();
    let msg = if known.is_empty() {
        format!("unknown credential \"{}\"; the credentials section defines none", c.value)
    } else {
        unknown("credential", &c.value, &known)
    };
    r.error(c.loc, &c.path, msg);
    None
}

/// The `admins` list of `map`: e-mail addresses, lowercased, first
/// occurrence kept.
fn admins(r: &mut Report, map: &MapView<'_>) -> Option<Vec<String>> {
    let items = map.list(r, "admins")?;
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    let mut ok = true;
    for (path, item) in &items {
        let Some(s) = string_of(r, item, path) else {
            ok = false;
            continue;
        };
        match values::check_email(&s.value) {
            Ok(a) if !out.contains(&a) => out.push(a),
            Ok(_) => {}
            Err(msg) => {
                r.error(s.loc, &s.path, msg);
                ok = false;
            }
        }
    }
    ok.then_some(out)
}
