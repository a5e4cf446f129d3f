//! The exporter-toolkit web configuration file (`--web.config.file`): reading,
//! YAML parsing with file:line:column errors, and validation.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use aws_lc_rs::digest;
use hyper::header::{HeaderName, HeaderValue};
use serde::Deserialize;
use serde_saphyr::{Location, MessageFormatter, Spanned};

use super::tls;

/// Why a web config file cannot be used. Displays as
/// `PATH[:LINE:COLUMN]: [KEY: ]MESSAGE`; never contains key material or
/// password hashes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct WebConfigError {
    /// The web config file, as given.
    pub path: PathBuf,
    /// 1-based line of the offending YAML node, when known.
    pub line: Option<u64>,
    /// 1-based column of the offending YAML node, when known.
    pub column: Option<u64>,
    /// Dotted key, e.g. `tls_server_config.client_ca_file`; empty for the whole file.
    pub key: String,
    /// What is wrong, and where possible how to fix it.
    pub message: String,
}

impl fmt::Display for WebConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// A validated web config: TLS (already built into a rustls server config),
/// HTTP/2, response headers and basic auth users.
#[derive(Clone)]
pub struct WebConfig {
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    http2: bool,
    headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) users: Arc<BTreeMap<String, String>>,
    /// SHA-256 over the file and every file it references, to skip rebuilding
    /// an unchanged config on reload.
    fingerprint: [u8; 32],
}

impl fmt::Debug for WebConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Password hashes and key material stay out of Debug output.
        f.debug_struct("WebConfig")
            .field("tls", &self.tls.is_some())
            .field("http2", &self.http2)
            .field("headers", &self.headers)
            .field("basic_auth_users", &self.users.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl WebConfig {
    /// Reads and validates a web config file, including the certificate, key
    /// and CA files it names (relative paths are resolved against the file's
    /// directory, as the toolkit does).
    pub fn load(path: &Path) -> Result<WebConfig, WebConfigError> {
        Self::load_reusing(path, None).map(Arc::unwrap_or_clone)
    }

    /// Like [`WebConfig::load`], but returns `previous` itself when neither the
    /// file nor any file it references changed, so TLS session state survives.
    pub(crate) fn load_reusing(
        path: &Path,
        previous: Option<&Arc<WebConfig>>,
    ) -> Result<Arc<WebConfig>, WebConfigError> {
        let at = ErrorSite::new(path);
        let text = std::fs::read_to_string(path)
            .map_err(|e| at.err(None, "", format!("cannot read the web config file: {e}")))?;
        let raw = parse_yaml(&text, &at)?;
        let base_dir = path.parent().unwrap_or(Path::new("."));
        let tls_sources = match &raw.tls_server_config {
            Some(t) => tls::read_sources(t, base_dir, &at)?,
            None => None,
        };

        let mut ctx = digest::Context::new(&digest::SHA256);
        hash_part(&mut ctx, text.as_bytes());
        if let Some(s) = &tls_sources {
            s.hash_into(&mut |b| hash_part(&mut ctx, b));
        }
        let mut fingerprint = [0u8; 32];
        fingerprint.copy_from_slice(ctx.finish().as_ref());
        if let Some(prev) = previous
            && prev.fingerprint == fingerprint
        {
            return Ok(prev.clone());
        }

        let http = raw.http_server_config.unwrap_or_default();
        let http2 = http.http2.unwrap_or(true);
        let tls = match (&raw.tls_server_config, tls_sources) {
            (Some(t), Some(sources)) => Some(Arc::new(tls::build(t, sources, http2, &at)?)),
            _ => None,
        };
        let headers = validate_headers(http.headers.unwrap_or_default(), &at)?;
        let users = validate_users(raw.basic_auth_users.unwrap_or_default(), &at)?;
        Ok(Arc::new(WebConfig { tls, http2, headers, users: Arc::new(users), fingerprint }))
    }

    /// Whether connections are served over TLS.
    pub fn tls_enabled(&self) -> bool {
        self.tls.is_some()
    }

    /// Whether HTTP/2 is offered (`http_server_config.http2`, default true).
    pub fn http2(&self) -> bool {
        self.http2
    }

    /// Headers added to every response (`http_server_config.headers`).
    pub fn headers(&self) -> &[(HeaderName, HeaderValue)] {
        &self.headers
    }

    /// Whether requests need HTTP basic auth (`basic_auth_users` is not empty).
    pub fn basic_auth_enabled(&self) -> bool {
        !self.users.is_empty()
    }

    /// The user names allowed by basic auth, sorted.
    pub fn basic_auth_user_names(&self) -> impl Iterator<Item = &str> {
        self.users.keys().map(String::as_str)
    }
}

fn hash_part(ctx: &mut digest::Context, bytes: &[u8]) {
    ctx.update(&(bytes.len() as u64).to_le_bytes());
    ctx.update(bytes);
}

/// Builds errors that name the web config file.
pub(crate) struct ErrorSite<'a> {
    path: &'a Path,
}

impl<'a> ErrorSite<'a> {
    pub(crate) fn new(path: &'a Path) -> Self {
        ErrorSite { path }
    }

    /// An error at `loc` (if known) about `key`.
    pub(crate) fn err(&self, loc: Option<Location>, key: &str, message: impl Into<String>) -> WebConfigError {
        let loc = loc.filter(|l| l.line() > 0);
        WebConfigError {
            path: self.path.to_path_buf(),
            line: loc.map(|l| l.line()),
            column: loc.map(|l| l.column()).filter(|c| *c > 0),
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// An error about the value `v` of `key`.
    pub(crate) fn at<T>(&self, v: &Spanned<T>, key: &str, message: impl Into<String>) -> WebConfigError {
        self.err(Some(v.referenced), key, message)
    }
}

/// The file as written. Field names and meanings follow the toolkit's
/// `docs/web-configuration.md`; unknown keys are errors, as with promtool.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    tls_server_config: Option<RawTls>,
    #[serde(default)]
    http_server_config: Option<RawHttp>,
    #[serde(default)]
    basic_auth_users: Option<BTreeMap<String, Spanned<String>>>,
}

/// `tls_server_config` as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    #[serde(default)]
    pub(crate) cert_file: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) cert: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) key_file: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) key: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) client_auth_type: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) client_ca_file: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) client_ca: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) client_allowed_sans: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub(crate) min_version: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) max_version: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) cipher_suites: Option<Vec<Spanned<String>>>,
    #[serde(default)]
    pub(crate) prefer_server_cipher_suites: Option<bool>,
    #[serde(default)]
    pub(crate) curve_preferences: Option<Vec<Spanned<String>>>,
}

/// `http_server_config` as written.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    #[serde(default)]
    http2: Option<bool>,
    #[serde(default)]
    headers: Option<BTreeMap<String, Spanned<String>>>,
}

fn parse_yaml(text: &str, at: &ErrorSite<'_>) -> Result<RawConfig, WebConfigError> {
    // An empty file (or one with only comments) is valid: plain HTTP, no auth.
    match serde_saphyr::from_str::<Option<RawConfig>>(text) {
        Ok(raw) => Ok(raw.unwrap_or_default()),
        Err(e) => {
            let e = e.without_snippet();
            let message: String = serde_saphyr::DefaultMessageFormatter
                .format_message(e)
                .chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect();
            Err(at.err(e.location(), "", message))
        }
    }
}

/// Headers the toolkit lets a web config set, with the values it allows
/// (`None`: any value).
const ALLOWED_HEADERS: &[(&str, Option<&[&str]>)] = &[
    ("Strict-Transport-Security", None),
    ("X-Content-Type-Options", Some(&["nosniff"])),
    ("X-Frame-Options", Some(&["deny", "sameorigin"])),
    ("X-XSS-Protection", None),
    ("Content-Security-Policy", None),
];

fn validate_headers(
    headers: BTreeMap<String, Spanned<String>>,
    at: &ErrorSite<'_>,
) -> Result<Vec<(HeaderName, HeaderValue)>, WebConfigError> {
    let mut out = Vec::with_capacity(headers.len());
    for (name, value) in headers {
        let key = format!("http_server_config.headers.{name}");
        let Some((_, allowed)) = ALLOWED_HEADERS.iter().find(|(n, _)| *n == name) else {
            let names: Vec<&str> = ALLOWED_HEADERS.iter().map(|(n, _)| *n).collect();
            return Err(at.at(
                &value,
                &key,
                format!("this header cannot be configured; allowed headers: {}", names.join(", ")),
            ));
        };
        if let Some(allowed) = allowed
            && !allowed.contains(&value.value.as_str())
        {
            return Err(at.at(
                &value,
                &key,
                format!("invalid value {:?}; expected one of: {}", value.value, allowed.join(", ")),
            ));
        }
        let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_str(&value.value)) else {
            return Err(at.at(&value, &key, "the value is not a valid HTTP header value"));
        };
        out.push((n, v));
    }
    Ok(out)
}

fn validate_users(
    users: BTreeMap<String, Spanned<String>>,
    at: &ErrorSite<'_>,
) -> Result<BTreeMap<String, String>, WebConfigError> {
    let mut out = BTreeMap::new();
    for (user, hash) in users {
        let key = format!("basic_auth_users.{user}");
        let ok = hash.value.parse::<bcrypt::HashParts>().is_ok_and(|p| (4..=31).contains(&p.get_cost()));
        if !ok {
            return Err(at.at(
                &hash,
                &key,
                "the value is not a bcrypt hash; make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'",
            ));
        }
        out.insert(user, hash.value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_text(text: &str) -> Result<WebConfig, WebConfigError> {
        let p = std::env::temp_dir().join(format!("m365mon-webcfg-{}.yml", uuid::Uuid::new_v4()));
        std::fs::write(&p, text).expect("write");
        let r = WebConfig::load(&p);
        let _ = std::fs::remove_file(&p);
        r
    }

    #[test]
    fn null_sections_and_empty_values_mean_unset() {
        let c = load_text("tls_server_config:\nhttp_server_config:\nbasic_auth_users:\n").expect("valid");
        assert!(!c.tls_enabled() && c.http2() && !c.basic_auth_enabled());
        let c = load_text("tls_server_config:\n  cert_file: \"\"\n  min_version: TLS13\n").expect("valid");
        assert!(!c.tls_enabled(), "as in the toolkit, no certificate means plain HTTP");
    }

    #[test]
    fn yaml_1_1_booleans_are_accepted_as_by_promtool() {
        let c = load_text("http_server_config:\n  http2: no\n").expect("valid");
        assert!(!c.http2());
    }

    #[test]
    fn header_values_may_be_plain_numbers() {
        let c = load_text("http_server_config:\n  headers:\n    X-XSS-Protection: 0\n").expect("valid");
        assert_eq!(c.headers()[0].1, "0");
    }

    #[test]
    fn a_cert_file_wins_over_an_inline_cert() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
        let c = load_text(&format!(
            "tls_server_config:\n  cert_file: {dir}/server.pem\n  cert: not pem\n  key_file: {dir}/server.key\n"
        ))
        .expect("valid");
        assert!(c.tls_enabled());
    }

    #[test]
    fn debug_shows_no_hashes() {
        let hash = "$2y$04$EVXrWcLVLulBzhQxqUlEVeyLr4VRULj1TpQ3TFFq.0MECOwYW37vO";
        let c = load_text(&format!("basic_auth_users:\n  alice: {hash}\n")).expect("valid");
        let dbg = format!("{c:?}");
        assert!(dbg.contains("alice") && !dbg.contains("$2y$"), "{dbg}");
    }

    #[test]
    fn an_unreadable_file_is_named() {
        let p = Path::new("/nonexistent/web.yml");
        let e = WebConfig::load(p).expect_err("missing");
        assert_eq!(
            e.to_string(),
            "/nonexistent/web.yml: cannot read the web config file: No such file or directory (os error 2)"
        );
    }
}
