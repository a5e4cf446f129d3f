//! End to end (issue 3): the simulator, m365mon (the built binary), the real
//! Prometheus with the shipped rules and the real Alertmanager with the
//! shipped routing, on loopback, with the waiting times of rules and routing
//! scaled down 30x (tests/e2e/timing.rs). alerting/README.md, "End-to-end
//! test", describes the phases and their timing.
//!
//! Needs `prometheus`, `prometheus-alertmanager` (Debian packages of those
//! names) and `python3` (for scripts/check-dashboards --queries); a missing
//! tool fails the test with the install command.

#[path = "common/tools.rs"]
mod tools;

#[path = "e2e/names.rs"]
mod names;
#[path = "e2e/sinks.rs"]
mod sinks;
#[path = "e2e/stack.rs"]
mod stack;
#[path = "e2e/support.rs"]
mod support;
#[path = "e2e/timing.rs"]
mod timing;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use m365mon::sim::{Customer, Fault, IssueSpec, Relationship, Target};

use sinks::{Notification, WebhookSink};
use stack::{DELEGATED_SUB, EXTRA_PROBES, LITWARE, OPS, PARTNER, PROBES, SUBS, Stack, sub};
use support::wait_for;

/// The hard limit for the whole test, start-up included.
const DEADLINE: Duration = Duration::from_secs(300);
/// The limit for any one wait for a condition.
const STEP: Duration = Duration::from_secs(60);

const PAGE: &str = "/m365mon/page";
const NOC: &str = "/m365mon/noc";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outages_reach_exactly_the_owning_admins_and_dashboards_have_data() {
    for tool in ["prometheus", "prometheus-alertmanager", "python3", "promtool"] {
        tools::require(tool);
    }
    let started = Instant::now();
    match tokio::time::timeout(DEADLINE, scenario()).await {
        Ok(timings) => eprintln!("e2e timings: {timings}; total {:?}", started.elapsed()),
        // The scenario future, and with it the stack, is dropped here: processes killed, temp dir removed.
        Err(_) => panic!("the end-to-end test did not finish within {DEADLINE:?}"),
    }
}

async fn scenario() -> String {
    let t = Instant::now();
    let mut stack = Stack::start().await;
    let mut timings = format!("start-up {:?}", t.elapsed());

    let t = Instant::now();
    one_subscription_down(&stack).await;
    timings += &format!(", single outage {:?}", t.elapsed());
    stack.assert_running();

    let t = Instant::now();
    widespread_outage(&stack).await;
    timings += &format!(", widespread outage {:?}", t.elapsed());
    stack.assert_running();

    let t = Instant::now();
    dashboards_and_metrics(&stack).await;
    timings += &format!(", dashboards {:?}", t.elapsed());
    stack.assert_running();
    timings
}

fn is_alert(a: &sinks::Alert, name: &str, sub: &str, probe: &str) -> bool {
    a.label("alertname") == name && a.label("subscription") == sub && a.label("probe") == probe
}

fn show(notes: &[Notification]) -> String {
    notes.iter().map(|n| format!("\n  {}", n.brief())).collect()
}

/// Waits until every webhook notification since `mark` has its e-mail twin
/// since `mail_mark` (the receivers have one e-mail and one webhook each):
/// the same number per recipient, the admin's address for admin receivers and
/// the NOC address for the NOC. E-mail and webhook are sent independently, so
/// this also keeps one phase's late e-mail out of the next phase.
async fn wait_mails_match_webhooks(stack: &Stack, mark: usize, mail_mark: usize) {
    wait_for("an e-mail for every webhook notification", STEP, || async {
        let mut want: std::collections::BTreeMap<String, usize> = Default::default();
        for n in stack.webhooks.since(mark) {
            let to = if n.path == NOC { "noc@example.com".to_string() } else { n.admin().unwrap_or("?").to_string() };
            *want.entry(to).or_default() += 1;
        }
        let mut got: std::collections::BTreeMap<String, usize> = Default::default();
        for m in stack.mails.all().split_off(mail_mark) {
            for r in m.rcpt {
                *got.entry(r).or_default() += 1;
            }
        }
        if want == got { Ok(()) } else { Err(format!("webhooks per recipient {want:?}, e-mails {got:?}")) }
    })
    .await;
}

/// Exchange down in one subscription: its admins (the admin of all
/// subscriptions included) get the page, by webhook and e-mail, nobody else
/// does; after the fault is cleared they get the resolved notification.
async fn one_subscription_down(stack: &Stack) {
    let out = sub("contoso");
    let mark = stack.webhooks.len();
    let mail_mark = stack.mails.len();
    stack.sim.set_fault(out.tenant, Target::Exchange, Fault::Down);

    let paged = |status: &'static str| {
        let hooks: &WebhookSink = &stack.webhooks;
        move || async move {
            let notes = hooks.since(mark);
            let missing: Vec<&str> = out
                .admins
                .iter()
                .copied()
                .filter(|admin| {
                    !notes.iter().any(|n| {
                        n.path == PAGE
                            && n.admin() == Some(admin)
                            && n.alerts().iter().any(|a| {
                                is_alert(a, "M365monProbeFailing", out.name, "exchange")
                                    && a.status == status
                                    && a.label("admin") == *admin
                            })
                    })
                })
                .collect();
            if missing.is_empty() {
                Ok(())
            } else {
                Err(format!("no {status} page yet for {missing:?}; seen:{}", show(&notes)))
            }
        }
    };
    wait_for("the page for contoso/exchange to reach its admins", STEP, paged("firing")).await;
    wait_for("the e-mail pages for contoso", STEP, || async {
        let mails = stack.mails.all().split_off(mail_mark);
        let missing: Vec<&&str> = out
            .admins
            .iter()
            .filter(|a| !mails.iter().any(|m| m.rcpt.iter().any(|r| r == *a) && m.subject.contains("FIRING")))
            .collect();
        if missing.is_empty() { Ok(()) } else { Err(format!("no e-mail yet for {missing:?}; mails: {mails:?}")) }
    })
    .await;

    stack.sim.clear_fault(out.tenant, Target::Exchange);
    wait_for("the resolved notification for contoso/exchange", STEP, paged("resolved")).await;
    wait_mails_match_webhooks(stack, mark, mail_mark).await;

    // Nobody else heard anything, and nothing was about another subscription.
    let notes = stack.webhooks.since(mark);
    for n in &notes {
        assert_ne!(n.path, NOC, "the NOC was notified about a single subscription's outage:{}", show(&notes));
        let admin = n.admin().unwrap_or_else(|| panic!("notification without an admin:{}", show(&notes)));
        assert!(out.admins.contains(&admin), "{admin} is not an admin of contoso but was notified:{}", show(&notes));
        for a in n.alerts() {
            assert_eq!(a.label("subscription"), out.name, "alert about another subscription:{}", show(&notes));
            assert_eq!(a.label("admin"), admin, "alert of another admin in {admin}'s notification:{}", show(&notes));
        }
    }
    for m in stack.mails.all().split_off(mail_mark) {
        for r in &m.rcpt {
            assert!(out.admins.contains(&r.as_str()), "e-mail to {r}, who is not an admin of contoso: {m:?}");
        }
        assert!(m.subject.contains("contoso"), "e-mail subject does not name the subscription: {m:?}");
    }
}

/// Exchange down in four of five subscriptions: every affected admin gets one
/// M365monWidespreadOutage page and no per-subscription page (those alerts
/// are in Alertmanager, inhibited), then its resolved notification once the
/// outage ends; the NOC gets one notification; the admin of the unaffected
/// subscription gets nothing.
async fn widespread_outage(stack: &Stack) {
    let affected = ["contoso", "fabrikam", "northwind", "tailspin"];
    let admins: BTreeSet<&str> = affected.iter().flat_map(|s| sub(s).admins.iter().copied()).collect();
    let mark = stack.webhooks.len();
    let mail_mark = stack.mails.len();
    for s in affected {
        stack.sim.set_fault(sub(s).tenant, Target::Exchange, Fault::Down);
    }

    wait_for("the widespread-outage page for every affected admin and the NOC", STEP, || async {
        let notes = stack.webhooks.since(mark);
        let widespread = |n: &Notification| {
            n.alerts().iter().any(|a| {
                a.label("alertname") == "M365monWidespreadOutage"
                    && a.label("probe") == "exchange"
                    && a.status == "firing"
            })
        };
        let mut missing: Vec<String> = admins
            .iter()
            .filter(|a| !notes.iter().any(|n| n.path == PAGE && n.admin() == Some(a) && widespread(n)))
            .map(|a| a.to_string())
            .collect();
        if !notes.iter().any(|n| n.path == NOC && widespread(n)) {
            missing.push("the NOC".into());
        }
        if missing.is_empty() { Ok(()) } else { Err(format!("not yet paged: {missing:?}; seen:{}", show(&notes))) }
    })
    .await;

    // The per-subscription alerts exist in Alertmanager and are inhibited.
    let expected: BTreeSet<(String, String)> =
        affected.iter().flat_map(|s| sub(s).admins.iter().map(move |a| (s.to_string(), a.to_string()))).collect();
    wait_for("every per-subscription alert to be in Alertmanager, inhibited", STEP, || async {
        let alerts = stack.alertmanager_alerts().await?;
        let mut got = BTreeSet::new();
        let mut not_inhibited = Vec::new();
        for a in &alerts {
            let l = &a["labels"];
            if l["alertname"] != "M365monProbeFailing" || l["probe"] != "exchange" {
                continue;
            }
            let key =
                (l["subscription"].as_str().unwrap_or("").to_string(), l["admin"].as_str().unwrap_or("").to_string());
            let inhibited = a["status"]["state"] == "suppressed"
                && a["status"]["inhibitedBy"].as_array().is_some_and(|v| !v.is_empty());
            if !inhibited {
                not_inhibited.push(format!("{key:?} {}", a["status"]));
            }
            got.insert(key);
        }
        if !not_inhibited.is_empty() {
            return Err(format!("not inhibited: {not_inhibited:?}"));
        }
        if got == expected {
            Ok(())
        } else {
            Err(format!("ProbeFailing alerts in Alertmanager: {got:?}, want {expected:?}"))
        }
    })
    .await;

    // End the outage. Subscriptions recover over one probe interval; the
    // widespread alert outlives the per-subscription alerts it inhibits, so
    // the admins get its resolved notification and never a page for a single
    // subscription. (Waiting for the resolved notifications is also a longer
    // observation window than Alertmanager's group_wait + group_interval, in
    // which an uninhibited per-subscription page would have been sent.)
    for s in affected {
        stack.sim.clear_fault(sub(s).tenant, Target::Exchange);
    }
    wait_for("the resolved widespread-outage notifications", STEP, || async {
        let notes = stack.webhooks.since(mark);
        let resolved = |n: &Notification| {
            n.status() == "resolved"
                && n.alerts()
                    .iter()
                    .any(|a| a.label("alertname") == "M365monWidespreadOutage" && a.status == "resolved")
        };
        let mut missing: Vec<String> = admins
            .iter()
            .filter(|a| !notes.iter().any(|n| n.path == PAGE && n.admin() == Some(a) && resolved(n)))
            .map(|a| a.to_string())
            .collect();
        if !notes.iter().any(|n| n.path == NOC && resolved(n)) {
            missing.push("the NOC".into());
        }
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!("not yet resolved for {missing:?}; seen:{}", show(&notes)))
        }
    })
    .await;

    let notes = stack.webhooks.since(mark);
    for n in &notes {
        for a in n.alerts() {
            assert!(
                a.status != "firing" || a.label("alertname") == "M365monWidespreadOutage",
                "a per-subscription alert was notified in a widespread outage: {}\nall:{}",
                a.brief(),
                show(&notes)
            );
        }
        if let Some(admin) = n.admin() {
            assert!(admins.contains(admin), "{admin} owns no affected subscription but was notified:{}", show(&notes));
        }
    }
    for admin in &admins {
        let firing =
            notes.iter().filter(|n| n.path == PAGE && n.admin() == Some(admin) && n.status() == "firing").count();
        assert_eq!(firing, 1, "{admin} got {firing} firing pages for one widespread outage:{}", show(&notes));
    }
    let noc = notes.iter().filter(|n| n.path == NOC && n.status() == "firing").count();
    assert_eq!(noc, 1, "the NOC got {noc} firing notifications for one widespread outage:{}", show(&notes));
    wait_mails_match_webhooks(stack, mark, mail_mark).await;
    let mails = stack.mails.all().split_off(mail_mark);
    for admin in &admins {
        let n = mails.iter().filter(|m| m.subject.contains("FIRING") && m.rcpt.iter().any(|r| r == admin)).count();
        assert_eq!(n, 1, "{admin} got {n} firing e-mails for one widespread outage: {mails:?}");
    }
    for m in &mails {
        for r in &m.rcpt {
            assert!(admins.contains(r.as_str()) || r == "noc@example.com", "e-mail to {r}: {m:?}");
        }
    }
    assert!(!admins.contains("dave@wingtip.example") && admins.contains(OPS));
}

/// Dashboard queries that rightly return no data in this test, each with why.
/// Exact `dashboard / panel / ref` names: everything else must have data.
const NO_DATA_EXPECTED: &[(&str, &str)] = &[(
    "m365mon-fleet / Needs attention / C",
    "partner discovery counts as failing only after its last success is 3 refresh intervals and at least \
     discovery_stale_min_seconds (3h, not scaled for this test) old",
)];

/// With failures, a failed sign-in, a degraded service and an open incident
/// in place, and a delegated sign-in that needs `m365mon login`, a GDAP
/// relationship that ends in 10 days and a failed discovery refresh, every
/// dashboard query returns data from this Prometheus (but the few of
/// [`NO_DATA_EXPECTED`]), and every metric a dashboard or rule names is in
/// m365mon's output.
async fn dashboards_and_metrics(stack: &Stack) {
    let wingtip = sub("wingtip");
    stack.sim.set_fault(wingtip.tenant, Target::Token, Fault::ExpiredSecret);
    let contoso = sub("contoso");
    stack.sim.set_service_status(contoso.tenant, "Exchange Online", "serviceDegradation");
    stack.sim.open_issue(contoso.tenant, IssueSpec::new("EX900001", "Exchange Online"));
    // Entra ID rejects the delegated refresh token: reauth required.
    stack.sim.set_fault(LITWARE, Target::Token, Fault::RefreshRevoked);
    // The partner's relationship with Litware now ends in 10 days.
    let mut litware = Customer::new(LITWARE, "Litware");
    litware.relationships =
        vec![Relationship { end: Some(iso8601(unix_now() + 10 * 86400)), ..Relationship::default() }];
    stack.sim.upsert_customer(PARTNER, litware);
    // One failed discovery refresh (the failure series appears with it), then
    // discovery works again: the last good list stays, nothing is notified.
    stack.sim.set_fault(PARTNER, Target::TenantRelationships, Fault::Down);
    wait_for("a failed discovery refresh", STEP, || async {
        let text = stack.metrics().await;
        if text.contains("m365mon_discovery_refresh_failures_total{") {
            Ok(())
        } else {
            Err("no m365mon_discovery_refresh_failures_total yet".to_string())
        }
    })
    .await;
    stack.sim.clear_fault(PARTNER, Target::TenantRelationships);
    wait_for("the delegated sign-in to need m365mon login", STEP, || async {
        let text = stack.metrics().await;
        let line = format!("m365mon_credential_reauth_required{{subscription=\"{DELEGATED_SUB}\"}} 1");
        if text.contains(&line) { Ok(()) } else { Err(format!("no `{line}` in /metrics yet")) }
    })
    .await;

    let queries = names::dashboard_queries(&[
        ("__rate_interval", "30s"),
        ("__interval", "2m"),
        ("__range", "5m"),
        ("__range_s", "300"),
        ("__user.email", OPS),
    ]);
    // The availability report compares 1-minute steps with the step before
    // (`offset 1m`): those queries have data once Prometheus holds about two
    // minutes of history, hence the longer limit.
    wait_for("every dashboard query to return data", 2 * STEP + STEP / 2, || async {
        let mut empty = Vec::new();
        for q in &queries {
            let has_data = match q.kind.as_str() {
                "label_values" if q.expr.is_empty() => {
                    let url = format!("{}/api/v1/label/{}/values", stack.prometheus_url, q.label);
                    let v: serde_json::Value = stack
                        .http
                        .get(url)
                        .send()
                        .await
                        .map_err(|e| e.to_string())?
                        .json()
                        .await
                        .map_err(|e| e.to_string())?;
                    v["data"].as_array().is_some_and(|a| !a.is_empty())
                }
                "label_values" => {
                    let start = format!("{}", unix_now() - 300);
                    let v: serde_json::Value = stack
                        .http
                        .post(format!("{}/api/v1/series", stack.prometheus_url))
                        .form(&[("match[]", q.expr.as_str()), ("start", start.as_str())])
                        .send()
                        .await
                        .map_err(|e| e.to_string())?
                        .json()
                        .await
                        .map_err(|e| e.to_string())?;
                    if v["status"] != "success" {
                        return Err(format!("{}: Prometheus rejected {}: {}", q.where_, q.expr, v["error"]));
                    }
                    v["data"].as_array().is_some_and(|a| a.iter().any(|s| s[q.label.as_str()].is_string()))
                }
                _ => !stack.query(&q.expr).await.map_err(|e| format!("{}: {e}", q.where_))?.is_empty(),
            };
            let expected_empty = NO_DATA_EXPECTED.iter().any(|(w, _)| *w == q.where_);
            if !has_data && !expected_empty {
                empty.push(q.where_.clone());
            }
        }
        if empty.is_empty() { Ok(()) } else { Err(format!("{} queries without data: {empty:#?}", empty.len())) }
    })
    .await;
    for (w, why) in NO_DATA_EXPECTED {
        assert!(
            queries.iter().any(|q| q.where_ == *w),
            "NO_DATA_EXPECTED names {w}, which is no dashboard query ({why})"
        );
    }

    // Every metric a dashboard or rule names is exported (recording rules
    // excepted, but those must be recorded by the shipped rules).
    let exposition = stack.metrics().await;
    let exposed = names::exposed_names(&exposition);
    let recorded = names::recorded_names();
    let mut wanted: BTreeSet<String> = names::rule_metric_names();
    for q in &queries {
        for m in &q.metrics {
            if m.contains(':') {
                assert!(recorded.contains(m), "{} reads {m}, which no rule in alerting/rules records", q.where_);
            } else {
                wanted.insert(m.clone());
            }
        }
    }
    let missing: Vec<&String> = wanted.iter().filter(|m| !exposed.contains(*m)).collect();
    assert!(missing.is_empty(), "named by a dashboard or rule but not in m365mon's /metrics: {missing:?}");
    let (ok, out) = tools::promtool_check_metrics(&exposition);
    assert!(ok, "promtool check metrics on the live exposition:\n{out}");
    // Every (subscription, probe) of the config is exported.
    let pairs = SUBS.iter().flat_map(|s| PROBES.iter().map(move |p| (s.name, *p))).chain(EXTRA_PROBES.iter().copied());
    for (s, p) in pairs {
        let line = format!("m365mon_probe_runs_total{{subscription=\"{s}\",probe=\"{p}\"}}");
        assert!(exposition.contains(&line), "{line} missing from /metrics");
    }
    // Discovery contributes no subscription: Litware's are configured by GUID.
    assert!(
        exposition.contains("m365mon_discovery_subscriptions{discovery=\"msp\"} 0"),
        "discovery added subscriptions"
    );
    stack.sim.clear_all_faults();
}

/// `YYYY-MM-DDTHH:MM:SSZ` of a Unix time (proleptic Gregorian, UTC).
fn iso8601(t: u64) -> String {
    let (days, secs) = (t / 86400, t % 86400);
    // Howard Hinnant's civil_from_days.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z", secs / 3600, secs % 3600 / 60, secs % 60)
}

/// Seconds since the epoch.
fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}
