//! Reloading the configuration through `POST /-/reload` after the file
//! changed: good and bad files, kept counters, removed and added
//! subscriptions, and the token cache across reloads.

mod common;

use std::time::Duration;

use common::*;
use m365mon::sim::SimHandle;
use reqwest::Method;

fn sub(name: &str, tenant: &str, probes: &str) -> String {
    format!("  - name: {name}\n    tenant_id: {tenant}\n    credential: app\n    probes:\n{probes}")
}

const ORG: &str = "      - type: organization\n";

fn config(sim: &SimHandle, secret: &str, subs: &[(&str, &str)]) -> String {
    let mut y = format!(
        "{}credentials:\n{}subscriptions:\n",
        global(sim, "30s", "5s"),
        secret_credential("app", SECRET_APP, secret)
    );
    for (name, tenant) in subs {
        y.push_str(&sub(name, tenant, ORG));
    }
    y
}

fn reload_ok(m: &Metrics) -> f64 {
    m.get("m365mon_config_last_reload_successful", &[]).expect("reload gauge")
}

fn reload_ts(m: &Metrics) -> f64 {
    m.get("m365mon_config_last_reload_success_timestamp_seconds", &[]).expect("reload timestamp")
}

#[tokio::test(start_paused = true)]
async fn a_good_reload_keeps_unchanged_subscriptions_drops_removed_and_adds_new_ones() {
    let sim = start_sim(world()).await;
    let e = Exporter::start(&config(&sim, SECRET, &[("alpha", ALPHA), ("beta", BETA)])).await;
    let before = e
        .wait_metrics("three runs each", Duration::from_secs(300), |m| {
            (m.runs("alpha", "organization") >= 3.0 && m.runs("beta", "organization") >= 3.0).then(|| m.clone())
        })
        .await;
    assert_eq!(reload_ok(&before), 1.0);

    // beta leaves, gamma (another name for Alpha) arrives; alpha is unchanged.
    let (status, body) = e.reload_with(&config(&sim, SECRET, &[("alpha", ALPHA), ("gamma", "alpha.example")])).await;
    assert_eq!((status, body.as_str()), (200, "Configuration reloaded.\n"));
    let m = e.metrics().await;
    assert_eq!(reload_ok(&m), 1.0);
    assert!(reload_ts(&m) >= reload_ts(&before));
    assert!(!m.mentions_subscription("beta"), "removed subscriptions vanish:\n{}", m.text);
    assert!(!m.text.contains("beta"), "{}", m.text);
    assert!(m.runs("alpha", "organization") >= before.runs("alpha", "organization"), "alpha kept its counters");
    assert_eq!(m.success("alpha", "organization"), Some(1.0));
    assert!(
        m.get("m365mon_token_requests_total", &[("subscription", "alpha")]).unwrap()
            >= before.get("m365mon_token_requests_total", &[("subscription", "alpha")]).unwrap()
    );
    assert_eq!(
        m.get(
            "m365mon_subscription_info",
            &[("subscription", "gamma"), ("tenant_id", "alpha.example"), ("credential", "app")]
        ),
        Some(1.0),
        "added subscriptions appear at once:\n{}",
        m.text
    );
    let (status, body) = e.get("/probe?subscription=beta").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("unknown subscription \"beta\"; configured: alpha, gamma"), "{body}");

    // Both keep being probed on schedule; the new one gets results.
    let alpha_runs = m.runs("alpha", "organization");
    let m = e
        .wait_metrics("gamma's first run and alpha's next", Duration::from_secs(120), |m| {
            (m.runs("gamma", "organization") >= 1.0 && m.runs("alpha", "organization") > alpha_runs).then(|| m.clone())
        })
        .await;
    assert_eq!(m.success("gamma", "organization"), Some(1.0));
    assert!(!m.mentions_subscription("beta"));
    assert_eq!(e.app.task_count(), 2, "beta's probe task stopped");
    let (ok, out) = tools::promtool_check_metrics(&m.text);
    assert!(ok, "{out}");

    // PUT reloads too; a subscription that comes back starts afresh.
    e.dir.write("m365mon.yml", &config(&sim, SECRET, &[("alpha", ALPHA), ("beta", BETA)]));
    let (status, _, _) = e.request(Method::PUT, "/-/reload").await;
    assert_eq!(status, 200);
    let m = e.metrics().await;
    assert_eq!(m.runs("beta", "organization"), 0.0, "{}", m.text);
    assert!(!m.mentions_subscription("gamma"));
}

#[tokio::test(start_paused = true)]
async fn a_bad_file_is_refused_and_the_running_configuration_stays() {
    let sim = start_sim(world()).await;
    let good = config(&sim, SECRET, &[("alpha", ALPHA), ("beta", BETA)]);
    let e = Exporter::start(&good).await;
    let before = e
        .wait_metrics("a run each", Duration::from_secs(120), |m| {
            (m.runs("alpha", "organization") >= 1.0 && m.runs("beta", "organization") >= 1.0).then(|| m.clone())
        })
        .await;

    // A mistake in the file: a misspelled key; beta was also removed.
    let bad = config(&sim, SECRET, &[("alpha", ALPHA)]).replace("    tenant_id: ", "    tenant: ");
    let (status, body) = e.reload_with(&bad).await;
    assert_eq!(status, 500, "{body}");
    assert!(body.starts_with("Configuration not reloaded; the running configuration stays in force:\n"), "{body}");
    let path = e.config_path.display().to_string();
    // The error names the file, line, column and key path.
    for want in [
        format!("{path}:11:5: subscriptions[0]: missing required key \"tenant_id\"\n"),
        format!("{path}:12:5: subscriptions[0]: unknown key \"tenant\"; expected one of: name, tenant_id, "),
    ] {
        assert!(body.contains(&want), "{want}\nnot in: {body}");
    }

    let m = e.metrics().await;
    assert_eq!(reload_ok(&m), 0.0, "{}", m.text);
    assert_eq!(reload_ts(&m), reload_ts(&before), "the last successful load is still the first one");
    assert!(m.mentions_subscription("beta"), "the running configuration stays:\n{}", m.text);
    assert_eq!(e.probe("subscription=beta").await.success("beta", "organization"), Some(1.0));
    let html = e.get("/").await.1;
    assert!(html.contains("last reload FAILED (the previous configuration stays in force)"), "{html}");
    // Ready is about having a configuration, which it still has.
    assert_eq!(e.get("/-/ready").await.0, 200);

    // Probing goes on under the old configuration.
    let runs = m.runs("beta", "organization");
    e.wait_metrics("beta's next run", Duration::from_secs(120), |m| {
        (m.runs("beta", "organization") > runs).then_some(())
    })
    .await;

    // A file that cannot be read is refused the same way.
    std::fs::remove_file(&e.config_path).unwrap();
    let (status, _, body) = e.request(Method::POST, "/-/reload").await;
    assert_eq!(status, 500);
    assert!(body.contains(&format!("{path}: cannot read config file: ")), "{body}");
    // Invalid YAML, with its position.
    let (status, body) = e.reload_with("global: [unclosed\n").await;
    assert_eq!(status, 500);
    assert!(body.contains(&format!("{path}:1:")), "{body}");

    // Fixed: the reload succeeds and the gauge is 1 again.
    let (status, _) = e.reload_with(&good).await;
    assert_eq!(status, 200);
    let m = e.metrics().await;
    assert_eq!(reload_ok(&m), 1.0);
    assert!(m.runs("beta", "organization") > runs, "counters survived the failed reloads");
}

/// Cached tokens survive a reload unless their credential changed.
#[tokio::test]
async fn reload_keeps_cached_tokens_unless_the_credential_changed() {
    let sim = start_sim(world()).await;
    let with_never = |secret: &str| {
        format!(
            "{}credentials:\n{}subscriptions:\n{}",
            global(&sim, NEVER, "5s"),
            secret_credential("app", SECRET_APP, secret),
            sub("alpha", ALPHA, ORG)
        )
    };
    let e = Exporter::start(&with_never(SECRET)).await;
    assert_eq!(e.probe("subscription=alpha").await.success("alpha", "organization"), Some(1.0));
    assert_eq!(sim.token_requests(ALPHA), 1);
    // Same file again: the cached token is used.
    assert_eq!(e.reload_with(&with_never(SECRET)).await.0, 200);
    assert_eq!(e.probe("subscription=alpha").await.success("alpha", "organization"), Some(1.0));
    assert_eq!(sim.token_requests(ALPHA), 1);
    // A changed secret: the old token is dropped and the new secret is used.
    assert_eq!(e.reload_with(&with_never("rotated-but-wrong")).await.0, 200);
    let m = e.probe("subscription=alpha").await;
    assert_eq!(m.last_failure("alpha", "organization").as_deref(), Some("credential_invalid"), "{}", m.text);
    assert_eq!(sim.token_requests(ALPHA), 2);
    // Fixing the secret also clears the back-off at once.
    assert_eq!(e.reload_with(&with_never(SECRET)).await.0, 200);
    assert_eq!(e.probe("subscription=alpha").await.success("alpha", "organization"), Some(1.0));
    assert_eq!(sim.token_requests(ALPHA), 3);
}
