//! The YAML document as a located tree, parsed with serde-saphyr.
//!
//! Validation walks this tree instead of deriving `Deserialize` for the
//! model: serde stops at the first problem, while a tree lets the checker
//! report every unknown key, bad value and missing field in one run, each
//! with its own line and column.

use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_saphyr::{MessageFormatter, Spanned, UserMessageFormatter};

/// A 1-based position in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Loc {
    pub line: usize,
    pub column: usize,
}

/// One YAML node with the place it was written.
#[derive(Debug)]
pub(super) struct Node {
    pub value: Value,
    /// Where the node is used (for an alias: the `*name`).
    pub loc: Option<Loc>,
    /// For numbers and booleans: the text as written, so that a string field
    /// such as `name: 2024` keeps `2024` rather than a re-printed number.
    raw: Option<String>,
}

/// The shapes a YAML node can take after tag resolution.
#[derive(Debug)]
pub(super) enum Value {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Node>),
    Map(Vec<(Node, Node)>),
}

impl Node {
    /// The text of a scalar (strings as they are, numbers and booleans as
    /// written); `None` for null, lists and mappings.
    pub fn scalar_text(&self) -> Option<String> {
        match &self.value {
            Value::Str(s) => Some(s.clone()),
            Value::Bool(b) => Some(self.raw.clone().unwrap_or_else(|| b.to_string())),
            Value::Int(i) => Some(self.raw.clone().unwrap_or_else(|| i.to_string())),
            Value::Float(f) => Some(self.raw.clone().unwrap_or_else(|| f.to_string())),
            Value::Null | Value::Seq(_) | Value::Map(_) => None,
        }
    }

    /// `a string`, `a list`, ... for "expected X, found Y" messages.
    pub fn kind_name(&self) -> &'static str {
        match self.value {
            Value::Null => "nothing (null)",
            Value::Bool(_) => "a boolean",
            Value::Int(_) => "an integer",
            Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Seq(_) => "a list",
            Value::Map(_) => "a mapping",
        }
    }

    /// A null node with no place in the file (an absent optional section).
    pub fn null() -> Node {
        Node { value: Value::Null, loc: None, raw: None }
    }

    pub fn is_null(&self) -> bool {
        matches!(self.value, Value::Null)
    }
}

/// A syntax error from the YAML parser.
pub(super) struct SyntaxError {
    pub loc: Option<Loc>,
    pub message: String,
}

/// Parses one YAML document. An empty document is a null node.
pub(super) fn parse(text: &str) -> Result<Node, SyntaxError> {
    let mut options = serde_saphyr::Options::default();
    // Duplicate keys reach the checker, which reports them with both places.
    options.duplicate_keys = serde_saphyr::DuplicateKeyPolicy::PassThrough;
    // `no`, `on`, `y` stay strings (YAML 1.2), so `name: no` means "no".
    options.strict_booleans = true;
    options.non_finite_float_policy = serde_saphyr::NonFiniteFloatPolicy::AsString;
    options.with_snippet = false;
    // The defaults suit untrusted input; a config of thousands of tenants
    // that share one probe list through an anchor must still load.
    let mut budget = serde_saphyr::Budget::default();
    budget.max_nodes = 10_000_000;
    budget.max_events = 40_000_000;
    budget.max_recorded_anchor_events = 40_000_000;
    budget.enforce_alias_anchor_ratio = false;
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = 40_000_000;
    match serde_saphyr::from_str_with_options::<Spanned<RawNode>>(text, options) {
        Ok(root) => Ok(convert(root, text)),
        Err(e) => {
            let message = UserMessageFormatter.format_message(&e);
            // The parser's text may quote input; keep it on one printable line.
            let message: String = message
                .chars()
                .map(|c| if c.is_control() { c.escape_debug().to_string() } else { c.to_string() })
                .collect();
            Err(SyntaxError { loc: e.location().and_then(loc_of), message })
        }
    }
}

fn loc_of(l: serde_saphyr::Location) -> Option<Loc> {
    let line = usize::try_from(l.line()).ok()?;
    let column = usize::try_from(l.column()).ok()?;
    (line > 0).then_some(Loc { line, column: column.max(1) })
}

fn convert(n: Spanned<RawNode>, text: &str) -> Node {
    let loc = loc_of(n.referenced);
    let raw = || {
        let span = n.defined.span();
        let start = usize::try_from(span.byte_offset()?).ok()?;
        let len = usize::try_from(span.byte_len()?).ok()?;
        text.get(start..start.checked_add(len)?).map(str::to_owned)
    };
    let (value, raw) = match n.value {
        RawNode::Null => (Value::Null, None),
        RawNode::Bool(b) => (Value::Bool(b), raw()),
        RawNode::Int(i) => (Value::Int(i), raw()),
        RawNode::Float(f) => (Value::Float(f), raw()),
        RawNode::Str(s) => (Value::Str(s), None),
        RawNode::Seq(items) => (Value::Seq(items.into_iter().map(|i| convert(i, text)).collect()), None),
        RawNode::Map(entries) => {
            (Value::Map(entries.into_iter().map(|(k, v)| (convert(k, text), convert(v, text))).collect()), None)
        }
    };
    Node { value, loc, raw }
}

/// What serde-saphyr hands over; converted to [`Node`] right away.
enum RawNode {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(String),
    Seq(Vec<Spanned<RawNode>>),
    Map(Vec<(Spanned<RawNode>, Spanned<RawNode>)>),
}

impl<'de> Deserialize<'de> for RawNode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawNode;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_unit<E>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_none<E>(self) -> Result<RawNode, E> {
        Ok(RawNode::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<RawNode, D::Error> {
        RawNode::deserialize(d)
    }
    fn visit_bool<E>(self, v: bool) -> Result<RawNode, E> {
        Ok(RawNode::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<RawNode, E> {
        Ok(RawNode::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<RawNode, E> {
        Ok(RawNode::Int(v.into()))
    }
    fn visit_i128<E>(self, v: i128) -> Result<RawNode, E> {
        Ok(RawNode::Int(v))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<RawNode, E> {
        // Only reachable for numbers beyond i128; keep them as floats so the
        // checker reports them as out of range instead of a parse failure.
        Ok(i128::try_from(v).map_or(RawNode::Float(v as f64), RawNode::Int))
    }
    fn visit_f64<E>(self, v: f64) -> Result<RawNode, E> {
        Ok(RawNode::Float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<RawNode, E> {
        Ok(RawNode::Str(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<RawNode, E> {
        Ok(RawNode::Str(v))
    }
    fn visit_bytes<E>(self, v: &[u8]) -> Result<RawNode, E> {
        Ok(RawNode::Str(String::from_utf8_lossy(v).into_owned()))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<RawNode, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = a.next_element::<Spanned<RawNode>>()? {
            items.push(item);
        }
        Ok(RawNode::Seq(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<RawNode, A::Error> {
        let mut entries = Vec::new();
        while let Some(k) = a.next_key::<Spanned<RawNode>>()? {
            let v = a.next_value::<Spanned<RawNode>>()?;
            entries.push((k, v));
        }
        Ok(RawNode::Map(entries))
    }
}
