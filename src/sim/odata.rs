//! The OData query options the simulator supports on collections: `$filter`
//! (`eq`, `ne`, `gt`, `ge`, `lt`, `le`, `and`, `or`, `not`, parentheses),
//! `$orderby` (one property, `asc`/`desc`), `$top`, `$skip`, `$select`,
//! `Prefer: odata.maxpagesize=N`, and absolute `@odata.nextLink` paging.

use serde_json::{Map, Value};

use super::clock::parse_iso_millis;

/// A parsed `$filter`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp { field: String, op: Op, lit: Lit },
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
}

/// A literal on the right of a comparison.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Bool(bool),
    Null,
    Num(f64),
    /// An unquoted date-time, in epoch milliseconds.
    Time(i64),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Word(String),
    LParen,
    RParen,
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '(' {
            out.push(Tok::LParen);
            i += 1;
        } else if c == ')' {
            out.push(Tok::RParen);
            i += 1;
        } else if c == '\'' {
            let mut v = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err("unterminated string literal".into()),
                    Some('\'') if chars.get(i + 1) == Some(&'\'') => {
                        v.push('\'');
                        i += 2;
                    }
                    Some('\'') => {
                        i += 1;
                        break;
                    }
                    Some(ch) => {
                        v.push(*ch);
                        i += 1;
                    }
                }
            }
            out.push(Tok::Str(v));
        } else if c.is_ascii_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == '/') {
                i += 1;
            }
            out.push(Tok::Ident(chars[start..i].iter().collect()));
        } else if c.is_ascii_digit() || c == '-' {
            let start = i;
            i += 1;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || matches!(chars[i], ':' | '.' | '-' | '+')) {
                i += 1;
            }
            out.push(Tok::Word(chars[start..i].iter().collect()));
        } else {
            return Err(format!("unexpected character '{c}'"));
        }
    }
    Ok(out)
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

impl Parser {
    fn peek_kw(&self, kw: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Ident(w)) if w.eq_ignore_ascii_case(kw))
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut left = self.and()?;
        while self.peek_kw("or") {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut left = self.unary()?;
        while self.peek_kw("and") {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.unary()?));
        }
        Ok(left)
    }

    fn unary(&mut self) -> Result<Expr, String> {
        if self.peek_kw("not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        if self.toks.get(self.pos) == Some(&Tok::LParen) {
            self.pos += 1;
            let e = self.or()?;
            if self.toks.get(self.pos) != Some(&Tok::RParen) {
                return Err("missing ')'".into());
            }
            self.pos += 1;
            return Ok(e);
        }
        let field = match self.toks.get(self.pos) {
            Some(Tok::Ident(f)) => f.clone(),
            _ => return Err("expected a property name".into()),
        };
        self.pos += 1;
        let op = match self.toks.get(self.pos) {
            Some(Tok::Ident(o)) => match o.to_ascii_lowercase().as_str() {
                "eq" => Op::Eq,
                "ne" => Op::Ne,
                "gt" => Op::Gt,
                "ge" => Op::Ge,
                "lt" => Op::Lt,
                "le" => Op::Le,
                other => return Err(format!("unsupported operator '{other}'")),
            },
            _ => return Err(format!("expected an operator after '{field}'")),
        };
        self.pos += 1;
        let lit = match self.toks.get(self.pos) {
            Some(Tok::Str(s)) => Lit::Str(s.clone()),
            Some(Tok::Ident(w)) if w == "true" => Lit::Bool(true),
            Some(Tok::Ident(w)) if w == "false" => Lit::Bool(false),
            Some(Tok::Ident(w)) if w == "null" => Lit::Null,
            Some(Tok::Word(w)) => match parse_iso_millis(w) {
                Some(t) => Lit::Time(t),
                None => Lit::Num(w.parse().map_err(|_| format!("invalid literal '{w}'"))?),
            },
            _ => return Err(format!("expected a value after '{field}'")),
        };
        self.pos += 1;
        Ok(Expr::Cmp { field, op, lit })
    }
}

/// Parses `$filter`. Errors are the text after "Invalid filter clause: ".
pub(crate) fn parse_filter(s: &str) -> Result<Expr, String> {
    let mut p = Parser { toks: tokenize(s)?, pos: 0 };
    let e = p.or()?;
    if p.pos != p.toks.len() {
        return Err("unexpected text after the expression".into());
    }
    Ok(e)
}

/// Property names used in `e`.
pub(crate) fn fields(e: &Expr, out: &mut Vec<String>) {
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => {
            fields(a, out);
            fields(b, out);
        }
        Expr::Not(a) => fields(a, out),
        Expr::Cmp { field, .. } => out.push(field.clone()),
    }
}

fn as_time(v: &Value) -> Option<i64> {
    v.as_str().and_then(parse_iso_millis)
}

fn compare(v: &Value, op: Op, lit: &Lit) -> Result<bool, String> {
    use std::cmp::Ordering;
    let ord: Option<Ordering> = match (v, lit) {
        (Value::Null, Lit::Null) => Some(Ordering::Equal),
        (_, Lit::Null) | (Value::Null, _) => None,
        (Value::Bool(b), Lit::Bool(l)) => Some(b.cmp(l)),
        (Value::Number(n), Lit::Num(l)) => n.as_f64().and_then(|f| f.partial_cmp(l)),
        (Value::String(s), Lit::Time(t)) => as_time(v).map(|x| x.cmp(t)).or_else(|| Some(s.as_str().cmp(""))),
        (Value::String(s), Lit::Str(l)) => match op {
            Op::Eq | Op::Ne => Some(s.as_str().cmp(l.as_str())),
            _ => match (as_time(v), parse_iso_millis(l)) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => Some(s.as_str().cmp(l.as_str())),
            },
        },
        _ => return Err("the value's type does not match the property's type".into()),
    };
    Ok(match (op, ord) {
        (Op::Eq, o) => o == Some(Ordering::Equal),
        (Op::Ne, o) => o != Some(Ordering::Equal),
        (_, None) => false,
        (Op::Gt, Some(o)) => o == Ordering::Greater,
        (Op::Ge, Some(o)) => o != Ordering::Less,
        (Op::Lt, Some(o)) => o == Ordering::Less,
        (Op::Le, Some(o)) => o != Ordering::Greater,
    })
}

/// Evaluates a filter on one object.
pub(crate) fn eval(e: &Expr, obj: &Map<String, Value>) -> Result<bool, String> {
    Ok(match e {
        Expr::And(a, b) => eval(a, obj)? && eval(b, obj)?,
        Expr::Or(a, b) => eval(a, obj)? || eval(b, obj)?,
        Expr::Not(a) => !eval(a, obj)?,
        Expr::Cmp { field, op, lit } => compare(obj.get(field).unwrap_or(&Value::Null), *op, lit)?,
    })
}

/// Percent-encodes a query value the way Graph writes `@odata.nextLink`.
pub(crate) fn encode_query_value(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'$' | b',') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes in a path segment (`+` stays `+`).
pub(crate) fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push(h * 16 + l);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!(),
        }
    }

    #[test]
    fn filters_evaluate_like_graph() {
        let issue = obj(json!({
            "isResolved": false, "service": "Exchange Online", "classification": "incident",
            "startDateTime": "2025-01-10T08:00:00Z", "title": "It's down"
        }));
        let yes = [
            "isResolved eq false",
            "service eq 'Exchange Online' and isResolved eq false",
            "(service eq 'SharePoint Online' or service eq 'Exchange Online')",
            "startDateTime ge 2025-01-10T00:00:00Z and startDateTime le 2025-01-11T00:00:00Z",
            "startDateTime ge '2025-01-10T00:00:00Z'",
            "not (classification eq 'advisory')",
            "title eq 'It''s down'",
            "classification ne 'advisory'",
        ];
        for f in yes {
            assert_eq!(eval(&parse_filter(f).unwrap(), &issue), Ok(true), "{f}");
        }
        let no = ["isResolved eq true", "service eq 'exchange online'", "startDateTime lt 2025-01-10T08:00:00Z"];
        for f in no {
            assert_eq!(eval(&parse_filter(f).unwrap(), &issue), Ok(false), "{f}");
        }
    }

    #[test]
    fn bad_filters_are_rejected() {
        for f in ["isResolved", "isResolved eq", "service xx 'a'", "(isResolved eq true", "service eq 'a", "a eq b c"] {
            assert!(parse_filter(f).is_err(), "{f}");
        }
        let issue = obj(json!({"isResolved": false}));
        assert!(eval(&parse_filter("isResolved eq 'no'").unwrap(), &issue).is_err());
    }

    #[test]
    fn fields_are_listed() {
        let mut out = vec![];
        fields(&parse_filter("a eq 1 and (b eq 'x' or not c eq true)").unwrap(), &mut out);
        assert_eq!(out, vec!["a", "b", "c"]);
    }

    #[test]
    fn encoding_round_trips() {
        let v = "service eq 'Exchange Online' and x ge 2025-01-10T00:00:00Z";
        let enc = encode_query_value(v);
        assert!(!enc.contains(' ') && !enc.contains('\''));
        assert_eq!(percent_decode(&enc), v);
        assert_eq!(percent_decode("Exchange%20Online"), "Exchange Online");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
