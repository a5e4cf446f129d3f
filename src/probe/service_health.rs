//! `service_health`: Microsoft's own view of the tenant's services, from
//! `healthOverviews` and the unresolved `issues` (protocol doc 5.1, 5.2).

use std::collections::BTreeMap;

use serde_json::Value;

use super::{FailureReason, Outcome, ProbeContext, ProbeLog, RunDetails, Workload, common};

/// Pages followed at most per collection, so a looping nextLink cannot hang a probe.
const MAX_PAGES: usize = 20;

/// The serviceHealthStatus members (protocol doc 5.1), in canonical camelCase.
const STATUSES: [&str; 18] = [
    "serviceOperational",
    "investigating",
    "restoringService",
    "verifyingService",
    "serviceRestored",
    "postIncidentReviewPublished",
    "serviceDegradation",
    "serviceInterruption",
    "extendedRecovery",
    "falsePositive",
    "investigationSuspended",
    "resolved",
    "mitigatedExternal",
    "mitigated",
    "resolvedExternal",
    "confirmed",
    "reported",
    "unknownFutureValue",
];

/// Statuses that count as operational (`m365mon_service_operational` 1).
const OPERATIONAL: [&str; 6] = [
    "serviceOperational",
    "serviceRestored",
    "falsePositive",
    "postIncidentReviewPublished",
    "resolved",
    "resolvedExternal",
];

/// One service's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceStatus {
    /// Graph's display name, e.g. `Exchange Online`.
    pub name: String,
    /// Canonical status, or `unknown`.
    pub status: String,
}

/// What one successful run saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthSnapshot {
    /// Every service in `healthOverviews`, sorted by name.
    pub services: Vec<ServiceStatus>,
    /// Unresolved issues counted by (service name, classification).
    pub issues: BTreeMap<(String, String), u64>,
}

/// The canonical spelling of a status, compared without regard to case;
/// anything unknown becomes `unknown`.
pub fn normalize_status(raw: &str) -> &'static str {
    STATUSES.iter().find(|s| s.eq_ignore_ascii_case(raw)).copied().unwrap_or("unknown")
}

/// Whether a (normalized) status counts as operational. `unknown` does not:
/// a status Microsoft adds later is worth a look.
pub fn is_operational(status: &str) -> bool {
    OPERATIONAL.contains(&status)
}

fn normalize_classification(raw: &str) -> &'static str {
    ["incident", "advisory"].into_iter().find(|c| c.eq_ignore_ascii_case(raw)).unwrap_or("unknown")
}

/// Fetches a collection, following `@odata.nextLink`.
pub(super) async fn collect(ctx: &ProbeContext<'_>, path: &str, log: &mut ProbeLog) -> Result<Vec<Value>, Outcome> {
    let token = common::token(ctx, false, log).await?;
    let mut url = ctx.graph.url(path);
    let mut items = Vec::new();
    for _ in 0..MAX_PAGES {
        let body = match ctx.graph.get_json(&url, &token, Workload::ServiceCommunications, log).await {
            Ok(body) => body,
            Err(o) => {
                common::on_unauthorized(ctx.tokens, ctx.subscription, ctx.credential, &token, &o, log).await;
                return Err(o);
            }
        };
        let Some(page) = body.get("value").and_then(Value::as_array) else {
            log.line("response has no \"value\" array");
            return Err(Outcome::Failure(FailureReason::InvalidResponse));
        };
        items.extend(page.iter().cloned());
        match body.get("@odata.nextLink").and_then(Value::as_str) {
            // The link is used unchanged, as Graph asks; it must stay on the configured endpoint.
            Some(next) if next.starts_with(&ctx.graph.url("/")) => url = next.to_string(),
            Some(next) => {
                log.line(format!("ignoring @odata.nextLink outside the Graph endpoint: {next}"));
                return Err(Outcome::Failure(FailureReason::InvalidResponse));
            }
            None => return Ok(items),
        }
    }
    log.line(format!("more than {MAX_PAGES} pages; giving up"));
    Err(Outcome::Failure(FailureReason::InvalidResponse))
}

pub(super) async fn run(ctx: &ProbeContext<'_>, log: &mut ProbeLog) -> (Outcome, RunDetails) {
    let overviews =
        match collect(ctx, "/admin/serviceAnnouncement/healthOverviews?$select=id,service,status", log).await {
            Ok(v) => v,
            Err(o) => return (o, RunDetails::default()),
        };
    let mut services = Vec::new();
    for o in &overviews {
        let (Some(name), Some(status)) =
            (o.get("service").and_then(Value::as_str), o.get("status").and_then(Value::as_str))
        else {
            log.line("healthOverviews entry without service or status");
            return (Outcome::Failure(FailureReason::InvalidResponse), RunDetails::default());
        };
        services.push(ServiceStatus { name: name.to_string(), status: normalize_status(status).to_string() });
    }
    services.sort_by(|a, b| a.name.cmp(&b.name));
    services.dedup_by(|a, b| a.name == b.name);
    let issues = match collect(ctx, "/admin/serviceAnnouncement/issues?$filter=isResolved%20eq%20false&$select=id,service,classification,isResolved", log).await {
        Ok(v) => v,
        Err(o) => return (o, RunDetails::default()),
    };
    let mut counts = BTreeMap::new();
    for i in &issues {
        // Filtered server-side; checked again in case a page ignores the filter.
        if i.get("isResolved").and_then(Value::as_bool) == Some(true) {
            continue;
        }
        let Some(service) = i.get("service").and_then(Value::as_str) else {
            log.line("issue without service");
            return (Outcome::Failure(FailureReason::InvalidResponse), RunDetails::default());
        };
        let class = normalize_classification(i.get("classification").and_then(Value::as_str).unwrap_or(""));
        *counts.entry((service.to_string(), class.to_string())).or_insert(0) += 1;
    }
    let not_ok: Vec<_> =
        services.iter().filter(|s| !is_operational(&s.status)).map(|s| format!("{} ({})", s.name, s.status)).collect();
    log.line(format!(
        "{} services, {} not operational{}; {} unresolved issues",
        services.len(),
        not_ok.len(),
        if not_ok.is_empty() { String::new() } else { format!(": {}", not_ok.join(", ")) },
        counts.values().sum::<u64>()
    ));
    (Outcome::Success, RunDetails { health: Some(HealthSnapshot { services, issues: counts }), ..Default::default() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_compare_without_case() {
        assert_eq!(normalize_status("ServiceOperational"), "serviceOperational");
        assert_eq!(normalize_status("servicedegradation"), "serviceDegradation");
        assert_eq!(normalize_status("somethingNew"), "unknown");
        assert!(is_operational(normalize_status("SERVICERESTORED")));
        assert!(!is_operational("serviceInterruption"));
        assert!(!is_operational("unknown"));
        assert_eq!(normalize_classification("Advisory"), "advisory");
        assert_eq!(normalize_classification("other"), "unknown");
    }
}
