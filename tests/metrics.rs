//! The exposition: names and types of the contract, stale series, and
//! `promtool check metrics` with no findings.

#[path = "common/tools.rs"]
mod tools;

use std::collections::BTreeMap;
use std::time::Duration;

use m365mon::metrics::{BuildInfo, encode};
use m365mon::probe::{FailureReason, HealthSnapshot, Outcome, ServiceStatus, Workload};
use m365mon::state::{DiscoveryState, ProbeState, Snapshot, Store, SubscriptionState};

fn build() -> BuildInfo {
    BuildInfo { version: "0.1.0", revision: "abc", rustc_version: "1.95.0" }
}

fn sample() -> Snapshot {
    let mut snap = Snapshot::default();
    let mut sub = SubscriptionState {
        tenant_id: "contoso.onmicrosoft.com".into(),
        cloud: "global".into(),
        credential: "app".into(),
        admins: vec!["alice@contoso.com".into(), "noc@reseller.example".into()],
        ..Default::default()
    };
    for (name, t) in [("auth", "auth"), ("exchange", "exchange"), ("health", "service_health")] {
        sub.probes.insert(name.into(), ProbeState { type_name: t.into(), ..Default::default() });
    }
    sub.health = Some(HealthSnapshot {
        services: vec![
            ServiceStatus { name: "Exchange Online".into(), status: "serviceDegradation".into() },
            ServiceStatus { name: "Microsoft Teams".into(), status: "serviceOperational".into() },
        ],
        issues: BTreeMap::from([(("Exchange Online".to_string(), "incident".to_string()), 2)]),
    });
    snap.subscriptions.insert("contoso".into(), sub);
    snap.credential_expiry.insert("cert-app".into(), 4_102_444_800);
    snap.discovery.insert(
        "partner".into(),
        DiscoveryState {
            refreshes: 3,
            failures: BTreeMap::from([(FailureReason::Forbidden, 1)]),
            last_success_at: Some(1_700_000_100.0),
            subscriptions: 1,
            last_failure: None,
        },
    );
    snap.discovery.insert("never-read".into(), DiscoveryState { refreshes: 1, ..Default::default() });
    snap.relationship_expiry.insert("contoso".into(), 1_772_323_200);
    snap.reload.last_successful = true;
    snap.reload.last_success_at = 1_700_000_000.0;
    snap
}

/// The sample after a few runs, recorded through the store's API.
fn recorded() -> Snapshot {
    let st = Store::from_snapshot(sample());
    st.record("contoso", "auth", &Outcome::Success, Duration::from_millis(120), None);
    st.record("contoso", "exchange", &Outcome::Failure(FailureReason::Http5xx), Duration::from_millis(900), None);
    let throttled = Outcome::Throttled { workload: Workload::Exchange, retry_after: Duration::from_secs(10) };
    st.record("contoso", "exchange", &throttled, Duration::ZERO, None);
    st.record_token("contoso", Ok(()));
    st.record_token("contoso", Err(FailureReason::CredentialExpired));
    st.snapshot()
}

fn store_from(snap: &Snapshot) -> Store {
    Store::from_snapshot(snap.clone())
}

#[test]
fn exposition_passes_promtool_with_no_findings() {
    let text = encode(&recorded(), &build());
    let (ok, out) = tools::promtool_check_metrics(&text);
    assert!(ok, "promtool check metrics found problems:\n{out}\n--- exposition ---\n{text}");
}

#[test]
fn exposition_carries_the_contract() {
    let text = encode(&recorded(), &build());
    for line in [
        "# TYPE m365mon_probe_success gauge",
        "m365mon_probe_success{subscription=\"contoso\",probe=\"auth\"} 1",
        "m365mon_probe_success{subscription=\"contoso\",probe=\"exchange\"} 0",
        "# TYPE m365mon_probe_duration_seconds histogram",
        "m365mon_probe_duration_seconds_bucket{subscription=\"contoso\",probe=\"exchange\",le=\"1\"} 1",
        "m365mon_probe_duration_seconds_count{subscription=\"contoso\",probe=\"exchange\"} 1",
        "m365mon_probe_runs_total{subscription=\"contoso\",probe=\"exchange\"} 1",
        "m365mon_probe_failures_total{subscription=\"contoso\",probe=\"exchange\",reason=\"http_5xx\"} 1",
        "m365mon_probe_throttled_total{subscription=\"contoso\",probe=\"exchange\"} 1",
        "m365mon_probe_last_failure_reason{subscription=\"contoso\",probe=\"exchange\",reason=\"http_5xx\"} 1",
        "m365mon_service_health_status{subscription=\"contoso\",service_name=\"Exchange Online\",status=\"serviceDegradation\"} 1",
        "m365mon_service_operational{subscription=\"contoso\",service_name=\"Exchange Online\"} 0",
        "m365mon_service_operational{subscription=\"contoso\",service_name=\"Microsoft Teams\"} 1",
        "m365mon_service_issues_active{subscription=\"contoso\",service_name=\"Exchange Online\",classification=\"incident\"} 2",
        "m365mon_service_issues_active{subscription=\"contoso\",service_name=\"Microsoft Teams\",classification=\"incident\"} 0",
        "m365mon_subscription_info{subscription=\"contoso\",tenant_id=\"contoso.onmicrosoft.com\",cloud=\"global\",credential=\"app\"} 1",
        "m365mon_subscription_admin_info{subscription=\"contoso\",admin=\"alice@contoso.com\"} 1",
        "m365mon_subscription_admin_info{subscription=\"contoso\",admin=\"noc@reseller.example\"} 1",
        "m365mon_token_requests_total{subscription=\"contoso\"} 2",
        "m365mon_token_request_failures_total{subscription=\"contoso\",reason=\"credential_expired\"} 1",
        "m365mon_credential_expiry_timestamp_seconds{credential=\"cert-app\"} 4102444800",
        "m365mon_build_info{version=\"0.1.0\",revision=\"abc\",rustc_version=\"1.95.0\"} 1",
        "m365mon_config_last_reload_successful 1",
        "# TYPE m365mon_discovery_last_success_timestamp_seconds gauge",
        "m365mon_discovery_last_success_timestamp_seconds{discovery=\"partner\"} 1700000100",
        "m365mon_discovery_subscriptions{discovery=\"partner\"} 1",
        "m365mon_discovery_subscriptions{discovery=\"never-read\"} 0",
        "# TYPE m365mon_discovery_refreshes_total counter",
        "m365mon_discovery_refreshes_total{discovery=\"partner\"} 3",
        "m365mon_discovery_refresh_failures_total{discovery=\"partner\",reason=\"forbidden\"} 1",
        "m365mon_relationship_expiry_timestamp_seconds{subscription=\"contoso\"} 1772323200",
    ] {
        assert!(text.lines().any(|l| l == line), "missing line {line:?} in:\n{text}");
    }
    // A discovery that never read its list has no success timestamp (not a fake 0).
    assert!(!text.contains("m365mon_discovery_last_success_timestamp_seconds{discovery=\"never-read\"}"));
    // A probe that never completed a run has no success series (not a fake 0).
    assert!(!text.contains("m365mon_probe_success{subscription=\"contoso\",probe=\"health\"}"));
    // The last run of exchange was throttled: success stays 0 from the failure before it.
    assert!(!text.contains("reason=\"throttled\""));
}

#[test]
fn a_success_clears_the_failure_reason() {
    let st = store_from(&recorded());
    st.record("contoso", "exchange", &Outcome::Success, Duration::from_millis(50), None);
    let text = encode(&st.snapshot(), &build());
    assert!(!text.contains("m365mon_probe_last_failure_reason{subscription=\"contoso\",probe=\"exchange\""));
    assert!(
        text.contains(
            "m365mon_probe_failures_total{subscription=\"contoso\",probe=\"exchange\",reason=\"http_5xx\"} 1"
        )
    );
    assert!(text.contains("m365mon_probe_success{subscription=\"contoso\",probe=\"exchange\"} 1"));
}

#[test]
fn empty_exporter_is_valid_too() {
    let text = encode(&Snapshot::default(), &build());
    let (ok, out) = tools::promtool_check_metrics(&text);
    assert!(ok, "{out}\n{text}");
    assert!(text.contains("m365mon_build_info"));
}

/// A delegated subscription gets `m365mon_credential_reauth_required`: 1
/// after a rejected refresh token, 0 after a successful sign-in.
/// The exposition stays promtool-clean.
#[test]
fn reauth_required_follows_the_sign_in_state() {
    let mut snap = sample();
    let delegated = SubscriptionState { delegated: true, ..snap.subscriptions["contoso"].clone() };
    snap.subscriptions.insert("litware".into(), delegated);
    let st = store_from(&snap);
    st.record_sign_in("litware", Some(FailureReason::ReauthRequired));
    let text = encode(&st.snapshot(), &build());
    assert!(text.lines().any(|l| l == "m365mon_credential_reauth_required{subscription=\"litware\"} 1"), "{text}");
    assert!(!text.contains("m365mon_credential_reauth_required{subscription=\"contoso\"}"), "app-only: no series");
    let (ok, out) = tools::promtool_check_metrics(&text);
    assert!(ok, "{out}\n{text}");
    st.record_sign_in("litware", None);
    let text = encode(&st.snapshot(), &build());
    assert!(text.lines().any(|l| l == "m365mon_credential_reauth_required{subscription=\"litware\"} 0"), "{text}");
}
