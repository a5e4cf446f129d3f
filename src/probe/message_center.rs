//! `message_center`: the tenant's Message center posts
//! (`GET /admin/serviceAnnouncement/messages`, protocol doc 5.3), counted by
//! category and severity, and the earliest action-required date ahead.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{FailureReason, Outcome, ProbeContext, ProbeLog, RunDetails, common, service_health};

/// The `category` values Graph documents, in canonical camelCase.
pub const CATEGORIES: [&str; 3] = ["preventOrFixIssue", "planForChange", "stayInformed"];
/// The `severity` values Graph documents.
pub const SEVERITIES: [&str; 3] = ["normal", "high", "critical"];

/// Only the fields counted are fetched: posts carry long HTML bodies.
const PATH: &str = "/admin/serviceAnnouncement/messages?$select=id,category,severity,actionRequiredByDateTime";

/// What one successful run saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MessageCenterSnapshot {
    /// Posts by (category, severity); values outside the documented ones are `unknown`.
    pub posts: BTreeMap<(String, String), u64>,
    /// The earliest `actionRequiredByDateTime` after the run, in seconds since the Unix epoch.
    pub next_action: Option<f64>,
}

impl MessageCenterSnapshot {
    /// Every documented (category, severity) pair, 0 when absent, plus any
    /// pair with an `unknown` part that has posts.
    pub fn counts_with_zeros(&self) -> BTreeMap<(String, String), u64> {
        let mut all = self.posts.clone();
        for c in CATEGORIES {
            for s in SEVERITIES {
                all.entry((c.to_string(), s.to_string())).or_insert(0);
            }
        }
        all
    }
}

/// The canonical spelling of `raw` among `known`, compared without regard
/// to case; anything else (including `unknownFutureValue`) is `unknown`.
fn normalize(raw: &str, known: &[&'static str]) -> &'static str {
    known.iter().find(|k| k.eq_ignore_ascii_case(raw)).copied().unwrap_or("unknown")
}

/// Counts `posts`; only action dates after `now` (Unix seconds) count as ahead.
pub(super) fn summarize(posts: &[Value], now: f64, log: &mut ProbeLog) -> Result<MessageCenterSnapshot, Outcome> {
    let mut snap = MessageCenterSnapshot::default();
    for p in posts {
        if !p.is_object() {
            log.line("message center entry is not an object");
            return Err(Outcome::Failure(FailureReason::InvalidResponse));
        }
        let category = normalize(p.get("category").and_then(Value::as_str).unwrap_or(""), &CATEGORIES);
        let severity = normalize(p.get("severity").and_then(Value::as_str).unwrap_or(""), &SEVERITIES);
        *snap.posts.entry((category.to_string(), severity.to_string())).or_insert(0) += 1;
        let Some(raw) = p.get("actionRequiredByDateTime").and_then(Value::as_str) else { continue };
        match common::parse_datetime(raw) {
            Some(t) if t > now => snap.next_action = Some(snap.next_action.map_or(t, |n| n.min(t))),
            Some(_) => {}
            None => log.line(format!("ignoring unreadable actionRequiredByDateTime {raw:?}")),
        }
    }
    Ok(snap)
}

pub(super) async fn run(ctx: &ProbeContext<'_>, log: &mut ProbeLog) -> (Outcome, RunDetails) {
    let posts = match service_health::collect(ctx, PATH, log).await {
        Ok(v) => v,
        Err(o) => return (o, RunDetails::default()),
    };
    match summarize(&posts, crate::state::unix_now(), log) {
        Ok(snap) => {
            log.line(format!(
                "{} posts; next action required by: {}",
                posts.len(),
                snap.next_action.map_or_else(|| "none ahead".to_string(), |t| format!("{t:.0} (Unix time)"))
            ));
            (Outcome::Success, RunDetails { message_center: Some(snap), ..Default::default() })
        }
        Err(o) => (o, RunDetails::default()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn counts_and_next_action() {
        let posts = [
            json!({"id": "MC1", "category": "planForChange", "severity": "normal", "actionRequiredByDateTime": null}),
            json!({"id": "MC2", "category": "PlanForChange", "severity": "High", "actionRequiredByDateTime": "2030-01-01T00:00:00Z"}),
            json!({"id": "MC3", "category": "stayInformed", "severity": "normal", "actionRequiredByDateTime": "2029-06-01T00:00:00Z"}),
            json!({"id": "MC4", "category": "somethingNew", "severity": "unknownFutureValue", "actionRequiredByDateTime": "2020-01-01T00:00:00Z"}),
            json!({"id": "MC5", "category": "stayInformed", "severity": "normal", "actionRequiredByDateTime": "soon"}),
        ];
        let now = 1_700_000_000.0;
        let snap = summarize(&posts, now, &mut ProbeLog::new()).expect("valid posts");
        let key = |c: &str, s: &str| (c.to_string(), s.to_string());
        assert_eq!(snap.posts[&key("planForChange", "normal")], 1);
        assert_eq!(snap.posts[&key("planForChange", "high")], 1);
        assert_eq!(snap.posts[&key("stayInformed", "normal")], 2);
        assert_eq!(snap.posts[&key("unknown", "unknown")], 1);
        assert_eq!(snap.posts.values().sum::<u64>(), 5);
        assert_eq!(snap.next_action, common::parse_datetime("2029-06-01T00:00:00Z"));
        let all = snap.counts_with_zeros();
        assert_eq!(all.len(), 10);
        assert_eq!(all[&key("preventOrFixIssue", "critical")], 0);

        // Only past dates: nothing ahead.
        let past = summarize(&posts[3..4], now, &mut ProbeLog::new()).expect("valid");
        assert_eq!(past.next_action, None);
        assert!(summarize(&[json!("x")], now, &mut ProbeLog::new()).is_err());
    }
}
