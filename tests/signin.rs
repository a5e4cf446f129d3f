//! Sign-in end to end: the real exporter against the simulator's token
//! endpoint with each credential kind, the token cache and its single
//! flight, and back-off after a failed sign-in.

mod common;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use m365mon::sim::{AppSecret, Fault, Target};
use serde_json::json;

/// Runs `/probe` for one probe and returns (success value, last failure reason).
async fn probe_once(e: &Exporter, sub: &str, probe: &str) -> (Option<f64>, Option<String>) {
    let m = e.probe(&format!("subscription={sub}&probe={probe}")).await;
    (m.success(sub, probe), m.last_failure(sub, probe))
}

/// A compact JWT as a workload identity provider would issue (the simulator
/// does not check federated signatures, so the signature is a placeholder).
fn federated_assertion(subject: &str) -> String {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let header = json!({"alg": "RS256", "typ": "JWT", "kid": "test"});
    let claims = json!({
        "iss": FED_ISSUER,
        "sub": subject,
        "aud": m365mon::sim::FEDERATED_AUDIENCE,
        "iat": now,
        "nbf": now,
        "exp": now + 3600,
        "jti": "federated-test",
    });
    let part = |v: &serde_json::Value| URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap());
    format!("{}.{}.{}", part(&header), part(&claims), URL_SAFE_NO_PAD.encode(b"not-checked"))
}

fn sub(name: &str, tenant: &str, credential: &str, probes: &str) -> String {
    format!("  - name: {name}\n    tenant_id: {tenant}\n    credential: {credential}\n    probes:\n{probes}")
}

const AUTH_AND_ORG: &str = "      - type: auth\n      - type: organization\n";

#[tokio::test]
async fn client_secret_inline_from_file_and_from_environment_sign_in() {
    // client_secret_env: tests cannot set variables of their own process
    // (unsafe, and the crate forbids unsafe), so the simulator's app gets the
    // value of one that every test run has, PATH, as an extra secret.
    let env_value = std::env::var("PATH").expect("PATH is set (the promtool tests need it too)");
    let mut w = world();
    let app = w.apps.iter_mut().find(|a| a.client_id == SECRET_APP).unwrap();
    app.secrets.push(AppSecret { value: m365mon::config::Secret::new(env_value), expired: false });
    let sim = start_sim(w).await;

    let dir = TempDir::new("signin");
    dir.write("secret.txt", &format!("{SECRET}\n"));
    let yaml = format!(
        "{}credentials:\n{}  file:\n    client_id: {SECRET_APP}\n    client_secret_file: secret.txt\n  env:\n    client_id: {SECRET_APP}\n    client_secret_env: PATH\nsubscriptions:\n{}{}{}",
        global(&sim, NEVER, "5s"),
        secret_credential("inline", SECRET_APP, SECRET),
        sub("inline", "alpha.onmicrosoft.com", "inline", AUTH_AND_ORG),
        sub("file", ALPHA, "file", AUTH_AND_ORG),
        sub("env", "alpha.example", "env", AUTH_AND_ORG),
    );
    let e = Exporter::start_in(dir, &yaml).await;
    for s in ["inline", "file", "env"] {
        let m = e.probe(&format!("subscription={s}")).await;
        assert_eq!(m.success(s, "auth"), Some(1.0), "{s}:\n{}", m.text);
        assert_eq!(m.success(s, "organization"), Some(1.0), "{s}:\n{}", m.text);
    }

    // The secret file is read on each request: a rotated (here: wrong) secret
    // is used at once, without a reload.
    e.dir.write("secret.txt", "not-the-secret\n");
    assert_eq!(probe_once(&e, "file", "auth").await, (Some(0.0), Some("credential_invalid".into())));
    // The other credentials are unaffected.
    assert_eq!(probe_once(&e, "inline", "auth").await, (Some(1.0), None));
}

#[tokio::test]
async fn certificate_assertion_signs_in_and_exports_the_expiry() {
    let sim = start_sim(world()).await;
    let yaml = format!(
        "{}credentials:\n{}{}subscriptions:\n{}{}",
        global(&sim, NEVER, "5s"),
        cert_credential("cert", CERT_APP, "app"),
        // A certificate the app does not have registered.
        cert_credential("wrong-cert", CERT_APP, "other"),
        sub("cert", ALPHA, "cert", AUTH_AND_ORG),
        sub("wrong-cert", ALPHA, "wrong-cert", AUTH_AND_ORG),
    );
    let e = Exporter::start(&yaml).await;
    let m = e.probe("subscription=cert").await;
    assert_eq!(m.success("cert", "auth"), Some(1.0), "{}", m.text);
    assert_eq!(m.success("cert", "organization"), Some(1.0), "{}", m.text);

    let m = e.probe("subscription=wrong-cert").await;
    assert_eq!(m.last_failure("wrong-cert", "auth").as_deref(), Some("credential_invalid"), "{}", m.text);
    assert_eq!(m.last_failure("wrong-cert", "organization").as_deref(), Some("credential_invalid"), "{}", m.text);

    // The fixture certificates are valid for 100 years from 2025.
    let m = e.metrics().await;
    for cred in ["cert", "wrong-cert"] {
        let expiry = m.get("m365mon_credential_expiry_timestamp_seconds", &[("credential", cred)]).unwrap();
        assert!(expiry > 4_000_000_000.0, "{cred}: {expiry}");
    }
    // The simulator saw a certificate assertion, never a secret.
    let token_posts = sim.requests().into_iter().filter(|r| r.path.ends_with("/oauth2/v2.0/token")).count();
    assert!(token_posts >= 2);
}

#[tokio::test]
async fn federated_token_file_is_read_on_each_request() {
    let sim = start_sim(world()).await;
    let dir = TempDir::new("federated");
    dir.write("token.jwt", &federated_assertion(FED_SUBJECT));
    let yaml = format!(
        "{}credentials:\n  fed:\n    client_id: {FED_APP}\n    federated_token_file: token.jwt\nsubscriptions:\n{}",
        global(&sim, NEVER, "5s"),
        sub("fed", ALPHA, "fed", AUTH_AND_ORG),
    );
    let e = Exporter::start_in(dir, &yaml).await;
    let m = e.probe("subscription=fed").await;
    assert_eq!(m.success("fed", "auth"), Some(1.0), "{}", m.text);
    assert_eq!(m.success("fed", "organization"), Some(1.0), "{}", m.text);
    assert_eq!(sim.token_requests(ALPHA), 1, "organization used the token that auth fetched");

    // The identity provider rotates the file; the next request sends the new
    // assertion (here one the app does not trust, which the simulator refuses
    // naming its subject).
    e.dir.write("token.jwt", &federated_assertion("repo:someone/else:ref:refs/heads/main"));
    let (status, body) = e.get("/probe?subscription=fed&probe=auth&debug=true").await;
    assert_eq!(status, 200);
    assert!(body.contains("m365mon_probe_success{subscription=\"fed\",probe=\"auth\"} 0"), "{body}");
    assert!(body.contains("reason=\"credential_invalid\""), "{body}");
    assert!(body.contains("Assertion Subject: 'repo:someone/else:ref:refs/heads/main'"), "{body}");
    assert_eq!(sim.token_requests(ALPHA), 2);
}

/// Every probe kind but `auth`, for one tenant.
fn graph_probes() -> String {
    format!(
        "      - type: organization\n      - type: exchange\n        mailbox: monitor@alpha.example\n      - type: sharepoint\n        site: https://alpha.sharepoint.com/sites/monitoring\n      - type: onedrive\n        user: monitor@alpha.example\n      - type: teams\n        team_id: {ALPHA_TEAM}\n      - type: service_health\n"
    )
}

const GRAPH: [&str; 6] = ["organization", "exchange", "sharepoint", "onedrive", "teams", "service_health"];

#[tokio::test]
async fn concurrent_probes_of_one_tenant_share_one_token_request() {
    let sim = start_sim(world()).await;
    // Two subscriptions on one (credential, tenant): one token cache entry.
    let yaml = format!(
        "{}credentials:\n{}subscriptions:\n{}{}",
        global(&sim, NEVER, "5s"),
        secret_credential("app", SECRET_APP, SECRET),
        sub("alpha", ALPHA, "app", &graph_probes()),
        sub("alpha-auth", ALPHA, "app", "      - type: auth\n"),
    );
    let e = Exporter::start(&yaml).await;
    // Four scrapes at once, each running the six Graph probes concurrently:
    // 24 probes, one token request.
    let scrapes = (0..4).map(|_| e.probe("subscription=alpha")).collect();
    for m in join_all(scrapes).await {
        for p in GRAPH {
            assert_eq!(m.success("alpha", p), Some(1.0), "{p}:\n{}", m.text);
        }
    }
    assert_eq!(sim.token_requests(ALPHA), 1, "24 concurrent probes must cause exactly one token request");
    let graph_requests = sim.requests().into_iter().filter(|r| r.path.starts_with("/graph/")).count();
    assert!(graph_requests >= 24, "{graph_requests}");

    // Cached: later runs need no new token.
    let m = e.probe("subscription=alpha").await;
    assert_eq!(m.success("alpha", "teams"), Some(1.0));
    assert_eq!(sim.token_requests(ALPHA), 1);

    // `auth` never uses the cache: each run is one token request.
    for n in 2..=4 {
        assert_eq!(probe_once(&e, "alpha-auth", "auth").await, (Some(1.0), None));
        assert_eq!(sim.token_requests(ALPHA), n);
    }
    // Concurrent `auth` runs each fetch their own (they are serialised, not shared).
    let auths = (0..3).map(|_| e.probe("subscription=alpha-auth")).collect();
    for m in join_all(auths).await {
        assert_eq!(m.success("alpha-auth", "auth"), Some(1.0), "{}", m.text);
    }
    assert_eq!(sim.token_requests(ALPHA), 7);
    // And the Graph probes still run on the cached token.
    assert_eq!(probe_once(&e, "alpha", "organization").await, (Some(1.0), None));
    assert_eq!(sim.token_requests(ALPHA), 7);
}

/// Runs futures concurrently on the current task (no extra dependency).
async fn join_all<F: std::future::Future>(futs: Vec<F>) -> Vec<F::Output> {
    let mut set = Vec::new();
    for f in futs {
        set.push(Box::pin(f));
    }
    let mut out: Vec<Option<F::Output>> = (0..set.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in set.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending { std::task::Poll::Pending } else { std::task::Poll::Ready(()) }
    })
    .await;
    out.into_iter().map(|o| o.expect("ready")).collect()
}

#[tokio::test]
async fn a_bad_secret_backs_off_on_demand() {
    let sim = start_sim(world()).await;
    let yaml = format!(
        "{}credentials:\n{}subscriptions:\n{}",
        global(&sim, NEVER, "5s"),
        secret_credential("bad", SECRET_APP, "wrong-secret"),
        sub("bad", ALPHA, "bad", AUTH_AND_ORG),
    );
    let e = Exporter::start(&yaml).await;
    for _ in 0..10 {
        assert_eq!(probe_once(&e, "bad", "auth").await, (Some(0.0), Some("credential_invalid".into())));
        assert_eq!(probe_once(&e, "bad", "organization").await, (Some(0.0), Some("credential_invalid".into())));
    }
    assert_eq!(sim.token_requests(ALPHA), 1, "20 probes within the back-off send one token request");
    let (_, body) = e.get("/probe?subscription=bad&probe=auth&debug=true").await;
    assert!(body.contains("token: not requested, backing off for"), "{body}");
    let m = e.metrics().await;
    // On-demand runs count their token requests too (the store is per subscription).
    assert_eq!(m.value("m365mon_token_requests_total", &[("subscription", "bad")]), 1.0, "{}", m.text);
    assert_eq!(
        m.value("m365mon_token_request_failures_total", &[("subscription", "bad"), ("reason", "credential_invalid")]),
        1.0
    );
}

/// Scheduled probes of a tenant with a bad secret, over 30 virtual minutes
/// with a 10 s interval (180 ticks of each of two probes): the back-off
/// (30 s, doubling, at most 10 min) bounds the token requests; once the
/// secret is fixed, sign-in recovers within the longest back-off.
#[tokio::test(start_paused = true)]
async fn a_bad_secret_does_not_hammer_the_token_endpoint() {
    let sim = start_sim(world()).await;
    let dir = TempDir::new("backoff");
    dir.write("secret.txt", "wrong-secret");
    let yaml = format!(
        "{}credentials:\n  app:\n    client_id: {SECRET_APP}\n    client_secret_file: secret.txt\nsubscriptions:\n{}",
        global(&sim, "10s", "5s"),
        sub("bad", ALPHA, "app", AUTH_AND_ORG),
    );
    let e = Exporter::start_in(dir, &yaml).await;
    let start = tokio::time::Instant::now();
    e.wait_metrics("a first failed run", Duration::from_secs(30), |m| {
        (m.last_failure("bad", "auth").as_deref() == Some("credential_invalid")).then_some(())
    })
    .await;
    tokio::time::sleep_until(start + Duration::from_secs(30 * 60)).await;
    let m = e.metrics().await;
    let runs = m.runs("bad", "auth") + m.runs("bad", "organization");
    assert!(runs >= 300.0, "the probes kept running on schedule: {runs}\n{}", m.text);
    assert_eq!(m.last_failure("bad", "organization").as_deref(), Some("credential_invalid"));
    // Requests at about 0, 30, 90, 210, 450, 930, 1530 s: 7 in 30 minutes.
    let sent = sim.token_requests(ALPHA);
    assert!((5..=8).contains(&sent), "{sent} token requests in 30 minutes");
    assert_eq!(m.value("m365mon_token_requests_total", &[("subscription", "bad")]), sent as f64);

    e.dir.write("secret.txt", SECRET);
    e.wait_metrics("recovery after the secret was fixed", Duration::from_secs(11 * 60), |m| {
        (m.success("bad", "auth") == Some(1.0) && m.success("bad", "organization") == Some(1.0)).then_some(())
    })
    .await;
}

/// A cached token is reused until five minutes before it expires, then
/// renewed once: over two virtual hours of five-minute Graph probes with
/// one-hour tokens, three token requests.
#[tokio::test(start_paused = true)]
async fn cached_tokens_are_renewed_shortly_before_expiry() {
    let mut w = world();
    w.token_lifetime_seconds = 3600;
    let sim = start_sim(w).await;
    let yaml = format!(
        "{}credentials:\n{}subscriptions:\n{}",
        global(&sim, "5m", "5s"),
        secret_credential("app", SECRET_APP, SECRET),
        sub(
            "alpha",
            ALPHA,
            "app",
            "      - type: organization\n      - type: teams\n        team_id: b0000000-0000-4000-8000-000000000001\n"
        ),
    );
    let e = Exporter::start(&yaml).await;
    let start = tokio::time::Instant::now();
    e.wait_metrics("a first run", Duration::from_secs(600), |m| (m.runs("alpha", "organization") >= 1.0).then_some(()))
        .await;
    assert_eq!(sim.token_requests(ALPHA), 1);
    // Renewal is due 55 minutes after the first request.
    tokio::time::sleep_until(start + Duration::from_secs(50 * 60)).await;
    assert_eq!(sim.token_requests(ALPHA), 1, "reused within its lifetime");
    tokio::time::sleep_until(start + Duration::from_secs(2 * 3600)).await;
    let m = e.metrics().await;
    assert!(m.runs("alpha", "organization") >= 23.0, "{}", m.text);
    assert_eq!(m.success("alpha", "organization"), Some(1.0));
    assert_eq!(m.success("alpha", "teams"), Some(1.0));
    assert_eq!(sim.token_requests(ALPHA), 3, "one renewal per 55 minutes");
    assert_eq!(m.value("m365mon_token_requests_total", &[("subscription", "alpha")]), 3.0);
}

/// An absurd `expires_in` (u64::MAX seconds) neither crashes sign-in nor
/// keeps a token for ever: the cache renews it within a day.
#[tokio::test(start_paused = true)]
async fn an_absurd_token_lifetime_is_capped() {
    let mut w = world();
    w.token_lifetime_seconds = u64::MAX;
    let sim = start_sim(w).await;
    let yaml = format!(
        "{}credentials:\n{}subscriptions:\n{}",
        global(&sim, "1h", "5s"),
        secret_credential("app", SECRET_APP, SECRET),
        sub("alpha", ALPHA, "app", "      - type: organization\n"),
    );
    let e = Exporter::start(&yaml).await;
    let m = e.probe("subscription=alpha").await;
    assert_eq!(m.success("alpha", "organization"), Some(1.0), "{}", m.text);
    assert_eq!(sim.token_requests(ALPHA), 1);
    tokio::time::sleep(Duration::from_secs(25 * 3600)).await;
    let m = e.metrics().await;
    assert!(m.runs("alpha", "organization") >= 24.0, "{}", m.text);
    assert_eq!(m.success("alpha", "organization"), Some(1.0));
    assert_eq!(sim.token_requests(ALPHA), 2, "renewed once within the day");
}

/// A five-minute 5xx burst of the token endpoint, with a 60 s interval:
/// during it, a few requests a minute at most; after it, both the `auth`
/// probe and a Graph probe sign in again within about one interval (not
/// after an exponential back-off grown during the outage).
#[tokio::test(start_paused = true)]
async fn sign_in_recovers_within_an_interval_after_a_5xx_burst() {
    let sim = start_sim(world()).await;
    sim.set_fault(ALPHA, Target::Token, Fault::ServerError);
    let yaml = format!(
        "{}credentials:\n{}subscriptions:\n{}",
        global(&sim, "60s", "5s"),
        secret_credential("app", SECRET_APP, SECRET),
        sub("alpha", ALPHA, "app", AUTH_AND_ORG),
    );
    let e = Exporter::start(&yaml).await;
    let start = tokio::time::Instant::now();
    e.wait_metrics("a first failed run", Duration::from_secs(120), |m| {
        (m.last_failure("alpha", "auth").as_deref() == Some("http_5xx")).then_some(())
    })
    .await;
    tokio::time::sleep_until(start + Duration::from_secs(5 * 60)).await;
    let m = e.metrics().await;
    assert!(m.runs("alpha", "auth") >= 4.0, "{}", m.text);
    assert_eq!(m.last_failure("alpha", "organization").as_deref(), Some("http_5xx"), "{}", m.text);
    let sent = sim.token_requests(ALPHA);
    assert!((4..=12).contains(&sent), "{sent} token requests in a five-minute outage");

    sim.clear_fault(ALPHA, Target::Token);
    e.wait_metrics("recovery after the outage", Duration::from_secs(95), |m| {
        (m.success("alpha", "auth") == Some(1.0) && m.success("alpha", "organization") == Some(1.0)).then_some(())
    })
    .await;
}

/// A token Graph stops accepting before its expiry (here: the simulator's
/// clock jumps past it, as for a revoked token) fails one run with
/// `unauthorized` and is dropped from the cache: the next run signs in
/// again and succeeds, instead of failing until the renewal is due.
#[tokio::test]
async fn a_token_graph_rejects_is_dropped_from_the_cache() {
    let sim = start_sim(world()).await;
    let yaml = format!(
        "{}credentials:\n{}subscriptions:\n{}",
        global(&sim, NEVER, "5s"),
        secret_credential("app", SECRET_APP, SECRET),
        sub("alpha", ALPHA, "app", "      - type: organization\n      - type: service_health\n"),
    );
    let e = Exporter::start(&yaml).await;
    for p in ["organization", "service_health"] {
        assert_eq!(probe_once(&e, "alpha", p).await, (Some(1.0), None), "{p}");
        assert_eq!(sim.token_requests(ALPHA), 1, "{p}");
    }
    for (p, n) in [("organization", 2), ("service_health", 3)] {
        sim.advance_clock(Duration::from_secs(2 * 3600));
        let (_, body) = e.get(&format!("/probe?subscription=alpha&probe={p}&debug=true")).await;
        assert!(body.contains("reason=\"unauthorized\""), "{p}: {body}");
        assert!(body.contains("dropped from the cache"), "{p}: {body}");
        assert_eq!(probe_once(&e, "alpha", p).await, (Some(1.0), None), "{p}");
        assert_eq!(sim.token_requests(ALPHA), n, "{p}: one new token");
    }
}
