//! Each probe kind against the simulator through the real exporter: success,
//! service health, every failure reason, throttling and isolation, read from
//! `/metrics` and `/probe` as a user would.
//!
//! Scheduled runs use tokio's paused clock: the simulator, the exporter and
//! this test share one current-thread runtime, so intervals, timeouts,
//! `slow` faults and `Retry-After` pass in virtual time and the whole file
//! runs in about a second.

mod common;

use std::time::Duration;

use common::*;
use m365mon::sim::{Fault, IssueSpec, SimHandle, Target};

fn sub(name: &str, tenant: &str, credential: &str, probes: &str) -> String {
    format!("  - name: {name}\n    tenant_id: {tenant}\n    credential: {credential}\n    probes:\n{probes}")
}

fn one(kind: &str) -> String {
    format!("      - type: {kind}\n")
}

/// All seven probe kinds for Alpha (or a clone of it: users, site and team are copied).
fn all_probes() -> String {
    format!(
        "      - type: auth\n      - type: organization\n      - type: exchange\n        mailbox: monitor@alpha.example\n      - type: sharepoint\n        site: https://alpha.sharepoint.com/sites/monitoring\n      - type: onedrive\n        user: monitor@alpha.example\n      - type: teams\n        team_id: {ALPHA_TEAM}\n      - type: service_health\n"
    )
}

const ALL: [&str; 7] = ["auth", "organization", "exchange", "sharepoint", "onedrive", "teams", "service_health"];

/// Requests the simulator answered for `tenant` whose path contains `part`.
fn sim_requests(sim: &SimHandle, tenant: &str, part: &str) -> usize {
    sim.requests().iter().filter(|r| r.tenant.as_deref() == Some(tenant) && r.path.contains(part)).count()
}

/// Waits (virtual time) until every (subscription, probe) has completed a run.
async fn wait_all_ran(e: &Exporter, pairs: &[(&str, &str)]) -> Metrics {
    e.wait_metrics("every probe to complete a run", Duration::from_secs(120), |m| {
        pairs.iter().all(|(s, p)| m.runs(s, p) >= 1.0).then(|| m.clone())
    })
    .await
}

#[tokio::test(start_paused = true)]
async fn every_probe_kind_succeeds_and_service_health_is_exported() {
    let sim = start_sim(world()).await;
    sim.set_service_status(ALPHA, "Exchange Online", "serviceDegradation");
    // Compared without regard to case; unknown values become `unknown`.
    sim.set_service_status(ALPHA, "Microsoft Teams", "SERVICERESTORED");
    sim.set_service_status(ALPHA, "Microsoft Intune", "somethingMicrosoftAddsLater");
    let mut spec = IssueSpec::new("EX000199", "Exchange Online");
    spec.classification = Some("advisory".into());
    sim.open_issue(ALPHA, spec);

    let yaml = format!(
        "{}credentials:\n{}subscriptions:\n{}",
        global(&sim, "30s", "5s"),
        secret_credential("app", SECRET_APP, SECRET),
        sub("alpha", ALPHA, "app", &all_probes()),
    );
    let e = Exporter::start(&yaml).await;
    let pairs: Vec<(&str, &str)> = ALL.iter().map(|p| ("alpha", *p)).collect();
    let m = wait_all_ran(&e, &pairs).await;
    for p in ALL {
        assert_eq!(m.success("alpha", p), Some(1.0), "{p}:\n{}", m.text);
        assert_eq!(m.last_failure("alpha", p), None, "{p}");
        assert!(m.all("m365mon_probe_failures_total", &[("subscription", "alpha"), ("probe", p)]).is_empty());
        assert_eq!(m.value("m365mon_probe_throttled_total", &[("subscription", "alpha"), ("probe", p)]), 0.0);
        let l = [("subscription", "alpha"), ("probe", p)];
        assert_eq!(m.value("m365mon_probe_duration_seconds_count", &l), m.runs("alpha", p));
        assert!(m.get("m365mon_probe_last_success_timestamp_seconds", &l).is_some());
        assert!(m.get("m365mon_probe_last_run_timestamp_seconds", &l).is_some());
    }
    // Each Graph request went to the path the README documents.
    for path in [
        "/graph/v1.0/organization",
        "/graph/v1.0/users/monitor@alpha.example/mailFolders/inbox",
        "/graph/v1.0/sites/alpha.sharepoint.com:/sites/monitoring",
        "/graph/v1.0/users/monitor@alpha.example/drive",
        &format!("/graph/v1.0/teams/{ALPHA_TEAM}"),
        "/graph/v1.0/admin/serviceAnnouncement/healthOverviews",
        "/graph/v1.0/admin/serviceAnnouncement/issues",
    ] {
        assert!(sim.requests().iter().any(|r| r.path == path && r.status == Some(200)), "no successful GET {path}");
    }

    let status = |svc: &str| {
        let all = m.all("m365mon_service_health_status", &[("subscription", "alpha"), ("service_name", svc)]);
        assert_eq!(all.len(), 1, "one status series for {svc}:\n{}", m.text);
        assert_eq!(all[0].value, 1.0);
        all[0].labels["status"].clone()
    };
    let operational =
        |svc: &str| m.get("m365mon_service_operational", &[("subscription", "alpha"), ("service_name", svc)]).unwrap();
    assert_eq!(status("Exchange Online"), "serviceDegradation");
    assert_eq!(operational("Exchange Online"), 0.0);
    assert_eq!(status("Microsoft Teams"), "serviceRestored");
    assert_eq!(operational("Microsoft Teams"), 1.0);
    assert_eq!(status("Microsoft Intune"), "unknown");
    assert_eq!(operational("Microsoft Intune"), 0.0);
    assert_eq!(status("SharePoint Online"), "serviceOperational");
    assert_eq!(operational("SharePoint Online"), 1.0);

    // Unresolved issues only: the fixture's resolved ones are not counted.
    let issues = |svc: &str, class: &str| {
        m.get(
            "m365mon_service_issues_active",
            &[("subscription", "alpha"), ("service_name", svc), ("classification", class)],
        )
    };
    assert_eq!(issues("Exchange Online", "incident"), Some(1.0));
    assert_eq!(issues("Exchange Online", "advisory"), Some(1.0));
    assert_eq!(issues("SharePoint Online", "advisory"), Some(1.0));
    assert_eq!(issues("SharePoint Online", "incident"), Some(0.0));
    assert_eq!(issues("Microsoft Teams", "incident"), Some(1.0));
    assert_eq!(issues("Microsoft Intune", "incident"), Some(0.0));

    // Incidents resolve and services recover: the next run shows it.
    sim.resolve_issue(ALPHA, "EX000101");
    sim.set_service_status(ALPHA, "Exchange Online", "serviceOperational");
    let m = e
        .wait_metrics("the resolved incident", Duration::from_secs(120), |m| {
            let l = [("subscription", "alpha"), ("service_name", "Exchange Online"), ("classification", "incident")];
            (m.get("m365mon_service_issues_active", &l) == Some(0.0)).then(|| m.clone())
        })
        .await;
    assert_eq!(
        m.get("m365mon_service_operational", &[("subscription", "alpha"), ("service_name", "Exchange Online")]),
        Some(1.0)
    );

    // /probe runs them all now and returns the same kinds of series.
    let p = e.probe("subscription=alpha").await;
    for probe in ALL {
        assert_eq!(p.success("alpha", probe), Some(1.0), "{probe}:\n{}", p.text);
    }
    assert_eq!(
        p.get("m365mon_service_operational", &[("subscription", "alpha"), ("service_name", "Microsoft Intune")]),
        Some(0.0)
    );
}

/// One failing subscription per case: (name, probe, expected reason).
struct Case {
    name: &'static str,
    probe: &'static str,
    reason: &'static str,
}

#[tokio::test(start_paused = true)]
async fn every_failure_reason_is_reported() {
    let mut w = world();
    // Graph faults, each on its own copy of Alpha (faults are per tenant and target).
    let graph_faults: [(&str, Target, Fault, &str, &str); 9] = [
        ("timeout", Target::Organization, Fault::Slow { delay: Duration::from_secs(30) }, "organization", "timeout"),
        ("network", Target::Organization, Fault::ConnectionReset, "organization", "network"),
        ("http-5xx", Target::Exchange, Fault::Down, "exchange", "http_5xx"),
        ("server-error", Target::Teams, Fault::ServerError, "teams", "http_5xx"),
        ("unauthorized", Target::Organization, Fault::BadSecret, "organization", "unauthorized"),
        ("forbidden", Target::Sharepoint, Fault::Forbidden, "sharepoint", "forbidden"),
        ("not-found", Target::Onedrive, Fault::NotFound, "onedrive", "not_found"),
        ("invalid-response", Target::ServiceHealth, Fault::Malformed, "service_health", "invalid_response"),
        ("malformed-org", Target::Organization, Fault::Malformed, "organization", "invalid_response"),
    ];
    // Token endpoint faults, seen by every probe of the tenant.
    let token_faults: [(&str, Fault, &str); 8] = [
        ("token-bad-secret", Fault::BadSecret, "credential_invalid"),
        ("token-expired", Fault::ExpiredSecret, "credential_expired"),
        ("token-not-consented", Fault::NotConsented, "not_consented"),
        ("token-unknown-tenant", Fault::UnknownTenant, "tenant_not_found"),
        ("token-down", Fault::Down, "http_5xx"),
        ("token-reset", Fault::ConnectionReset, "network"),
        ("token-malformed", Fault::Malformed, "invalid_response"),
        // Conditional Access (AADSTS53003): none of the specific reasons.
        ("token-forbidden", Fault::Forbidden, "auth_failed"),
    ];
    let mut n = 0;
    let mut tenants = Vec::new();
    for _ in 0..graph_faults.len() + token_faults.len() {
        n += 1;
        let id = tenant_guid(n);
        clone_tenant(&mut w, ALPHA, &id, &format!("clone{n}.onmicrosoft.com"));
        tenants.push(id);
    }
    let sim = start_sim(w).await;

    let mut cases = Vec::new();
    let mut subs = String::new();
    for (i, (name, target, fault, probe, reason)) in graph_faults.iter().enumerate() {
        sim.set_fault(&tenants[i], *target, *fault);
        let probes = all_probes();
        // Only the faulted probe, so the case is unambiguous; `timeout` gets a short timeout.
        let entry = probes
            .split("      - ")
            .find(|p| p.starts_with(&format!("type: {probe}\n")))
            .map(|p| format!("      - {p}"))
            .unwrap();
        let entry = if *name == "timeout" { format!("{entry}        timeout: 2s\n") } else { entry };
        subs.push_str(&sub(name, &tenants[i], "app", &entry));
        cases.push(Case { name, probe, reason });
    }
    for (j, (name, fault, reason)) in token_faults.iter().enumerate() {
        let t = &tenants[graph_faults.len() + j];
        sim.set_fault(t, Target::Token, *fault);
        subs.push_str(&sub(name, t, "app", &format!("{}{}", one("auth"), one("organization"))));
        cases.push(Case { name, probe: "auth", reason });
        cases.push(Case { name, probe: "organization", reason });
    }
    // Real sign-in failures, no faults: what a misconfigured tenant looks like.
    let real = format!(
        "{}{}{}{}{}{}",
        sub("wrong-secret", ALPHA, "wrong", &one("auth")),
        sub("expired-secret", ALPHA, "expired", &one("auth")),
        sub("not-consented", ALPHA, "lonely", &one("auth")),
        sub("no-such-tenant", "nosuchtenant.onmicrosoft.com", "app", &one("auth")),
        sub("no-roles", ALPHA, "noroles", &one("organization")),
        sub(
            "missing-things",
            ALPHA,
            "app",
            "      - type: exchange\n        mailbox: nobody@alpha.example\n      - type: sharepoint\n        site: https://alpha.sharepoint.com/sites/nothing-here\n      - type: teams\n        team_id: b0000000-0000-4000-8000-00000000ffff\n      - type: onedrive\n        user: guest@alpha.example\n"
        ),
    );
    subs.push_str(&real);
    for (name, probe, reason) in [
        ("wrong-secret", "auth", "credential_invalid"),
        ("expired-secret", "auth", "credential_expired"),
        ("not-consented", "auth", "not_consented"),
        ("no-such-tenant", "auth", "tenant_not_found"),
        ("no-roles", "organization", "forbidden"),
        ("missing-things", "exchange", "not_found"),
        ("missing-things", "sharepoint", "not_found"),
        ("missing-things", "teams", "not_found"),
        ("missing-things", "onedrive", "not_found"),
    ] {
        cases.push(Case { name, probe, reason });
    }
    let yaml = format!(
        "{}credentials:\n{}{}{}{}{}subscriptions:\n{}{}",
        global(&sim, "1m", "10s"),
        secret_credential("app", SECRET_APP, SECRET),
        secret_credential("wrong", SECRET_APP, "not-the-secret"),
        secret_credential("expired", SECRET_APP, EXPIRED_SECRET),
        secret_credential("lonely", LONELY_APP, LONELY_SECRET),
        secret_credential("noroles", NOROLES_APP, "noroles-secret"),
        sub("healthy", ALPHA, "app", &all_probes()),
        subs,
    );
    let e = Exporter::start(&yaml).await;
    let mut pairs: Vec<(&str, &str)> = cases.iter().map(|c| (c.name, c.probe)).collect();
    pairs.extend(ALL.iter().map(|p| ("healthy", *p)));
    let m = wait_all_ran(&e, &pairs).await;

    let mut seen = std::collections::BTreeSet::new();
    for c in &cases {
        let l = [("subscription", c.name), ("probe", c.probe)];
        assert_eq!(m.success(c.name, c.probe), Some(0.0), "{}/{}:\n{}", c.name, c.probe, m.text);
        assert_eq!(m.last_failure(c.name, c.probe).as_deref(), Some(c.reason), "{}/{}", c.name, c.probe);
        let failures = m.all("m365mon_probe_failures_total", &l);
        assert_eq!(failures.len(), 1, "{}/{}: one reason:\n{}", c.name, c.probe, m.text);
        assert_eq!(failures[0].labels["reason"], c.reason);
        assert_eq!(failures[0].value, m.runs(c.name, c.probe));
        assert_eq!(m.get("m365mon_probe_last_success_timestamp_seconds", &l), None);
        seen.insert(c.reason);
        // /probe reports the same reason (for sign-in failures from the back-off).
        let (status, body) = e.get(&format!("/probe?subscription={}&probe={}&debug=true", c.name, c.probe)).await;
        assert_eq!(status, 200);
        let want = format!(
            "m365mon_probe_last_failure_reason{{subscription=\"{}\",probe=\"{}\",reason=\"{}\"}} 1",
            c.name, c.probe, c.reason
        );
        assert!(body.contains(&want), "{}/{}: {body}", c.name, c.probe);
    }
    // Every reason of the README but `throttled` (not a failure of a probe
    // run: see the throttling tests) appears.
    let expected = [
        "timeout",
        "network",
        "http_5xx",
        "unauthorized",
        "forbidden",
        "not_found",
        "invalid_response",
        "credential_invalid",
        "credential_expired",
        "not_consented",
        "tenant_not_found",
        "auth_failed",
    ];
    assert_eq!(seen, expected.into_iter().collect());

    // Sign-in failures are counted by reason.
    for (name, reason) in [
        ("wrong-secret", "credential_invalid"),
        ("expired-secret", "credential_expired"),
        ("token-not-consented", "not_consented"),
        ("token-down", "http_5xx"),
    ] {
        let l = [("subscription", name), ("reason", reason)];
        assert!(m.value("m365mon_token_request_failures_total", &l) >= 1.0, "{name}:\n{}", m.text);
    }
    // Meanwhile the healthy subscription on the same app is untouched.
    for p in ALL {
        assert_eq!(m.success("healthy", p), Some(1.0), "{p}:\n{}", m.text);
    }
    assert!(m.all("m365mon_probe_failures_total", &[("subscription", "healthy")]).is_empty());
    assert!(m.all("m365mon_token_request_failures_total", &[("subscription", "healthy")]).is_empty());

    // Healthy and failing subscriptions together pass promtool.
    let (ok, out) = tools::promtool_check_metrics(&m.text);
    assert!(ok, "promtool check metrics:\n{out}");
}

/// Throttling is not an outage: 429 and 503 with Retry-After are counted as
/// throttled, `m365mon_probe_success` stays, the throttled workload waits for
/// Retry-After (OneDrive with SharePoint) while the others keep running.
#[tokio::test(start_paused = true)]
async fn throttling_waits_per_workload_and_is_not_a_failure() {
    let mut w = world();
    let t = tenant_guid(1);
    clone_tenant(&mut w, ALPHA, &t, "throttled.onmicrosoft.com");
    let sim = start_sim(w).await;
    let yaml = format!(
        "{}credentials:\n{}subscriptions:\n{}",
        global(&sim, "10s", "5s"),
        secret_credential("app", SECRET_APP, SECRET),
        sub("t", &t, "app", &all_probes()),
    );
    let e = Exporter::start(&yaml).await;
    let pairs: Vec<(&str, &str)> = ALL.iter().map(|p| ("t", *p)).collect();
    wait_all_ran(&e, &pairs).await;

    // SharePoint answers 429 with Retry-After: 120; Teams 503 with Retry-After: 120.
    let ra = Duration::from_secs(120);
    sim.set_fault(&t, Target::Sharepoint, Fault::Throttled { retry_after: ra });
    sim.set_fault(&t, Target::Teams, Fault::Unavailable { retry_after: ra });
    let throttled =
        |m: &Metrics, p: &str| m.value("m365mon_probe_throttled_total", &[("subscription", "t"), ("probe", p)]);
    let before = e
        .wait_metrics("SharePoint and Teams throttled", Duration::from_secs(30), |m| {
            (throttled(m, "sharepoint") == 1.0 && throttled(m, "teams") == 1.0).then(|| m.clone())
        })
        .await;
    let at = tokio::time::Instant::now();
    let (sp, od, ex, tm) = (
        sim_requests(&sim, &t, "/sites/"),
        sim_requests(&sim, &t, "/drive"),
        sim_requests(&sim, &t, "/mailFolders/"),
        sim_requests(&sim, &t, "/teams/"),
    );
    // On demand, a throttled workload is not asked again either.
    let p = e.probe("subscription=t&probe=onedrive").await;
    assert_eq!(p.get("m365mon_probe_throttled", &[("subscription", "t"), ("probe", "onedrive")]), Some(1.0));
    assert_eq!(p.success("t", "onedrive"), None, "a throttled run has no success value:\n{}", p.text);

    // Most of the Retry-After later: nothing more was sent to SharePoint,
    // OneDrive or Teams; Exchange kept its rhythm.
    tokio::time::sleep_until(at + ra - Duration::from_secs(15)).await;
    let m = e.metrics().await;
    assert_eq!(sim_requests(&sim, &t, "/sites/"), sp, "SharePoint was asked again before Retry-After");
    assert_eq!(sim_requests(&sim, &t, "/drive"), od, "OneDrive shares SharePoint's throttling");
    assert_eq!(sim_requests(&sim, &t, "/teams/"), tm, "Teams was asked again before Retry-After");
    assert!(sim_requests(&sim, &t, "/mailFolders/") >= ex + 8, "Exchange kept running");
    assert!(m.runs("t", "exchange") >= before.runs("t", "exchange") + 8.0);
    for p in ["sharepoint", "teams"] {
        assert_eq!(m.success("t", p), Some(1.0), "{p}: throttling leaves success as it was:\n{}", m.text);
        assert_eq!(m.runs("t", p), before.runs("t", p), "{p}: throttled runs are not completed runs");
        assert_eq!(m.last_failure("t", p), None);
        assert!(m.all("m365mon_probe_failures_total", &[("subscription", "t"), ("probe", p)]).is_empty());
    }
    assert_eq!(m.success("t", "onedrive"), Some(1.0));

    // After Retry-After the workloads are asked again; once the throttling
    // ends they succeed.
    sim.clear_all_faults();
    let m = e
        .wait_metrics("SharePoint and Teams to run again", Duration::from_secs(60), |m| {
            ["sharepoint", "teams", "onedrive"].iter().all(|p| m.runs("t", p) > before.runs("t", p)).then(|| m.clone())
        })
        .await;
    assert!(tokio::time::Instant::now() >= at + ra - Duration::from_secs(1), "asked again only after Retry-After");
    for p in ["sharepoint", "teams", "onedrive"] {
        assert_eq!(m.success("t", p), Some(1.0));
        assert_eq!(throttled(&m, p), if p == "onedrive" { 0.0 } else { 1.0 });
    }
}

/// Throttling by the token endpoint (429, AADSTS90055) holds back sign-in
/// for Retry-After and is counted as throttled, not as a failed run.
#[tokio::test(start_paused = true)]
async fn a_throttled_token_endpoint_is_not_an_outage() {
    let sim = start_sim(world()).await;
    let yaml = format!(
        "{}credentials:\n{}subscriptions:\n{}",
        global(&sim, "10s", "5s"),
        secret_credential("app", SECRET_APP, SECRET),
        sub("alpha", ALPHA, "app", &one("auth")),
    );
    let e = Exporter::start(&yaml).await;
    wait_all_ran(&e, &[("alpha", "auth")]).await;
    sim.set_fault(ALPHA, Target::Token, Fault::Throttled { retry_after: Duration::from_secs(300) });
    let m = e
        .wait_metrics("auth throttled", Duration::from_secs(30), |m| {
            (m.value("m365mon_probe_throttled_total", &[("subscription", "alpha"), ("probe", "auth")]) >= 1.0)
                .then(|| m.clone())
        })
        .await;
    let sent = sim.token_requests(ALPHA);
    assert_eq!(m.success("alpha", "auth"), Some(1.0));
    assert_eq!(m.last_failure("alpha", "auth"), None);
    assert_eq!(
        m.value("m365mon_token_request_failures_total", &[("subscription", "alpha"), ("reason", "throttled")]),
        1.0
    );
    // Four minutes of 10 s ticks: no token request before Retry-After.
    tokio::time::sleep(Duration::from_secs(240)).await;
    assert_eq!(sim.token_requests(ALPHA), sent);
    let m = e.metrics().await;
    assert_eq!(m.success("alpha", "auth"), Some(1.0));
}

/// A tenant whose every workload fails in a different way changes nothing
/// in another tenant's results, even with few concurrency slots.
#[tokio::test(start_paused = true)]
async fn a_failing_tenant_changes_no_other_tenants_results() {
    let mut w = world();
    let bad = tenant_guid(1);
    clone_tenant(&mut w, ALPHA, &bad, "bad.onmicrosoft.com");
    let sim = start_sim(w).await;
    let start_exporter = |with_bad: bool| {
        let mut yaml = format!(
            "{}  max_concurrent_probes: 3\ncredentials:\n{}subscriptions:\n{}",
            global(&sim, "30s", "5s"),
            secret_credential("app", SECRET_APP, SECRET),
            sub("good", ALPHA, "app", &all_probes()),
        );
        if with_bad {
            yaml.push_str(&sub("bad", &bad, "app", &all_probes()));
        }
        async move { Exporter::start(&yaml).await }
    };
    for (target, fault) in [
        (Target::Organization, Fault::Down),
        (Target::Exchange, Fault::Slow { delay: Duration::from_secs(60) }),
        (Target::Sharepoint, Fault::ConnectionReset),
        (Target::Onedrive, Fault::Malformed),
        (Target::Teams, Fault::Throttled { retry_after: Duration::from_secs(60) }),
        (Target::ServiceHealth, Fault::Forbidden),
    ] {
        sim.set_fault(&bad, target, fault);
    }
    sim.set_service_status(ALPHA, "SharePoint Online", "investigating");

    let e = start_exporter(true).await;
    tokio::time::sleep(Duration::from_secs(10 * 60)).await;
    let m = e.metrics().await;
    // The bad tenant did fail.
    assert_eq!(m.last_failure("bad", "exchange").as_deref(), Some("timeout"));
    assert_eq!(m.last_failure("bad", "organization").as_deref(), Some("http_5xx"));
    // The good one: every probe ran on schedule (20 ticks in 10 minutes) and succeeded.
    for p in ALL {
        assert_eq!(m.success("good", p), Some(1.0), "{p}:\n{}", m.text);
        assert!(m.runs("good", p) >= 19.0, "{p} ran {} times", m.runs("good", p));
        assert_eq!(m.value("m365mon_probe_throttled_total", &[("subscription", "good"), ("probe", p)]), 0.0);
    }
    assert!(m.all("m365mon_probe_failures_total", &[("subscription", "good")]).is_empty());
    assert!(m.all("m365mon_probe_last_failure_reason", &[("subscription", "good")]).is_empty());
    let good_health = |m: &Metrics| {
        let mut v: Vec<(String, String)> = m
            .all("m365mon_service_health_status", &[("subscription", "good")])
            .iter()
            .map(|s| (s.labels["service_name"].clone(), s.labels["status"].clone()))
            .collect();
        v.sort();
        v
    };
    assert!(good_health(&m).contains(&("SharePoint Online".into(), "investigating".into())));
    assert!(m.all("m365mon_service_health_status", &[("subscription", "bad")]).is_empty());

    // The same subscription without the bad neighbour has the same results.
    drop(e);
    let alone = start_exporter(false).await;
    tokio::time::sleep(Duration::from_secs(10 * 60)).await;
    let a = alone.metrics().await;
    assert_eq!(good_health(&a), good_health(&m));
    for p in ALL {
        assert_eq!(a.success("good", p), m.success("good", p));
        assert_eq!(a.runs("good", p), m.runs("good", p), "{p}: the same number of runs");
    }
}

/// A Retry-After too large to add to a clock (here u64::MAX seconds) must
/// neither crash a probe nor silence it forever: the exporter caps the wait.
#[tokio::test(start_paused = true)]
async fn an_absurd_retry_after_is_capped() {
    let sim = start_sim(world()).await;
    let yaml = format!(
        "{}credentials:\n{}subscriptions:\n{}",
        global(&sim, "1m", "5s"),
        secret_credential("app", SECRET_APP, SECRET),
        sub("alpha", ALPHA, "app", &format!("{}{}", one("organization"), one("auth"))),
    );
    let e = Exporter::start(&yaml).await;
    wait_all_ran(&e, &[("alpha", "organization"), ("alpha", "auth")]).await;
    let forever = Duration::from_secs(u64::MAX);
    let throttled =
        |m: &Metrics| m.value("m365mon_probe_throttled_total", &[("subscription", "alpha"), ("probe", "organization")]);
    let runs_after_throttling = |before: f64| {
        let e = &e;
        async move {
            let at = tokio::time::Instant::now();
            let m = e
                .wait_metrics("organization to run again", Duration::from_secs(2 * 3600), |m| {
                    (m.runs("alpha", "organization") > before).then(|| m.clone())
                })
                .await;
            let waited = at.elapsed();
            assert!(waited >= Duration::from_secs(3500) && waited <= Duration::from_secs(3700), "{waited:?}");
            m
        }
    };
    // On demand: the 429 is answered as throttled, and the workload waits.
    sim.set_fault(ALPHA, Target::Organization, Fault::Throttled { retry_after: forever });
    let p = e.probe("subscription=alpha&probe=organization").await;
    assert_eq!(p.get("m365mon_probe_throttled", &[("subscription", "alpha"), ("probe", "organization")]), Some(1.0));
    sim.clear_all_faults();
    let before = e.metrics().await.runs("alpha", "organization");
    let m = runs_after_throttling(before).await;
    assert_eq!(m.success("alpha", "organization"), Some(1.0));

    // Scheduled: counted as throttled; the probe task survives it.
    sim.set_fault(ALPHA, Target::Organization, Fault::Throttled { retry_after: forever });
    let m = e
        .wait_metrics("a scheduled throttled run", Duration::from_secs(120), |m| {
            (throttled(m) >= 1.0).then(|| m.clone())
        })
        .await;
    sim.clear_all_faults();
    let m = runs_after_throttling(m.runs("alpha", "organization")).await;
    assert_eq!(m.success("alpha", "organization"), Some(1.0));
    assert_eq!(throttled(&m), 1.0);
    assert!(m.runs("alpha", "auth") >= 60.0, "the other probe kept running: {}", m.text);
}

/// A Graph error message whose 300th byte falls inside a character: the
/// probe reports `http_5xx` (it used to panic, and the panic stopped the
/// probe's task until a restart), keeps running on schedule, and the debug
/// log shows the message cut before that character.
#[tokio::test(start_paused = true)]
async fn non_ascii_graph_error_message_is_cut_at_a_character() {
    let sim = start_sim(world()).await;
    // "a" then 2-byte characters: every character starts at an odd offset, so byte 300 is inside one.
    let message = format!("a{}", "é".repeat(400));
    sim.set_server_error_message(Some(&message));
    sim.set_fault(ALPHA, Target::Organization, Fault::ServerError);
    let yaml = format!(
        "{}credentials:\n{}subscriptions:\n{}",
        global(&sim, "30s", "5s"),
        secret_credential("app", SECRET_APP, SECRET),
        sub("alpha", ALPHA, "app", &one("organization")),
    );
    let e = Exporter::start(&yaml).await;
    let m = e
        .wait_metrics("two scheduled runs", Duration::from_secs(120), |m| {
            (m.runs("alpha", "organization") >= 2.0).then(|| m.clone())
        })
        .await;
    assert_eq!(m.last_failure("alpha", "organization").as_deref(), Some("http_5xx"), "{}", m.text);

    let (status, body) = e.get("/probe?subscription=alpha&debug=true").await;
    assert_eq!(status, 200, "{body}");
    let cut = format!("error: generalException: a{}\n", "é".repeat(149));
    assert!(body.contains(&cut), "message not cut at 299 bytes:\n{body}");
    assert!(body.contains("m365mon_probe_success{subscription=\"alpha\",probe=\"organization\"} 0"), "{body}");
}
