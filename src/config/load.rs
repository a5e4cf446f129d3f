//! Reading and validating the YAML file. (Stub: to be implemented.)

use std::fmt;
use std::path::Path;

use super::{Config, Subscription};

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

/// Reads, parses and validates a config file. Relative paths inside it are
/// resolved against the file's directory.
pub fn load_file(path: &Path) -> Result<Config, ConfigErrors> {
    let _ = path;
    todo!("config loading")
}

/// Parses and validates config text. `origin` names it in errors; relative
/// paths inside it are resolved against `base_dir`.
pub fn parse_str(text: &str, origin: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let _ = (text, origin, base_dir);
    todo!("config parsing")
}

impl Config {
    /// The short summary that `m365mon check-config` prints.
    pub fn summary(&self) -> String {
        todo!("summary")
    }

    /// The effective settings of one subscription as YAML, secrets shown as
    /// `<secret>` (for `/probe?debug=true`).
    pub fn render_redacted(&self, sub: &Subscription) -> String {
        let _ = sub;
        todo!("redacted rendering")
    }
}
