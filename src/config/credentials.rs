//! The `credentials:` section: app registrations and their secrets.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::cert;
use super::check::{Located, MapView, Report, join};
use super::yaml::{Node, Value};
use super::{CertificateCredential, Credential, CredentialKind, Secret, SecretSource, values};

/// Looks up an environment variable (injectable for tests).
pub(super) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

const KEYS: &[&str] = &[
    "client_id",
    "client_secret",
    "client_secret_file",
    "client_secret_env",
    "certificate_file",
    "private_key_file",
    "federated_token_file",
    "delegated",
];

/// The secret kinds a delegated credential may have (a confidential client
/// redeeming refresh tokens); it may also have none (a public client).
const DELEGATED_KINDS: &[&str] = &["client_secret", "client_secret_file", "client_secret_env"];

/// The ways a credential can prove its identity, by the keys that select
/// them; exactly one must be given. A new kind is a new row here and a new
/// arm in [`build_kind`].
const KINDS: &[(&str, &[&str])] = &[
    ("client_secret", &["client_secret"]),
    ("client_secret_file", &["client_secret_file"]),
    ("client_secret_env", &["client_secret_env"]),
    ("certificate_file + private_key_file", &["certificate_file", "private_key_file"]),
    ("federated_token_file", &["federated_token_file"]),
];

/// The credentials that passed validation, plus every name that was
/// defined (valid or not) so that references to a broken credential are not
/// reported a second time as unknown.
pub(super) struct CredentialsSection {
    pub valid: BTreeMap<String, Credential>,
    pub defined: Vec<String>,
}

pub(super) fn parse(r: &mut Report, node: Option<&Node>, base_dir: &Path, env: EnvLookup<'_>) -> CredentialsSection {
    let mut section = CredentialsSection { valid: BTreeMap::new(), defined: Vec::new() };
    let Some(map) = node.and_then(|n| MapView::new(r, n, "credentials")) else {
        return section;
    };
    for entry in map.entries() {
        let path = join("credentials", &entry.key);
        if let Err(msg) = values::check_name(&entry.key) {
            r.error(entry.key_loc, &path, msg);
        }
        section.defined.push(entry.key.clone());
        if let Some(c) = parse_one(r, &entry.key, entry.value, &path, base_dir, env) {
            section.valid.insert(entry.key.clone(), c);
        }
    }
    section
}

fn parse_one(
    r: &mut Report,
    name: &str,
    node: &Node,
    path: &str,
    base_dir: &Path,
    env: EnvLookup<'_>,
) -> Option<Credential> {
    let map = MapView::new(r, node, path)?;
    map.deny_unknown(r, KEYS);
    let errors_before = r.len();

    let client_id = map.required_string(r, "client_id").and_then(|s| {
        // The value is not echoed: a secret pasted into the wrong key must not reach a log.
        let checked = values::check_guid(&s.value).ok();
        if checked.is_none() {
            r.error(s.loc, &s.path, format!("invalid client_id: expected a GUID ({})", values::GUID_FORM));
        }
        checked
    });

    let delegated = delegated_flag(r, &map);
    let given: Vec<usize> = (0..KINDS.len()).filter(|&i| KINDS[i].1.iter().any(|k| map.has(k))).collect();
    let one_of = KINDS.iter().map(|(label, _)| *label).collect::<Vec<_>>().join(", ");
    if delegated == Some(true) {
        for &i in &given {
            if !DELEGATED_KINDS.contains(&KINDS[i].0) {
                let key = KINDS[i].1.iter().find(|k| map.has(k)).copied().unwrap_or(KINDS[i].0);
                r.error(
                    map.loc_of(key),
                    &map.path_of(key),
                    format!(
                        "not allowed with delegated: true; a delegated credential takes at most a client secret ({})",
                        DELEGATED_KINDS.join(", ")
                    ),
                );
            }
        }
    }
    match given.as_slice() {
        // An invalid `delegated:` is reported already; whether a secret is needed is unknown.
        [] if delegated != Some(false) => {}
        [] => r.error(
            map.loc,
            path,
            format!("no secret given; set exactly one of: {one_of} (or delegated: true for a signed-in account)"),
        ),
        [_] => {}
        [_, second, ..] => {
            let labels: Vec<&str> = given.iter().map(|&i| KINDS[i].0).collect();
            let at = KINDS[*second].1.iter().find(|k| map.has(k)).and_then(|k| map.loc_of(k));
            let rule = if delegated == Some(true) {
                format!("a delegated credential takes at most one of: {}", DELEGATED_KINDS.join(", "))
            } else {
                format!("set exactly one of: {one_of}")
            };
            r.error(at, path, format!("more than one kind of secret given ({}); {rule}", labels.join(", ")));
        }
    }
    // Every given kind is checked, so that one run reports all broken files.
    let mut kinds: Vec<CredentialKind> = given.iter().filter_map(|&i| build_kind(r, &map, i, base_dir, env)).collect();
    if r.len() != errors_before || delegated.is_none() {
        return None;
    }
    let kind = match (delegated == Some(true), kinds.pop()) {
        (true, Some(CredentialKind::Secret(src))) if kinds.is_empty() => CredentialKind::Delegated(Some(src)),
        (true, None) => CredentialKind::Delegated(None),
        (false, Some(kind)) if kinds.is_empty() => kind,
        _ => return None,
    };
    Some(Credential { name: name.to_owned(), client_id: client_id?, kind })
}

/// `delegated:`, false when absent; `None` (reported) when not a boolean.
fn delegated_flag(r: &mut Report, map: &MapView<'_>) -> Option<bool> {
    let Some(node) = map.get("delegated") else {
        return Some(false);
    };
    match node.value {
        Value::Bool(b) => Some(b),
        _ => {
            r.error(node.loc, &map.path_of("delegated"), format!("expected true or false, found {}", node.kind_name()));
            None
        }
    }
}

fn build_kind(
    r: &mut Report,
    map: &MapView<'_>,
    kind: usize,
    base_dir: &Path,
    env: EnvLookup<'_>,
) -> Option<CredentialKind> {
    match KINDS[kind].0 {
        "client_secret" => {
            let s = map.required_string(r, "client_secret")?;
            if s.value.is_empty() {
                r.error(s.loc, &s.path, "must not be empty");
                return None;
            }
            Some(CredentialKind::Secret(SecretSource::Inline(Secret::new(s.value))))
        }
        "client_secret_file" => {
            let file = file_path(r, map, "client_secret_file", base_dir)?;
            let content = cert::read_file(&file.value).map_err(|msg| r.error(file.loc, &file.path, msg)).ok()?;
            if content.iter().all(|b| matches!(b, b'\n' | b'\r')) {
                r.error(file.loc, &file.path, format!("\"{}\" is empty", file.value.display()));
                return None;
            }
            Some(CredentialKind::Secret(SecretSource::File(file.value)))
        }
        "client_secret_env" => {
            let var = map.required_string(r, "client_secret_env")?;
            // Users paste the secret itself here: only a plausible name is repeated.
            let (named, note) = if values::looks_like_env_name(&var.value) {
                (format!("environment variable \"{}\"", var.value), "")
            } else {
                (
                    "the environment variable named here".to_owned(),
                    " (the name is not shown: it does not look like a variable name; \
                     client_secret_env takes the name of a variable, not the secret)",
                )
            };
            if var.value.is_empty() || var.value.contains(['=', '\0']) {
                r.error(var.loc, &var.path, format!("invalid environment variable name{note}"));
                return None;
            }
            match env(&var.value) {
                None => r.error(var.loc, &var.path, format!("{named} is not set{note}")),
                Some(v) if v.is_empty() => r.error(var.loc, &var.path, format!("{named} is empty{note}")),
                Some(_) => return Some(CredentialKind::Secret(SecretSource::Env(var.value))),
            }
            None
        }
        "certificate_file + private_key_file" => certificate(r, map, base_dir),
        "federated_token_file" => {
            let file = file_path(r, map, "federated_token_file", base_dir)?;
            cert::read_file(&file.value).map_err(|msg| r.error(file.loc, &file.path, msg)).ok()?;
            Some(CredentialKind::FederatedTokenFile(file.value))
        }
        _ => None,
    }
}

fn certificate(r: &mut Report, map: &MapView<'_>, base_dir: &Path) -> Option<CredentialKind> {
    for (key, other) in [("certificate_file", "private_key_file"), ("private_key_file", "certificate_file")] {
        if !map.has(key) {
            r.error(map.loc, &map.path, format!("missing required key \"{key}\" (needed with {other})"));
        }
    }
    let cert_file = map.has("certificate_file").then(|| file_path(r, map, "certificate_file", base_dir)).flatten();
    let key_file = map.has("private_key_file").then(|| file_path(r, map, "private_key_file", base_dir)).flatten();
    let cert = cert_file
        .as_ref()
        .and_then(|f| cert::load_certificate(&f.value).map_err(|msg| r.error(f.loc, &f.path, msg)).ok());
    let key = key_file
        .as_ref()
        .and_then(|f| cert::load_private_key(&f.value).map_err(|msg| r.error(f.loc, &f.path, msg)).ok());
    let (cert_file, key_file, cert, key) = (cert_file?, key_file?, cert?, key?);
    if cert.rsa_public_key != key.rsa_public_key {
        r.error(
            key_file.loc,
            &key_file.path,
            format!(
                "the private key \"{}\" does not belong to the certificate \"{}\"",
                key_file.value.display(),
                cert_file.value.display()
            ),
        );
        return None;
    }
    Some(CredentialKind::Certificate(CertificateCredential {
        certificate_file: cert_file.value,
        private_key_file: key_file.value,
        certificate_der: cert.der,
        private_key_pem: key.pem,
        not_after_unix: cert.not_after_unix,
    }))
}

/// A path key, resolved against the config file's directory.
fn file_path(r: &mut Report, map: &MapView<'_>, key: &str, base_dir: &Path) -> Option<Located<PathBuf>> {
    let s = map.required_string(r, key)?;
    if s.value.is_empty() {
        r.error(s.loc, &s.path, "must not be empty");
        return None;
    }
    // `secret.txt` next to `./m365mon.yml` stays `secret.txt`, not `./secret.txt`.
    let value = if base_dir == Path::new(".") { PathBuf::from(&s.value) } else { base_dir.join(&s.value) };
    Some(Located { value, loc: s.loc, path: s.path })
}
