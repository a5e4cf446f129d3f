//! Reading and validating the YAML file: the entry points and the error type.

use std::fmt;
use std::path::Path;

use super::check::{MapView, Report};
use super::{Config, credentials, discovery, global, subscriptions, yaml};

/// One problem in a config file, located as precisely as the parser allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file path as given (or a name such as `<built-in demo config>`).
    pub origin: String,
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// Dotted key path, e.g. `subscriptions[2].probes[0].mailbox`; empty for the whole file.
    pub key_path: String,
    /// What is wrong, and where possible how to fix it.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.origin)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        if !self.key_path.is_empty() {
            write!(f, ": {}", self.key_path)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// All problems found in one file (never empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Top-level keys. A new section is a new entry here and a parser module.
const TOP_KEYS: &[&str] = &["global", "credentials", "subscription_defaults", "subscriptions", "discovery"];

/// Reads, parses and validates a config file. Relative paths inside it are
/// resolved against the file's directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let origin = path.display().to_string();
    let file_error = |message: String| {
        ConfigErrors(vec![ConfigError {
            origin: origin.clone(),
            line: None,
            column: None,
            key_path: String::new(),
            message,
        }])
    };
    let bytes = std::fs::read(path).map_err(|e| file_error(format!("cannot read config file: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
        let line = valid.iter().filter(|&&b| b == b'\n').count() + 1;
        ConfigErrors(vec![ConfigError {
            origin: origin.clone(),
            line: Some(line),
            column: None,
            key_path: String::new(),
            message: "the file is not valid UTF-8".to_owned(),
        }])
    })?;
    let base_dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    parse_str(&text, &origin, base_dir)
}

/// Parses and validates config text. `origin` names it in errors; relative
/// paths inside it are resolved against `base_dir`.
pub fn parse_str(text: &str, origin: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    parse_str_with_env(text, origin, base_dir, &|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
}

/// Like [`parse_str`], with `env` standing in for the process environment
/// when `client_secret_env` variables are checked (tests cannot safely set
/// variables of their own process).
pub fn parse_str_with_env(
    text: &str,
    origin: &str,
    base_dir: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Config, ConfigErrors> {
    let mut r = Report::new(origin);
    let root = match yaml::parse(text) {
        Ok(root) => root,
        Err(e) => {
            r.error(e.loc, "", format!("invalid YAML: {}", e.message));
            return Err(ConfigErrors(r.into_sorted()));
        }
    };
    let Some(top) = MapView::new(&mut r, &root, "") else {
        return Err(ConfigErrors(r.into_sorted()));
    };
    top.deny_unknown(&mut r, TOP_KEYS);

    let global = global::parse(&mut r, top.get("global"));
    let credentials = credentials::parse(&mut r, top.get("credentials"), base_dir, env);
    let defaults = subscriptions::parse_defaults(&mut r, top.get("subscription_defaults"), &credentials);
    let subscriptions = subscriptions::parse_list(&mut r, top.get("subscriptions"), &global, &credentials, &defaults);
    let discovery = discovery::parse_list(&mut r, top.get("discovery"), &global, &credentials, &defaults);

    if !r.is_empty() {
        return Err(ConfigErrors(r.into_sorted()));
    }
    Ok(Config { global: global.global, credentials: credentials.valid, subscriptions, discovery })
}
