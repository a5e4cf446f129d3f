//! What the dashboards and rules read: every dashboard query (from
//! `scripts/check-dashboards --queries`, Python 3) and the metric names in the
//! rule files.

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use super::stack::root;
use super::tools::require;

/// One dashboard query with its variables filled in.
#[derive(Debug, Clone)]
pub struct Query {
    /// `dashboard / panel / ref`.
    pub where_: String,
    /// `promql`, `query_result` or `label_values`.
    pub kind: String,
    /// The PromQL (for `label_values`, the series selector, possibly empty).
    pub expr: String,
    /// For `label_values`: the label.
    pub label: String,
    /// Metric and recording-rule names it reads.
    pub metrics: Vec<String>,
}

/// Every panel, variable and annotation query of dashboards/*.json, with
/// `vars` (NAME=VALUE) overriding the script's defaults.
pub fn dashboard_queries(vars: &[(&str, &str)]) -> Vec<Query> {
    let python = require("python3");
    let mut cmd = Command::new(python);
    cmd.arg(root().join("scripts/check-dashboards")).arg("--queries");
    for (k, v) in vars {
        cmd.arg("--var").arg(format!("{k}={v}"));
    }
    let out = cmd.output().expect("run scripts/check-dashboards --queries");
    assert!(
        out.status.success(),
        "scripts/check-dashboards --queries failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("UTF-8 queries");
    let qs: Vec<Query> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("bad --queries line {l}: {e}"));
            let s = |k: &str| v[k].as_str().unwrap_or("").to_string();
            Query {
                where_: format!("{} / {} / {}", s("dashboard"), s("panel"), s("ref")),
                kind: s("kind"),
                expr: s("expr"),
                label: s("label"),
                metrics: v["metrics"]
                    .as_array()
                    .map(|a| a.iter().filter_map(|m| m.as_str().map(String::from)).collect())
                    .unwrap_or_default(),
            }
        })
        .collect();
    assert!(qs.len() > 20, "only {} dashboard queries: did --queries change?", qs.len());
    qs
}

/// Identifier-like runs of `[A-Za-z0-9_:]` in `text`.
fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':')).filter(|t| !t.is_empty())
}

/// The rule files' text without comment lines.
fn rule_texts() -> Vec<(String, String)> {
    let dir = root().join("alerting/rules");
    let mut files: Vec<_> = std::fs::read_dir(&dir).expect("alerting/rules").flatten().map(|e| e.path()).collect();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .map(|p| {
            let text = std::fs::read_to_string(&p).expect("read rule file");
            let code: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with('#')).collect();
            (p.display().to_string(), code.join("\n"))
        })
        .collect()
}

/// Raw exporter metric names (`m365mon_...`, no colon) the rules read,
/// expressions and annotation templates alike.
pub fn rule_metric_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (_, text) in rule_texts() {
        for t in tokens(&text) {
            if t.starts_with("m365mon_") && !t.contains(':') && !t.ends_with('_') {
                names.insert(t.to_string());
            }
        }
    }
    assert!(names.len() > 5, "found only {names:?} in alerting/rules: did the layout change?");
    names
}

/// The names the rule files record (`record: NAME`).
pub fn recorded_names() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for (_, text) in rule_texts() {
        for l in text.lines() {
            if let Some(n) = l.trim_start().trim_start_matches("- ").strip_prefix("record:") {
                names.insert(n.trim().to_string());
            }
        }
    }
    names
}

/// Sample names in a text exposition (`name{...} value` or `name value`).
pub fn exposed_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(String::from)
        .collect()
}
