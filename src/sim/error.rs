//! The simulator's error type.

use std::fmt;

/// Why a world or scenario file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The file could not be read.
    #[error("{path}: cannot read: {source}")]
    Read {
        /// The path as given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid YAML, does not have the expected shape, or has
    /// a value that does not make sense.
    #[error("{0}")]
    Invalid(Located),
}

/// A message tied to a place in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    /// The file path as given, or a name such as `<built-in demo world>`.
    pub origin: String,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.origin)?;
        if let Some(l) = self.line {
            write!(f, ":{l}")?;
            if let Some(c) = self.column {
                write!(f, ":{c}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl SimError {
    /// An error at a known place; a line of 0 means "unknown".
    pub(crate) fn at(origin: &str, loc: Option<serde_saphyr::Location>, message: impl Into<String>) -> Self {
        let (line, column) = match loc {
            Some(l) if l.line() > 0 => (Some(l.line()), Some(l.column()).filter(|c| *c > 0)),
            _ => (None, None),
        };
        SimError::Invalid(Located { origin: origin.to_string(), line, column, message: message.into() })
    }

    /// Converts a serde-saphyr error, keeping its line and column.
    pub(crate) fn from_yaml(origin: &str, err: &serde_saphyr::Error) -> Self {
        // The rendered message repeats the location and a snippet; keep the plain message.
        let message = err.without_snippet().to_string();
        let message = strip_location_suffix(&message);
        SimError::at(origin, err.location(), message)
    }
}

/// serde-saphyr appends " at line L column C" to some messages; the location
/// is already in front of ours.
fn strip_location_suffix(msg: &str) -> String {
    let first = msg.lines().next().unwrap_or(msg).trim();
    match first.rfind(" at line ") {
        Some(i) => first[..i].to_string(),
        None => first.to_string(),
    }
}
