//! Reading a partner's GDAP customers and their relationships' end dates
//! from Graph, following `@odata.nextLink` only within the configured
//! Graph endpoint.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::auth::TokenProvider;
use crate::config::{Credential, Discovery, Secret};
use crate::graph::GraphClient;
use crate::probe::{FailureReason, Outcome, ProbeLog, Workload};

use super::Customer;

/// A partner with more customers than this many pages is refused (a
/// guard against a nextLink loop; 300 per page allows 300,000).
const MAX_PAGES: usize = 1000;

/// Relationship statuses under which the partner's access is in force.
const IN_FORCE: &[&str] = &["active", "expiring", "terminationRequested"];

/// Signs in to the partner tenant and lists its customers with the latest
/// end date of their relationships in force.
pub(super) async fn customers(
    tokens: &TokenProvider,
    graph: &GraphClient,
    entry: &Discovery,
    credential: &Credential,
    log: &mut ProbeLog,
) -> Result<Vec<Customer>, FailureReason> {
    let token =
        tokens.token(&entry.name, credential, &entry.partner_tenant_id, false, log).await.map_err(|e| e.reason)?;
    let result = read(graph, &token, log).await;
    if result == Err(FailureReason::Unauthorized) {
        // Graph refused a token before its expiry (revoked, roles changed):
        // the next refresh signs in again instead of reusing it.
        tokens.invalidate(credential, &entry.partner_tenant_id, &token).await;
    }
    result
}

/// Both lists, joined: customers with the end of their latest relationship in force.
async fn read(graph: &GraphClient, token: &Secret, log: &mut ProbeLog) -> Result<Vec<Customer>, FailureReason> {
    let mut ends: BTreeMap<String, i64> = BTreeMap::new();
    for item in list(graph, token, "/tenantRelationships/delegatedAdminRelationships", log).await? {
        let status = item["status"].as_str().unwrap_or_default();
        let tenant = item["customer"]["tenantId"].as_str().map(str::to_ascii_lowercase);
        let end = item["endDateTime"].as_str().and_then(parse_iso_seconds);
        if let (true, Some(tenant), Some(end)) = (IN_FORCE.contains(&status), tenant, end) {
            let e = ends.entry(tenant).or_insert(end);
            *e = (*e).max(end);
        }
    }
    let mut out: Vec<Customer> = Vec::new();
    for item in list(graph, token, "/tenantRelationships/delegatedAdminCustomers", log).await? {
        let Some(tenant) = item["tenantId"].as_str().filter(|t| is_guid(t)).map(str::to_ascii_lowercase) else {
            log.line(format!("customer without a tenant GUID skipped: id {}", item["id"]));
            continue;
        };
        if out.iter().any(|c| c.tenant_id == tenant) {
            continue;
        }
        let display_name = item["displayName"].as_str().unwrap_or_default().to_string();
        let relationship_end = ends.get(&tenant).copied();
        out.push(Customer { tenant_id: tenant, display_name, relationship_end });
    }
    log.line(format!("{} customers", out.len()));
    Ok(out)
}

/// Every item of a collection, page by page.
async fn list(
    graph: &GraphClient,
    token: &Secret,
    path: &str,
    log: &mut ProbeLog,
) -> Result<Vec<Value>, FailureReason> {
    let first = graph.url(path);
    let base = graph.url("/");
    let mut url = first.clone();
    let mut items = Vec::new();
    for _ in 0..MAX_PAGES {
        let body = graph.get_json(&url, token, Workload::Directory, log).await.map_err(|o| match o {
            Outcome::Failure(r) => r,
            Outcome::Throttled { .. } => FailureReason::Throttled,
            Outcome::Success => FailureReason::InvalidResponse,
        })?;
        let Some(page) = body["value"].as_array() else {
            log.line("response has no \"value\" list");
            return Err(FailureReason::InvalidResponse);
        };
        items.extend(page.iter().cloned());
        match body["@odata.nextLink"].as_str() {
            None => return Ok(items),
            Some(next) if within(next, &base) => url = next.to_string(),
            Some(next) => {
                // The token must not go anywhere but the configured Graph endpoint.
                log.line(format!("@odata.nextLink {next:?} leaves {base}; not followed"));
                return Err(FailureReason::InvalidResponse);
            }
        }
    }
    log.line(format!("more than {MAX_PAGES} pages; giving up"));
    Err(FailureReason::InvalidResponse)
}

/// Whether `url` has the scheme, host and port of `base` and a path under it.
fn within(url: &str, base: &str) -> bool {
    match (url::Url::parse(url), url::Url::parse(base)) {
        (Ok(u), Ok(b)) => {
            u.scheme() == b.scheme()
                && u.host_str().map(str::to_ascii_lowercase) == b.host_str().map(str::to_ascii_lowercase)
                && u.port_or_known_default() == b.port_or_known_default()
                && u.username().is_empty()
                && u.password().is_none()
                && u.path().starts_with(b.path())
                && !u.path().split('/').any(|s| s == ".." || s.eq_ignore_ascii_case("%2e%2e"))
        }
        _ => false,
    }
}

fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() })
}

/// Seconds since the epoch of a Graph timestamp such as
/// `2024-02-10T11:24:42.3148266Z` (UTC; fraction dropped).
pub(super) fn parse_iso_seconds(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[10] != b'T' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = s.get(r)?;
        t.bytes().all(|c| c.is_ascii_digit()).then(|| t.parse().ok()).flatten()
    };
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let rest = &s[19..];
    let rest = rest.strip_prefix('.').map_or(rest, |f| f.trim_start_matches(|c: char| c.is_ascii_digit()));
    if !matches!(rest, "Z" | "z" | "+00:00") {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + h * 3600 + mi * 60 + sec)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps() {
        assert_eq!(parse_iso_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(parse_iso_seconds("2024-02-10T11:24:42.3148266Z"), Some(1_707_564_282));
        assert_eq!(parse_iso_seconds("2027-01-01T00:00:00+00:00"), Some(1_798_761_600));
        assert_eq!(parse_iso_seconds("2027-01-01T00:00:00"), None);
        assert_eq!(parse_iso_seconds("2027-13-01T00:00:00Z"), None);
        assert_eq!(parse_iso_seconds("soon"), None);
    }

    #[test]
    fn next_links_stay_on_the_graph_endpoint() {
        let base = "http://127.0.0.1:8080/graph/v1.0/";
        assert!(within("http://127.0.0.1:8080/graph/v1.0/tenantRelationships/x?$skip=2", base));
        assert!(!within("http://127.0.0.1:8081/graph/v1.0/x", base));
        assert!(!within("https://127.0.0.1:8080/graph/v1.0/x", base));
        assert!(!within("http://evil.example/graph/v1.0/x", base));
        assert!(!within("http://127.0.0.1:8080/other/v1.0/x", base));
        assert!(!within("http://user@127.0.0.1:8080/graph/v1.0/x", base));
        assert!(!within("/graph/v1.0/x", base));
        assert!(within("https://graph.microsoft.com/v1.0/x?$skiptoken=a", "https://graph.microsoft.com/v1.0/"));
    }
}
