//! Walking the YAML tree: error collection, key paths, mappings with known
//! keys, and typed access that reports "expected X, found Y".

use std::time::Duration;

use super::load::ConfigError;
use super::values;
use super::yaml::{Loc, Node, Value};

/// Collects every problem found in one file.
pub(super) struct Report {
    origin: String,
    errors: Vec<ConfigError>,
}

impl Report {
    pub fn new(origin: &str) -> Self {
        Report { origin: origin.to_owned(), errors: Vec::new() }
    }

    /// Records a problem at `loc` (if known) about the value at `path`.
    pub fn error(&mut self, loc: Option<Loc>, path: &str, message: impl Into<String>) {
        let e = ConfigError {
            origin: self.origin.clone(),
            line: loc.map(|l| l.line),
            column: loc.map(|l| l.column),
            key_path: path.to_owned(),
            message: message.into(),
        };
        // One bad value shared by many subscriptions (a default) is reported once.
        if !self.errors.contains(&e) {
            self.errors.push(e);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// How many problems were recorded so far.
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// The problems in file order (file-level ones first).
    pub fn into_sorted(mut self) -> Vec<ConfigError> {
        self.errors.sort_by_key(|e| (e.line, e.column));
        self.errors
    }
}

/// `parent.key`, or `key` at the top level.
pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

/// `parent[i]`.
pub(super) fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// A value together with where it was written, for checks that relate
/// several values (credential references, timeout against interval).
#[derive(Debug, Clone)]
pub(super) struct Located<T> {
    pub value: T,
    pub loc: Option<Loc>,
    pub path: String,
}

/// One key of a mapping.
pub(super) struct Entry<'a> {
    pub key: String,
    pub key_loc: Option<Loc>,
    pub value: &'a Node,
}

/// A YAML mapping being checked, with its key path.
pub(super) struct MapView<'a> {
    pub path: String,
    pub loc: Option<Loc>,
    entries: Vec<Entry<'a>>,
}

impl<'a> MapView<'a> {
    /// Views `node` as a mapping; null counts as an empty one. Reports a
    /// node of another type, non-scalar keys and repeated keys.
    pub fn new(r: &mut Report, node: &'a Node, path: &str) -> Option<Self> {
        let pairs = match &node.value {
            Value::Map(pairs) => pairs.as_slice(),
            Value::Null => &[],
            _ => {
                r.error(node.loc, path, format!("expected a mapping, found {}", node.kind_name()));
                return None;
            }
        };
        let mut entries: Vec<Entry<'a>> = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let Some(key) = k.scalar_text() else {
                r.error(k.loc, path, format!("keys must be plain names, found {}", k.kind_name()));
                continue;
            };
            if let Some(first) = entries.iter().find(|e| e.key == key) {
                let at = first.key_loc.map(|l| format!(" (first set at line {})", l.line)).unwrap_or_default();
                r.error(k.loc, &join(path, &key), format!("duplicate key \"{key}\"{at}"));
                continue;
            }
            entries.push(Entry { key, key_loc: k.loc, value: v });
        }
        Some(MapView { path: path.to_owned(), loc: node.loc, entries })
    }

    pub fn entries(&self) -> &[Entry<'a>] {
        &self.entries
    }

    /// Reports every key not in `allowed`, suggesting the closest allowed one.
    pub fn deny_unknown(&self, r: &mut Report, allowed: &[&str]) {
        for e in &self.entries {
            if !allowed.contains(&e.key.as_str()) {
                r.error(e.key_loc, &self.path, unknown("key", &e.key, allowed));
            }
        }
    }

    /// The entry for `key`, also when its value is null.
    pub fn entry(&self, key: &str) -> Option<&Entry<'a>> {
        self.entries.iter().find(|e| e.key == key)
    }

    /// The value of `key`; an explicit null counts as not set.
    pub fn get(&self, key: &str) -> Option<&'a Node> {
        self.entry(key).map(|e| e.value).filter(|v| !v.is_null())
    }

    pub fn has(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn path_of(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Where `key` is written, or the mapping itself when it is absent.
    pub fn loc_of(&self, key: &str) -> Option<Loc> {
        self.entry(key).and_then(|e| e.key_loc).or(self.loc)
    }

    /// The value of a required key, reporting its absence.
    pub fn required(&self, r: &mut Report, key: &str) -> Option<&'a Node> {
        match self.entry(key) {
            Some(e) if !e.value.is_null() => Some(e.value),
            Some(e) => {
                r.error(e.key_loc, &self.path_of(key), "missing value");
                None
            }
            None => {
                r.error(self.loc, &self.path, format!("missing required key \"{key}\""));
                None
            }
        }
    }

    /// An optional string.
    pub fn string(&self, r: &mut Report, key: &str) -> Option<Located<String>> {
        let node = self.get(key)?;
        self.as_string(r, key, node)
    }

    /// The required `name` key: a valid name not used by an earlier entry of
    /// the same list (`seen` maps names to the path that used them first).
    pub fn unique_name(
        &self,
        r: &mut Report,
        seen: &mut std::collections::HashMap<String, String>,
        what: &str,
    ) -> Option<Located<String>> {
        self.required_string(r, "name").filter(|n| {
            if let Err(msg) = super::values::check_name(&n.value) {
                r.error(n.loc, &n.path, msg);
                return false;
            }
            if let Some(first) = seen.get(&n.value) {
                r.error(n.loc, &n.path, format!("duplicate {what} name \"{}\" (also used by {first})", n.value));
                return false;
            }
            seen.insert(n.value.clone(), self.path.clone());
            true
        })
    }

    /// A required string.
    pub fn required_string(&self, r: &mut Report, key: &str) -> Option<Located<String>> {
        let node = self.required(r, key)?;
        self.as_string(r, key, node)
    }

    fn as_string(&self, r: &mut Report, key: &str, node: &Node) -> Option<Located<String>> {
        string_of(r, node, &self.path_of(key))
    }

    /// An optional duration (Prometheus syntax, greater than zero, at most `max`).
    pub fn duration(&self, r: &mut Report, key: &str, max: Duration) -> Option<Located<Duration>> {
        let s = self.string(r, key)?;
        match values::parse_duration(&s.value) {
            Ok(d) if d > max => {
                let msg = format!("invalid duration \"{}\": must be at most {}", s.value, values::format_duration(max));
                r.error(s.loc, &s.path, msg);
                None
            }
            Ok(d) => Some(Located { value: d, loc: s.loc, path: s.path }),
            Err(msg) => {
                r.error(s.loc, &s.path, msg);
                None
            }
        }
    }

    /// An optional list; its items come with their paths.
    pub fn list(&self, r: &mut Report, key: &str) -> Option<Vec<(String, &'a Node)>> {
        let node = self.get(key)?;
        list_of(r, node, &self.path_of(key))
    }
}

/// A scalar as a string; reports lists and mappings.
pub(super) fn string_of(r: &mut Report, node: &Node, path: &str) -> Option<Located<String>> {
    match node.scalar_text() {
        Some(value) => Some(Located { value, loc: node.loc, path: path.to_owned() }),
        None => {
            r.error(node.loc, path, format!("expected a string, found {}", node.kind_name()));
            None
        }
    }
}

/// The items of a list (null is an empty list), each with its path.
pub(super) fn list_of<'a>(r: &mut Report, node: &'a Node, path: &str) -> Option<Vec<(String, &'a Node)>> {
    match &node.value {
        Value::Seq(items) => Some(items.iter().enumerate().map(|(i, n)| (index(path, i), n)).collect()),
        Value::Null => Some(Vec::new()),
        _ => {
            r.error(node.loc, path, format!("expected a list, found {}", node.kind_name()));
            None
        }
    }
}

/// `unknown WHAT "x"; did you mean "y"?`, or the list of what is known.
pub(super) fn unknown(what: &str, given: &str, known: &[&str]) -> String {
    match suggest(given, known) {
        Some(s) => format!("unknown {what} \"{given}\"; did you mean \"{s}\"?"),
        None if known.is_empty() => format!("unknown {what} \"{given}\""),
        None => format!("unknown {what} \"{given}\"; expected one of: {}", known.join(", ")),
    }
}

/// The known word closest to `given`, if it is close enough to be a typo:
/// at most one edit per three characters (at least one), ignoring case.
pub(super) fn suggest<'k>(given: &str, known: &[&'k str]) -> Option<&'k str> {
    let given = given.to_lowercase();
    let limit = (given.chars().count() / 3).clamp(1, 3);
    known
        .iter()
        .map(|k| (edit_distance(&given, &k.to_lowercase()), *k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance: insertions, deletions, substitutions
/// and swaps of neighbours each cost one.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let width = b.len() + 1;
    let mut d = vec![0usize; (a.len() + 1) * width];
    for i in 0..=a.len() {
        d[i * width] = i;
    }
    for (j, cell) in d.iter_mut().enumerate().take(width) {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best =
                (d[(i - 1) * width + j] + 1).min(d[i * width + j - 1] + 1).min(d[(i - 1) * width + j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[(i - 2) * width + j - 2] + 1);
            }
            d[i * width + j] = best;
        }
    }
    d[a.len() * width + b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_catch_typos_only() {
        let keys = ["type", "name", "interval", "timeout", "mailbox"];
        assert_eq!(suggest("mailbx", &keys), Some("mailbox"));
        assert_eq!(suggest("tpye", &keys), Some("type"));
        assert_eq!(suggest("Name", &keys), Some("name"));
        assert_eq!(suggest("intervall", &keys), Some("interval"));
        assert_eq!(suggest("colour", &keys), None);
        assert_eq!(suggest("x", &keys), None);
    }

    #[test]
    fn edit_distance_counts_swaps_as_one() {
        assert_eq!(edit_distance("abc", "abc"), 0);
        assert_eq!(edit_distance("abc", "acb"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
