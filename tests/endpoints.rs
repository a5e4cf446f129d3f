//! The exporter's HTTP endpoints, served for real on 127.0.0.1:0 against the
//! simulator: `/probe` (and its errors and debug output), `/metrics` through
//! `promtool check metrics`, `/-/healthy`, `/-/ready`, the landing page, 404
//! and 405.

mod common;

use std::time::Duration;

use common::*;
use m365mon::sim::{Fault, Target};
use reqwest::Method;

fn sub(name: &str, tenant: &str, credential: &str, probes: &str) -> String {
    format!(
        "  - name: {name}\n    tenant_id: {tenant}\n    credential: {credential}\n    admins: [noc@reseller.example, {name}-admin@example.com]\n    probes:\n{probes}"
    )
}

const AUTH_AND_ORG: &str = "      - type: auth\n      - type: organization\n";

/// Two healthy subscriptions and one with a wrong secret.
fn config(sim: &m365mon::sim::SimHandle, interval: &str) -> String {
    format!(
        "{}credentials:\n{}{}subscriptions:\n{}{}{}",
        global(sim, interval, "5s"),
        secret_credential("app", SECRET_APP, SECRET),
        secret_credential("wrong", SECRET_APP, "not-the-secret"),
        sub("alpha", ALPHA, "app", AUTH_AND_ORG),
        sub("beta", BETA, "app", "      - type: organization\n        name: org\n"),
        sub("broken", ALPHA, "wrong", AUTH_AND_ORG),
    )
}

#[tokio::test]
async fn probe_returns_only_that_subscriptions_results() {
    let sim = start_sim(world()).await;
    let e = Exporter::start(&config(&sim, NEVER)).await;

    let m = e.probe("subscription=alpha").await;
    assert_eq!(m.subscriptions(), ["alpha"], "{}", m.text);
    assert_eq!(m.success("alpha", "auth"), Some(1.0));
    assert_eq!(m.success("alpha", "organization"), Some(1.0));
    assert_eq!(m.get("m365mon_probe_throttled", &[("subscription", "alpha"), ("probe", "auth")]), Some(0.0));
    let d = m.get("m365mon_probe_run_duration_seconds", &[("subscription", "alpha"), ("probe", "organization")]);
    assert!(d.is_some_and(|d| d > 0.0 && d < 5.0), "{d:?}");
    assert_eq!(
        m.get(
            "m365mon_subscription_info",
            &[("subscription", "alpha"), ("tenant_id", ALPHA), ("cloud", "global"), ("credential", "app")]
        ),
        Some(1.0)
    );
    let admins: Vec<&str> = m
        .all("m365mon_subscription_admin_info", &[("subscription", "alpha")])
        .iter()
        .map(|s| s.labels["admin"].as_str())
        .collect();
    assert_eq!(admins, ["noc@reseller.example", "alpha-admin@example.com"]);
    // The output passes promtool like /metrics does.
    let (ok, out) = tools::promtool_check_metrics(&m.text);
    assert!(ok, "promtool check metrics on /probe output:\n{out}\n{}", m.text);

    // `probe=` selects one probe (by its name, here not the type).
    let m = e.probe("subscription=beta&probe=org").await;
    assert_eq!(m.subscriptions(), ["beta"]);
    let probes: Vec<&str> = m.all("m365mon_probe_success", &[]).iter().map(|s| s.labels["probe"].as_str()).collect();
    assert_eq!(probes, ["org"]);
    assert_eq!(m.success("beta", "org"), Some(1.0));

    // A failing subscription: 200 with success 0 and the reason.
    let m = e.probe("subscription=broken").await;
    assert_eq!(m.subscriptions(), ["broken"]);
    assert_eq!(m.success("broken", "auth"), Some(0.0));
    assert_eq!(m.last_failure("broken", "auth").as_deref(), Some("credential_invalid"));
    // Prometheus may add parameters of its own; they are ignored.
    let m = e.probe("subscription=alpha&probe=auth&module=default").await;
    assert_eq!(m.success("alpha", "auth"), Some(1.0));
}

#[tokio::test]
async fn probe_refuses_unknown_or_missing_parameters_with_clear_messages() {
    let sim = start_sim(world()).await;
    let e = Exporter::start(&config(&sim, NEVER)).await;
    for (query, message) in [
        ("", "subscription parameter is missing\n"),
        ("probe=auth", "subscription parameter is missing\n"),
        ("subscription=", "subscription parameter is missing\n"),
        ("subscription=gamma", "unknown subscription \"gamma\"; configured: alpha, beta, broken\n"),
        (
            "subscription=alpha&probe=teams",
            "unknown probe \"teams\" for subscription alpha; configured: auth, organization\n",
        ),
        // The probe's name, not its type, selects it.
        (
            "subscription=beta&probe=organization",
            "unknown probe \"organization\" for subscription beta; configured: org\n",
        ),
        ("subscription=alpha&debug=yes", "debug must be true or false, not \"yes\"\n"),
        ("subscription=alpha&subscription=beta", "subscription given more than once\n"),
    ] {
        let (status, body) = e.get(&format!("/probe?{query}")).await;
        assert_eq!((status, body.as_str()), (400, message), "/probe?{query}");
    }
    // Nothing from the request was fetched: only the token endpoint and Graph of configured tenants.
    assert!(sim.requests().is_empty(), "{:?}", sim.requests());
    let (status, allow, _) = e.request(Method::POST, "/probe?subscription=alpha").await;
    assert_eq!((status, allow.as_deref()), (405, Some("GET, HEAD")));
}

#[tokio::test]
async fn probe_debug_shows_the_run_log_the_metrics_and_the_redacted_config() {
    let sim = start_sim(world()).await;
    let e = Exporter::start(&config(&sim, NEVER)).await;
    let (status, body) = e.get("/probe?subscription=alpha&debug=true").await;
    assert_eq!(status, 200);
    let logs = body.find("Logs for probe auth of subscription alpha:").expect(&body);
    let logs_org = body.find("Logs for probe organization of subscription alpha:").expect(&body);
    let metrics = body.find("Metrics that would have been returned:\n").expect(&body);
    let config = body.find("Effective configuration (secrets redacted):\n").expect(&body);
    assert!(logs < logs_org && logs_org < metrics && metrics < config, "{body}");
    // The log: the token request, the Graph request with its client-request-id, the result.
    let log = &body[logs..metrics];
    assert!(
        log.contains(&format!("POST {}/{ALPHA}/oauth2/v2.0/token (client-request-id ", sim.authority_host())),
        "{log}"
    );
    assert!(
        log.contains(&format!("GET {}/v1.0/organization?$select=id (client-request-id ", sim.graph_endpoint())),
        "{log}"
    );
    assert!(log.contains("HTTP 200 (request-id "), "{log}");
    assert!(log.contains("success in "), "{log}");
    // The metrics section is what the non-debug request returns.
    let exposition = Metrics::parse(&body[metrics..config].replace("Metrics that would have been returned:\n", ""));
    assert_eq!(exposition.success("alpha", "organization"), Some(1.0));
    // The effective config: this subscription, defaults filled in, the secret redacted.
    let cfg = &body[config..];
    assert!(cfg.contains("client_secret: <secret>"), "{cfg}");
    assert!(cfg.contains(&format!("client_id: {SECRET_APP}")), "{cfg}");
    assert!(cfg.contains("name: alpha"), "{cfg}");
    assert!(!cfg.contains("name: beta") && !cfg.contains("broken"), "{cfg}");
    assert!(!body.contains(SECRET), "{body}");
    assert!(!body.contains("eyJ"), "no JWT (token or assertion) in debug output:\n{body}");

    // A failure explains itself.
    let (_, body) = e.get("/probe?subscription=broken&probe=auth&debug=true").await;
    assert!(body.contains("token: refused: invalid_client: AADSTS7000215"), "{body}");
    assert!(body.contains("failed: credential_invalid"), "{body}");
    assert!(!body.contains("not-the-secret"), "{body}");
    let (status, body) = e.get("/probe?subscription=alpha&debug=false").await;
    assert_eq!(status, 200);
    assert!(body.starts_with("# HELP"), "{body}");
}

/// Prometheus' scrape timeout bounds an on-demand run (less half a second),
/// even when the probe's own timeout is longer.
#[tokio::test(start_paused = true)]
async fn probe_honours_the_scrape_timeout_header() {
    let sim = start_sim(world()).await;
    let e = Exporter::start(&config(&sim, NEVER)).await;
    sim.set_fault(ALPHA, Target::Organization, Fault::Slow { delay: Duration::from_secs(60) });
    let started = tokio::time::Instant::now();
    let r = e
        .http
        .get(e.url("/probe?subscription=alpha&probe=organization"))
        .header("X-Prometheus-Scrape-Timeout-Seconds", "2")
        .send()
        .await
        .unwrap();
    let took = started.elapsed();
    let m = Metrics::parse(&r.text().await.unwrap());
    assert_eq!(m.last_failure("alpha", "organization").as_deref(), Some("timeout"), "{}", m.text);
    assert!(took >= Duration::from_millis(1400) && took < Duration::from_secs(2), "{took:?}");
}

// Paused time: the scheduled runs happen in virtual time.
#[tokio::test(start_paused = true)]
async fn metrics_pass_promtool_before_and_after_runs_with_healthy_and_failing_subscriptions() {
    let sim = start_sim(world()).await;
    let e = Exporter::start(&config(&sim, "30s")).await;
    let m = e.metrics().await;
    let (ok, out) = tools::promtool_check_metrics(&m.text);
    assert!(ok, "promtool on the first scrape:\n{out}\n{}", m.text);
    let m = e
        .wait_metrics("every probe to run", Duration::from_secs(60), |m| {
            let pairs = [("alpha", "auth"), ("alpha", "organization"), ("beta", "org"), ("broken", "auth")];
            pairs.iter().all(|(s, p)| m.runs(s, p) >= 1.0).then(|| m.clone())
        })
        .await;
    assert_eq!(m.success("alpha", "organization"), Some(1.0));
    assert_eq!(m.success("beta", "org"), Some(1.0));
    assert_eq!(m.success("broken", "auth"), Some(0.0));
    assert_eq!(m.subscriptions(), ["alpha", "beta", "broken"]);
    let (ok, out) = tools::promtool_check_metrics(&m.text);
    assert!(ok, "promtool with healthy and failing subscriptions:\n{out}\n{}", m.text);
    // The contract's always-present families.
    for name in [
        "m365mon_build_info",
        "m365mon_config_last_reload_successful",
        "m365mon_config_last_reload_success_timestamp_seconds",
        "m365mon_subscription_info",
        "m365mon_subscription_admin_info",
        "m365mon_token_requests_total",
        "m365mon_probe_duration_seconds_bucket",
        "m365mon_probe_failures_total",
    ] {
        assert!(!m.all(name, &[]).is_empty(), "{name} missing:\n{}", m.text);
    }
    // HEAD works as GET does, without a body.
    let r = e.http.head(e.url("/metrics")).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 200);
}

#[tokio::test(start_paused = true)]
async fn health_readiness_landing_page_404_and_405() {
    let sim = start_sim(world()).await;
    let e = Exporter::start(&config(&sim, "30s")).await;
    assert_eq!(e.get("/-/healthy").await, (200, "Healthy.\n".to_string()));
    assert_eq!(e.get("/-/ready").await, (200, "Ready.\n".to_string()));
    for (method, path, allow) in [
        (Method::POST, "/-/healthy", "GET, HEAD"),
        (Method::DELETE, "/-/ready", "GET, HEAD"),
        (Method::POST, "/metrics", "GET, HEAD"),
        (Method::PUT, "/", "GET, HEAD"),
        (Method::GET, "/-/reload", "POST, PUT"),
        (Method::HEAD, "/-/reload", "POST, PUT"),
    ] {
        let (status, got, _) = e.request(method.clone(), path).await;
        assert_eq!((status, got.as_deref()), (405, Some(allow)), "{method} {path}");
    }
    let (status, body) = e.get("/nothing/here").await;
    assert_eq!((status, body.as_str()), (404, "not found: /nothing/here; see / for the endpoints\n"));
    let (status, _) = e.get("/metrics/").await;
    assert_eq!(status, 404);

    // The landing page, once every probe has a result.
    e.wait_metrics("every probe to run", Duration::from_secs(60), |m| {
        [("alpha", "auth"), ("alpha", "organization"), ("beta", "org"), ("broken", "auth")]
            .iter()
            .all(|(s, p)| m.runs(s, p) >= 1.0)
            .then_some(())
    })
    .await;
    let r = e.http.get(e.url("/")).send().await.unwrap();
    assert_eq!(r.headers()["content-type"], "text/html; charset=utf-8");
    let html = r.text().await.unwrap();
    assert!(html.contains("<h1>m365mon</h1>"), "{html}");
    assert!(html.contains(&format!("Version {}", env!("CARGO_PKG_VERSION"))), "{html}");
    for link in
        ["href=\"metrics\"", "href=\"-/healthy\"", "href=\"-/ready\"", "probe?subscription=alpha&amp;debug=true"]
    {
        assert!(html.contains(link), "{link}: {html}");
    }
    assert!(html.contains("<h2>Subscriptions (3)</h2>"), "{html}");
    assert!(html.contains(&format!("Tenant <code>{ALPHA}</code>")), "{html}");
    assert!(html.contains("noc@reseller.example, alpha-admin@example.com"), "{html}");
    // Each probe's row: name, type, result, latency, failure reason, times.
    let row = |probe: &str, sub_section: &str| {
        let section = html.split("<h3 id=\"").find(|s| s.starts_with(&format!("{sub_section}\""))).unwrap();
        section
            .lines()
            .find(|l| l.starts_with(&format!("<tr><td>{probe}</td>")))
            .unwrap_or_else(|| panic!("{html}"))
            .to_string()
    };
    let ok = row("org", "beta");
    assert!(ok.contains("<td>organization</td><td class=\"ok\">success</td>"), "{ok}");
    assert!(ok.contains(" s</td><td>-</td><td>"), "latency and no failure reason: {ok}");
    assert!(ok.contains("s ago ("), "{ok}");
    let bad = row("auth", "broken");
    assert!(bad.contains("<td class=\"fail\">failure</td>"), "{bad}");
    assert!(bad.contains("<td>credential_invalid</td>"), "{bad}");
    assert!(bad.ends_with("<td>never</td></tr>"), "never succeeded: {bad}");
    assert!(html.contains("Microsoft service health").eq(&false), "no service_health probe configured");
}

/// Whatever Prometheus (or anyone) sends as the scrape timeout, the
/// exporter answers: nonsense is ignored, huge values mean "no extra bound".
#[tokio::test]
async fn odd_scrape_timeout_headers_are_ignored_not_fatal() {
    let sim = start_sim(world()).await;
    let e = Exporter::start(&config(&sim, NEVER)).await;
    for value in ["1e300", "18446744073709551616", "inf", "NaN", "-1", "0", "abc", ""] {
        let r = e
            .http
            .get(e.url("/probe?subscription=alpha&probe=organization"))
            .header("X-Prometheus-Scrape-Timeout-Seconds", value)
            .send()
            .await
            .unwrap_or_else(|err| panic!("scrape timeout {value:?}: no answer: {err}"));
        assert_eq!(r.status().as_u16(), 200, "scrape timeout {value:?}");
        let m = Metrics::parse(&r.text().await.unwrap());
        assert_eq!(m.success("alpha", "organization"), Some(1.0), "scrape timeout {value:?}:\n{}", m.text);
    }
}
