//! Partner tenant discovery against the in-process simulator: customers
//! become subscriptions, follow the partner's list without a restart, page,
//! honour exclusions and explicit subscriptions, survive failed refreshes,
//! and get unique names. Refreshes are triggered on demand
//! (`App::refresh_discovery`); waits are bounded conditions.

#[path = "common/tools.rs"]
mod tools;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use m365mon::app::{App, ConfigSource};
use m365mon::config::{ProbeKind, parse_str};
use m365mon::discovery::RefreshError;
use m365mon::metrics::{BuildInfo, encode};
use m365mon::probe::{FailureReason, Outcome};
use m365mon::sim::{self, Customer, Fault, SimHandle, Target, World};
use tokio::net::TcpListener;
use tokio::time::Instant;

const WORLD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sim/world.yml");
/// The partner: its app may read GDAP relationships; it lists Beta, Gamma and Delta.
const ALPHA: &str = "10000000-0000-4000-8000-000000000001";
const BETA: &str = "20000000-0000-4000-8000-000000000002";
const GAMMA: &str = "30000000-0000-4000-8000-000000000003";
const DELTA: &str = "40000000-0000-4000-8000-000000000004";
/// 2026-03-01T00:00:00Z, Gamma's relationship end in the world file.
const GAMMA_END: i64 = 1_772_323_200;

async fn simulator() -> SimHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    sim::start(listener, World::from_yaml_file(Path::new(WORLD)).unwrap()).await
}

/// A config against `h` with the given `subscriptions:` and `discovery:` bodies.
fn config_text(h: &SimHandle, subscriptions: &str, discovery: &str) -> String {
    format!(
        "global:\n  authority_host: {}\n  graph_endpoint: {}\n  probe_interval: 1w\n\
         credentials:\n  partner-app:\n    client_id: a0000000-0000-4000-8000-000000000001\n    client_secret: \"s3cr3t~value+/=\"\n\
         subscriptions:\n{subscriptions}\ndiscovery:\n{discovery}",
        h.authority_host(),
        h.graph_endpoint()
    )
}

const PARTNER: &str = "  - name: partner
    credential: partner-app
    partner_tenant_id: 10000000-0000-4000-8000-000000000001
    subscription_template:
      admins: [noc@reseller.example]
      probes: [{type: organization}]
";

/// Starts the exporter on `text` and waits for the first (automatic) refresh.
async fn start(text: &str) -> Arc<App> {
    let config = parse_str(text, "test.yml", Path::new(".")).unwrap_or_else(|e| panic!("{e}\n{text}"));
    let source = ConfigSource::Text { origin: "test.yml".into(), text: text.into() };
    let app = App::start(source, config, m365mon::app::http_client());
    let names: Vec<String> = app.file_config().discovery.iter().map(|d| d.name.clone()).collect();
    wait_for("the first discovery refresh", || {
        app.store().with(|s| names.iter().all(|n| s.discovery.get(n).is_some_and(|d| d.refreshes > 0)))
    })
    .await;
    app
}

async fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// (name, tenant) of the subscriptions in force.
fn subs(app: &App) -> Vec<(String, String)> {
    app.config().subscriptions.iter().map(|s| (s.name.clone(), s.tenant_id.clone())).collect()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

fn metrics(app: &App) -> String {
    encode(&app.store().snapshot(), &BuildInfo { version: "0", revision: "x", rustc_version: "1" })
}

#[tokio::test]
async fn customers_become_subscriptions_and_follow_the_partner() {
    let h = simulator().await;
    let app = start(&config_text(&h, "", PARTNER)).await;
    assert_eq!(subs(&app), pairs(&[("beta", BETA), ("delta", DELTA), ("gamma", GAMMA)]));
    let gamma = app.config().subscriptions.iter().find(|s| s.name == "gamma").cloned().unwrap();
    assert_eq!(gamma.credential, "partner-app");
    assert_eq!(gamma.admins, ["noc@reseller.example"]);
    assert_eq!(gamma.probes.len(), 1);
    assert_eq!(gamma.probes[0].kind, ProbeKind::Organization);
    assert_eq!(app.task_count(), 3);
    // The file's config is untouched.
    assert!(app.file_config().subscriptions.is_empty());

    // A result recorded for gamma must survive the next change.
    app.store().record("gamma", "organization", &Outcome::Success, Duration::from_millis(5), None);

    h.upsert_customer(ALPHA, Customer::new("50000000-0000-4000-8000-000000000005", "Epsilon GmbH"));
    assert!(h.remove_customer(ALPHA, BETA));
    assert_eq!(app.refresh_discovery("partner").await, Ok(true));
    assert_eq!(
        subs(&app),
        pairs(&[("delta", DELTA), ("epsilon-gmbh", "50000000-0000-4000-8000-000000000005"), ("gamma", GAMMA)])
    );
    assert_eq!(app.task_count(), 3);
    let snap = app.store().snapshot();
    assert!(!snap.subscriptions.contains_key("beta"));
    assert_eq!(snap.subscriptions["gamma"].probes["organization"].runs, 1, "unchanged subscriptions keep their state");
    assert_eq!(snap.discovery["partner"].subscriptions, 3);
    assert_eq!(snap.discovery["partner"].refreshes, 2);
    assert_eq!(snap.relationship_expiry.get("gamma"), Some(&GAMMA_END));

    // Nothing changed at the partner: nothing to apply.
    assert_eq!(app.refresh_discovery("partner").await, Ok(false));
    assert_eq!(
        app.refresh_discovery("nope").await,
        Err(RefreshError::Unknown("nope".into())),
        "an unknown entry is refused"
    );

    let text = metrics(&app);
    for line in [
        "m365mon_discovery_subscriptions{discovery=\"partner\"} 3",
        "m365mon_discovery_refreshes_total{discovery=\"partner\"} 3",
        &format!("m365mon_relationship_expiry_timestamp_seconds{{subscription=\"gamma\"}} {GAMMA_END}"),
        "m365mon_subscription_info{subscription=\"epsilon-gmbh\",tenant_id=\"50000000-0000-4000-8000-000000000005\",cloud=\"global\",credential=\"partner-app\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    assert!(text.contains("m365mon_discovery_last_success_timestamp_seconds{discovery=\"partner\"} "));
    let (ok, out) = tools::promtool_check_metrics(&text);
    assert!(ok, "promtool check metrics:\n{out}\n{text}");
    app.shutdown();
}

#[tokio::test]
async fn long_lists_are_read_page_by_page() {
    let h = simulator().await;
    for i in 0..230 {
        h.upsert_customer(
            ALPHA,
            Customer::new(&format!("60000000-0000-4000-8000-{i:012}"), &format!("Customer {i:03}")),
        );
    }
    let app = start(&config_text(&h, "", PARTNER)).await;
    let all = subs(&app);
    assert_eq!(all.len(), 233);
    assert!(all.contains(&("customer-229".to_string(), "60000000-0000-4000-8000-000000000229".to_string())));
    let skips: Vec<String> = h
        .requests()
        .iter()
        .filter(|r| r.path.ends_with("/delegatedAdminCustomers"))
        .map(|r| r.query.clone().unwrap_or_default())
        .collect();
    assert_eq!(skips, ["", "$skip=100", "$skip=200"], "three pages of customers");
    // Every relationship page was read too: each customer has an end date.
    assert_eq!(app.store().snapshot().relationship_expiry.len(), 233);
    app.shutdown();
}

#[tokio::test]
async fn exclusions_and_explicit_subscriptions_win() {
    let h = simulator().await;
    // Gamma is configured by hand; "beta" is the name of another tenant's subscription.
    let subscriptions = "  - name: gamma-by-hand
    tenant_id: 30000000-0000-4000-8000-000000000003
    credential: partner-app
  - name: beta
    tenant_id: beta.example.com
    credential: partner-app
";
    let discovery = format!("{PARTNER}    exclude: [{DELTA}]\n");
    let app = start(&config_text(&h, subscriptions, &discovery)).await;
    assert_eq!(
        subs(&app),
        pairs(&[("gamma-by-hand", GAMMA), ("beta", "beta.example.com"), (&format!("beta-{BETA}"), BETA)])
    );
    let explicit = app.config().subscriptions[0].clone();
    assert_eq!(explicit.probes.len(), 3, "the explicit subscription keeps its own probes, not the template's");
    let snap = app.store().snapshot();
    assert_eq!(snap.discovery["partner"].subscriptions, 1);
    // The relationship still governs access to the hand-configured tenant.
    assert_eq!(snap.relationship_expiry.get("gamma-by-hand"), Some(&GAMMA_END));
    app.shutdown();
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_last_list() {
    let h = simulator().await;
    let app = start(&config_text(&h, "", PARTNER)).await;
    let before = subs(&app);
    assert_eq!(before.len(), 3);

    h.set_fault(ALPHA, Target::TenantRelationships, Fault::Down);
    assert_eq!(
        app.refresh_discovery("partner").await,
        Err(RefreshError::Failed { name: "partner".into(), reason: FailureReason::Http5xx })
    );
    assert_eq!(subs(&app), before);
    assert_eq!(app.task_count(), 3);
    let page = m365mon::landing::render(&app);
    assert!(
        page.contains("<td>partner</td><td>3</td><td class=\"fail\">failed: http_5xx (the last good list stays)</td>"),
        "{page}"
    );
    let snap = app.store().snapshot();
    assert_eq!(snap.discovery["partner"].failures.get(&FailureReason::Http5xx), Some(&1));
    assert_eq!(snap.discovery["partner"].subscriptions, 3);
    assert!(
        metrics(&app)
            .lines()
            .any(|l| l == "m365mon_discovery_refresh_failures_total{discovery=\"partner\",reason=\"http_5xx\"} 1")
    );

    // Throttling is a failure of the refresh too, with its own reason.
    h.set_fault(ALPHA, Target::TenantRelationships, Fault::Throttled { retry_after: Duration::from_secs(5) });
    let r = app.refresh_discovery("partner").await;
    assert_eq!(r, Err(RefreshError::Failed { name: "partner".into(), reason: FailureReason::Throttled }));
    assert_eq!(subs(&app), before);

    h.clear_all_faults();
    assert_eq!(app.refresh_discovery("partner").await, Ok(false));
    assert_eq!(subs(&app), before);
    assert!(m365mon::landing::render(&app).contains("<td class=\"ok\">succeeded</td>"));
    app.shutdown();
}

#[tokio::test]
async fn colliding_display_names_get_the_tenant_id() {
    let h = simulator().await;
    let (c1, c2) = ("70000000-0000-4000-8000-000000000001", "70000000-0000-4000-8000-000000000002");
    h.upsert_customer(ALPHA, Customer::new(c1, "Contoso Ltd."));
    h.upsert_customer(ALPHA, Customer::new(c2, "CONTOSO LTD"));
    h.upsert_customer(ALPHA, Customer::new("70000000-0000-4000-8000-000000000003", "株式会社"));
    let app = start(&config_text(&h, "", PARTNER)).await;
    let names: Vec<String> = subs(&app).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        [
            "70000000-0000-4000-8000-000000000003".to_string(),
            "beta".into(),
            format!("contoso-ltd-{c1}"),
            format!("contoso-ltd-{c2}"),
            "delta".into(),
            "gamma".into(),
        ]
    );
    // When the duplicate goes, the remaining one keeps its name: renaming it
    // would restart its series and alerts.
    h.remove_customer(ALPHA, c2);
    assert_eq!(app.refresh_discovery("partner").await, Ok(true));
    assert!(subs(&app).contains(&(format!("contoso-ltd-{c1}"), c1.to_string())));
    app.shutdown();

    // A customer monitored under the plain slug keeps it when a namesake arrives.
    let h = simulator().await;
    h.upsert_customer(ALPHA, Customer::new(c1, "Contoso Ltd."));
    let app = start(&config_text(&h, "", PARTNER)).await;
    assert!(subs(&app).contains(&("contoso-ltd".to_string(), c1.to_string())));
    h.upsert_customer(ALPHA, Customer::new(c2, "CONTOSO LTD"));
    assert_eq!(app.refresh_discovery("partner").await, Ok(true));
    let now = subs(&app);
    assert!(now.contains(&("contoso-ltd".to_string(), c1.to_string())), "{now:?}");
    assert!(now.contains(&(format!("contoso-ltd-{c2}"), c2.to_string())), "{now:?}");
    app.shutdown();
}

#[tokio::test]
async fn reload_recomputes_from_the_last_list_and_refresh_runs_on_its_own() {
    let h = simulator().await;
    let dir = std::env::temp_dir().join(format!("m365mon-discovery-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("m365mon.yml");
    let fast = PARTNER.replace("    subscription_template:", "    refresh_interval: 200ms\n    subscription_template:");
    std::fs::write(&path, config_text(&h, "", &fast)).unwrap();
    let config = m365mon::config::load_file(&path).unwrap();
    let app = App::start(ConfigSource::File(path.clone()), config, m365mon::app::http_client());
    wait_for("the first refresh", || subs(&app).len() == 3).await;

    // A customer added at the partner appears without any call from us.
    h.upsert_customer(ALPHA, Customer::new("80000000-0000-4000-8000-000000000008", "Eta"));
    wait_for("the periodic refresh to add Eta", || subs(&app).iter().any(|(n, _)| n == "eta")).await;

    // A reload applies a new exclusion and template to the list already read.
    app.store().record("beta", "organization", &Outcome::Success, Duration::from_millis(5), None);
    let slow = PARTNER.replace("probes: [{type: organization}]", "probes: [{type: organization}, {type: auth}]");
    let changed = format!("{slow}    exclude: [{DELTA}]\n");
    std::fs::write(&path, config_text(&h, "", &changed)).unwrap();
    app.reload().await.unwrap();
    let now: BTreeMap<String, usize> =
        app.config().subscriptions.iter().map(|s| (s.name.clone(), s.probes.len())).collect();
    assert_eq!(now, BTreeMap::from([("beta".into(), 2), ("eta".into(), 2), ("gamma".into(), 2)]));
    assert_eq!(app.task_count(), 6);
    assert_eq!(app.store().snapshot().subscriptions["beta"].probes["organization"].runs, 1);

    // Removing the discovery entry removes its subscriptions and series.
    std::fs::write(&path, config_text(&h, "", "")).unwrap();
    app.reload().await.unwrap();
    assert!(subs(&app).is_empty());
    let snap = app.store().snapshot();
    assert!(snap.discovery.is_empty() && snap.relationship_expiry.is_empty());
    app.shutdown();
    std::fs::remove_dir_all(&dir).ok();
}

/// A Graph that stops answering does not stall discovery: the refresh is
/// abandoned after `REFRESH_TIMEOUT`, counted as `timeout`, and the last
/// list stays.
#[tokio::test(start_paused = true)]
async fn a_hanging_refresh_times_out() {
    let h = simulator().await;
    let app = start(&config_text(&h, "", PARTNER)).await;
    let before = subs(&app);
    assert_eq!(before.len(), 3);

    h.set_fault(ALPHA, Target::TenantRelationships, Fault::Slow { delay: Duration::from_secs(24 * 3600) });
    let t = Instant::now();
    assert_eq!(
        app.refresh_discovery("partner").await,
        Err(RefreshError::Failed { name: "partner".into(), reason: FailureReason::Timeout })
    );
    assert_eq!(t.elapsed(), m365mon::discovery::REFRESH_TIMEOUT);
    assert_eq!(subs(&app), before);
    let snap = app.store().snapshot();
    assert_eq!(snap.discovery["partner"].failures.get(&FailureReason::Timeout), Some(&1));
    app.shutdown();
}

/// A token Graph refuses before its expiry is not reused: the refresh fails
/// with `unauthorized`, and the next one signs in again and succeeds.
#[tokio::test]
async fn a_refused_token_is_dropped_and_the_next_refresh_signs_in_again() {
    let h = simulator().await;
    let app = start(&config_text(&h, "", PARTNER)).await;
    let before = subs(&app);
    assert_eq!(before.len(), 3);
    let sign_ins = h.token_requests(ALPHA);
    // The simulator's clock jumps past the token's expiry; the exporter's does not.
    h.advance_clock(Duration::from_secs(2 * 3600));
    assert_eq!(
        app.refresh_discovery("partner").await,
        Err(RefreshError::Failed { name: "partner".into(), reason: FailureReason::Unauthorized })
    );
    assert_eq!(h.token_requests(ALPHA), sign_ins, "the cached token was tried first");
    assert_eq!(app.refresh_discovery("partner").await, Ok(false));
    assert_eq!(h.token_requests(ALPHA), sign_ins + 1, "one new sign-in");
    assert_eq!(subs(&app), before);
    app.shutdown();
}
