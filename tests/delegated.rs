//! Delegated sign-in against the simulator: the device code flow with each
//! polling answer, the token store (rotation persisted, corrupt and foreign
//! files), `reauth_required` with its metric and landing page, consent
//! onboarding, and that no secret or token reaches metrics, the landing
//! page or probe logs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use m365mon::app::{App, ConfigSource, http_client};
use m365mon::auth::{DeviceCode, DeviceFlowError, TokenStore};
use m365mon::config::{Config, parse_str};
use m365mon::login::{self, LoginError};
use m365mon::probe::{FailureReason, Outcome};
use m365mon::runner::Mode;
use m365mon::sim::{self, DeviceOutcome, Fault, SimHandle, Target, World};
use tokio::net::TcpListener;

const WORLD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sim/delegated.yml");
const CONTOSO: &str = "e0000000-0000-4000-8000-000000000001";
const CONF_SECRET: &str = "delegated-secret-value";
const APP_SECRET: &str = "app-only-secret-value";

async fn start_sim(change: impl FnOnce(&mut World)) -> SimHandle {
    let mut world = World::from_yaml_file(Path::new(WORLD)).expect("world fixture loads");
    change(&mut world);
    sim::start(TcpListener::bind("127.0.0.1:0").await.expect("bind"), world).await
}

fn config_text(sim: &SimHandle) -> String {
    format!(
        r#"
global:
  authority_host: {auth}
  graph_endpoint: {graph}
  probe_interval: 1y          # the tests run probes themselves
  probe_timeout: 10s
credentials:
  public:
    client_id: d0000000-0000-4000-8000-000000000001
    delegated: true
  confidential:
    client_id: d0000000-0000-4000-8000-000000000002
    delegated: true
    client_secret: {CONF_SECRET}
  app-only:
    client_id: d0000000-0000-4000-8000-000000000003
    client_secret: {APP_SECRET}
subscriptions:
  - name: contoso
    tenant_id: contoso.onmicrosoft.com
    credential: public
    probes: [{{type: auth}}, {{type: organization}}]
  - name: contoso-conf
    tenant_id: {CONTOSO}
    credential: confidential
    probes: [{{type: organization}}]
  - name: fabrikam
    tenant_id: fabrikam.onmicrosoft.com
    credential: app-only
    probes: [{{type: auth}}]
"#,
        auth = sim.authority_host(),
        graph = sim.graph_endpoint()
    )
}

fn config(sim: &SimHandle) -> Config {
    parse_str(&config_text(sim), "test.yml", Path::new(".")).unwrap_or_else(|e| panic!("config:\n{e}"))
}

/// A fresh storage directory under the target dir (removed first).
fn storage(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("delegated").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// What a sign-in saw: the sleeps it asked for and the user code.
#[derive(Default)]
struct Seen {
    sleeps: Vec<Duration>,
    user_code: Option<String>,
    message: Option<String>,
    progress: Vec<String>,
}

/// Runs `m365mon login` for `sub` in-process. Each sleep moves the
/// simulator's clock by what `advance` returns for (poll number, asked).
async fn login_with(
    sim: &SimHandle,
    cfg: &Config,
    store: &TokenStore,
    sub: &str,
    advance: impl Fn(usize, Duration, &SimHandle, Option<&str>) -> Duration + Send + Sync + 'static,
) -> (Result<(m365mon::auth::StoredToken, PathBuf), LoginError>, Seen) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let (s, h) = (seen.clone(), sim.clone());
    let mut sleep = move |d: Duration| {
        let mut g = s.lock().unwrap();
        g.sleeps.push(d);
        let by = advance(g.sleeps.len(), d, &h, g.user_code.as_deref());
        h.advance_clock(by);
        Box::pin(async {}) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>
    };
    let s = seen.clone();
    let mut prompt = move |c: &DeviceCode| {
        let mut g = s.lock().unwrap();
        g.user_code = Some(c.user_code.clone());
        g.message = Some(c.message.clone());
    };
    let s = seen.clone();
    let mut progress = move |l: &str| s.lock().unwrap().progress.push(l.to_string());
    let (subscription, cred) = login::delegated_subscription(cfg, Path::new("test.yml"), sub).expect("delegated");
    let result =
        login::login(&http_client(), cfg, subscription, cred, store, &mut sleep, &mut prompt, &mut progress).await;
    let seen = std::mem::take(&mut *seen.lock().unwrap());
    (result, seen)
}

fn exact(_: usize, d: Duration, _: &SimHandle, _: Option<&str>) -> Duration {
    d
}

fn secs(v: &[u64]) -> Vec<Duration> {
    v.iter().map(|s| Duration::from_secs(*s)).collect()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("exists").permissions().mode() & 0o777
}

fn stored_rt(path: &Path) -> String {
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(path).expect("token file")).expect("JSON");
    v["refresh_token"].as_str().expect("refresh_token").to_string()
}

async fn run(app: &App, sub: &str, probe: &str) -> (Outcome, Vec<String>) {
    let r = app.runner().run(sub, probe, Mode::Scheduled).await.expect("configured");
    (r.outcome, r.log)
}

fn metrics(app: &App) -> String {
    m365mon::metrics::encode(&app.store().snapshot(), &app.build)
}

/// Pending once, then approved: the poller waits the interval before each
/// poll, prints Microsoft's message, and stores the refresh token in a 0600
/// file inside a 0700 directory, with which probes then work.
#[tokio::test]
async fn pending_then_approved_stores_the_sign_in() {
    let sim = start_sim(|w| w.tenants[0].device_flow.after_polls = 2).await;
    let cfg = config(&sim);
    let dir = storage("approved");
    let store = TokenStore::new(&dir);
    let (result, seen) = login_with(&sim, &cfg, &store, "contoso", exact).await;
    let (token, path) = result.expect("signed in");
    assert_eq!(seen.sleeps, secs(&[5, 5, 5]), "two pending answers, then the token");
    let code = seen.user_code.expect("prompted");
    assert!(seen.message.expect("message").contains(&code), "Microsoft's message names the code");
    assert_eq!(token.account.as_deref(), Some("monitor@contoso.example"));
    assert_eq!(path, dir.join("tokens/public@contoso.onmicrosoft.com.json"));
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.join("tokens")), 0o700);
    assert_eq!(stored_rt(&path), token.refresh_token.expose());
    assert!(
        !std::fs::read_dir(dir.join("tokens")).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp"))
    );

    let app = App::start_with_storage(ConfigSource::File("test.yml".into()), cfg, http_client(), &dir);
    assert_eq!(run(&app, "contoso", "organization").await.0, Outcome::Success);
    app.shutdown();
}

/// `slow_down` adds 5 s to the interval for good.
#[tokio::test]
async fn slow_down_adds_five_seconds() {
    let sim = start_sim(|w| {
        let f = &mut w.tenants[0].device_flow;
        f.after_polls = 1;
        f.enforce_interval = true;
    })
    .await;
    let cfg = config(&sim);
    let store = TokenStore::new(&storage("slow-down"));
    // The second wait is cut short (a clock jump), so that poll comes too soon.
    let (result, seen) =
        login_with(&sim, &cfg, &store, "contoso", |n, d, _, _| if n == 2 { Duration::from_secs(1) } else { d }).await;
    result.expect("signed in");
    assert_eq!(seen.sleeps, secs(&[5, 5, 10]));
    assert_eq!(seen.progress, ["Entra ID asked to poll less often; now every 10s"]);
}

/// A code nobody uses expires: `expired_token` ends the flow with a clear
/// message and nothing is stored.
#[tokio::test]
async fn expired_code_is_reported() {
    let sim = start_sim(|w| w.tenants[0].device_flow.outcome = DeviceOutcome::Pending).await;
    let cfg = config(&sim);
    let dir = storage("expired");
    let store = TokenStore::new(&dir);
    let (result, seen) =
        login_with(&sim, &cfg, &store, "contoso", |n, d, _, _| if n == 3 { Duration::from_secs(900) } else { d }).await;
    let err = result.expect_err("expired");
    assert!(matches!(err, LoginError::DeviceFlow(DeviceFlowError::Expired(900))), "{err:?}");
    assert_eq!(
        err.to_string(),
        "the code expired after 900s before the sign-in was completed (expired_token); run the command again"
    );
    assert_eq!(seen.sleeps.len(), 3);
    assert!(!store.file_for("public", "contoso.onmicrosoft.com").exists());
}

/// The user declines in the browser.
#[tokio::test]
async fn declined_sign_in_is_reported() {
    let sim = start_sim(|w| w.tenants[0].device_flow.outcome = DeviceOutcome::Decline).await;
    let cfg = config(&sim);
    let store = TokenStore::new(&storage("declined"));
    let (result, seen) = login_with(&sim, &cfg, &store, "contoso", exact).await;
    let err = result.expect_err("declined");
    assert!(matches!(err, LoginError::DeviceFlow(DeviceFlowError::Declined)), "{err:?}");
    assert!(err.to_string().contains("declined"));
    assert_eq!(seen.sleeps.len(), 2, "one pending answer, then the refusal");
}

/// The user signs in while the poller waits (approved by user code), with a
/// confidential client that sends its secret.
#[tokio::test]
async fn approval_while_polling_with_a_confidential_client() {
    let sim = start_sim(|w| w.tenants[0].device_flow.outcome = DeviceOutcome::Pending).await;
    let cfg = config(&sim);
    let store = TokenStore::new(&storage("approve"));
    let (result, seen) = login_with(&sim, &cfg, &store, "contoso-conf", |n, d, h, code| {
        if n == 4 {
            assert!(h.approve_device_code(code.expect("prompted before polling")));
        }
        d
    })
    .await;
    let (token, _) = result.expect("signed in");
    assert_eq!(token.credential, "confidential");
    assert_eq!(seen.sleeps.len(), 4);
}

/// Errors name what went wrong: an app not consented in the tenant, an
/// app-only credential, an unknown subscription.
#[tokio::test]
async fn sign_in_errors_are_clear() {
    let sim = start_sim(|_| {}).await;
    let cfg = config(&sim);
    let store = TokenStore::new(&storage("errors"));
    sim.set_fault("contoso.onmicrosoft.com", Target::Token, Fault::NotConsented);
    let (result, _) = login_with(&sim, &cfg, &store, "contoso", exact).await;
    let err = result.expect_err("refused").to_string();
    assert!(err.starts_with("Entra ID refused the sign-in: not_consented: unauthorized_client: AADSTS700016"), "{err}");

    let err = login::delegated_subscription(&cfg, Path::new("test.yml"), "fabrikam").expect_err("app-only");
    assert_eq!(
        err.to_string(),
        "subscription fabrikam uses credential app-only, which is not delegated; `m365mon login` is only for credentials with `delegated: true` (app-only credentials need admin consent: m365mon consent-url --subscription fabrikam)"
    );
    let err = login::delegated_subscription(&cfg, Path::new("test.yml"), "nope").expect_err("unknown");
    assert_eq!(
        err.to_string(),
        "unknown subscription \"nope\" in test.yml; configured: contoso, contoso-conf, fabrikam"
    );
}

/// With strict rotation (a used refresh token stops working) each refresh
/// stores the new refresh token, so a restarted exporter signs in without
/// a new login.
#[tokio::test]
async fn rotated_refresh_tokens_are_stored() {
    let sim = start_sim(|w| w.tenants[0].device_flow.after_polls = 0).await;
    let cfg = config(&sim);
    let dir = storage("rotation");
    let store = TokenStore::new(&dir);
    let (result, _) = login_with(&sim, &cfg, &store, "contoso", exact).await;
    let (_, path) = result.expect("signed in");
    let mut previous = stored_rt(&path);
    for restart in 0..3 {
        let app = App::start_with_storage(ConfigSource::File("t.yml".into()), cfg.clone(), http_client(), &dir);
        for _ in 0..2 {
            // `auth` always redeems the refresh token; `organization` then uses the cached access token.
            assert_eq!(run(&app, "contoso", "auth").await.0, Outcome::Success, "restart {restart}");
            let now = stored_rt(&path);
            assert_ne!(now, previous, "the rotated refresh token is stored");
            previous = now;
            assert_eq!(run(&app, "contoso", "organization").await.0, Outcome::Success);
        }
        assert_eq!(mode(&path), 0o600);
        app.shutdown();
    }
}

/// A rejected refresh token (revoked, expired, consent withdrawn) gives
/// `reauth_required`, the metric is 1 and the landing page names the command,
/// until a new `m365mon login`, which the running exporter notices at once.
#[tokio::test]
async fn rejected_refresh_token_needs_a_login() {
    let sim = start_sim(|w| w.tenants[0].device_flow.after_polls = 0).await;
    let cfg = config(&sim);
    let dir = storage("reauth");
    let store = TokenStore::new(&dir);
    let app = App::start_with_storage(ConfigSource::File("t.yml".into()), cfg.clone(), http_client(), &dir);

    // Nothing stored yet.
    let (outcome, log) = run(&app, "contoso", "organization").await;
    assert_eq!(outcome, Outcome::Failure(FailureReason::ReauthRequired));
    assert!(log.iter().any(|l| l.contains("run `m365mon login --subscription contoso`")), "{log:#?}");
    assert!(metrics(&app).contains("m365mon_credential_reauth_required{subscription=\"contoso\"} 1"));
    // App-only subscriptions have no such series.
    assert!(!metrics(&app).contains("m365mon_credential_reauth_required{subscription=\"fabrikam\"}"));

    for fault in [Fault::RefreshRevoked, Fault::RefreshExpired, Fault::ConsentRevoked] {
        login_with(&sim, &cfg, &store, "contoso", exact).await.0.expect("signed in");
        assert_eq!(run(&app, "contoso", "auth").await.0, Outcome::Success, "the new login is used at once");
        let m = metrics(&app);
        assert!(m.contains("m365mon_credential_reauth_required{subscription=\"contoso\"} 0"), "{m}");
        assert!(!m365mon::landing::render(&app).contains("Sign-in needed"));

        sim.set_fault(CONTOSO, Target::Token, fault);
        let (outcome, log) = run(&app, "contoso", "auth").await;
        assert_eq!(outcome, Outcome::Failure(FailureReason::ReauthRequired), "{fault:?}");
        assert!(log.iter().any(|l| l.contains("run `m365mon login --subscription contoso`")), "{log:#?}");
        sim.clear_fault(CONTOSO, Target::Token);
        // Still 1: the rejected token is not tried again until a login.
        assert_eq!(run(&app, "contoso", "organization").await.0, Outcome::Failure(FailureReason::ReauthRequired));
        let m = metrics(&app);
        assert!(m.contains("m365mon_credential_reauth_required{subscription=\"contoso\"} 1"), "{m}");
        assert!(m.contains("reason=\"reauth_required\""));
        let page = m365mon::landing::render(&app);
        assert!(page.contains("Sign-in needed"), "{page}");
        assert!(page.contains("<code>m365mon login --subscription contoso</code>"), "{page}");
    }
    app.shutdown();
}

/// A corrupt or foreign token file is reported naming the file, left in
/// place byte for byte, and `m365mon login` refuses to overwrite it;
/// `m365mon logout` removes it.
#[tokio::test]
async fn corrupt_and_foreign_files_are_left_alone() {
    let sim = start_sim(|w| w.tenants[0].device_flow.after_polls = 0).await;
    let cfg = config(&sim);
    let dir = storage("corrupt");
    let store = TokenStore::new(&dir);
    let path = store.file_for("public", "contoso.onmicrosoft.com");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let app = App::start_with_storage(ConfigSource::File("t.yml".into()), cfg.clone(), http_client(), &dir);
    for (content, kind) in [
        (&b"{\"format\": \"m365mon-token-v1\", \"refresh_tok"[..], "is corrupt"),
        (&b"\xff\xfe garbage"[..], "is corrupt"),
        (&b"{\"refresh_token\": \"someone else's\"}"[..], "is not m365mon's"),
    ] {
        std::fs::write(&path, content).unwrap();
        let (outcome, log) = run(&app, "contoso", "auth").await;
        assert_eq!(outcome, Outcome::Failure(FailureReason::AuthFailed));
        let want = format!("token file {} {kind}", path.display());
        assert!(log.iter().any(|l| l.contains(&want)), "{want}\n{log:#?}");
        let (result, seen) = login_with(&sim, &cfg, &store, "contoso", exact).await;
        assert!(result.expect_err("refused").to_string().starts_with(&want));
        assert!(seen.user_code.is_none(), "refused before the user signs in");
        assert_eq!(std::fs::read(&path).unwrap(), content, "left in place");
    }
    assert_eq!(store.remove("public", "contoso.onmicrosoft.com").unwrap(), Some(path.clone()));
    assert!(!path.exists());
    assert_eq!(store.remove("public", "contoso.onmicrosoft.com").unwrap(), None);
    app.shutdown();
}

/// `consent-url` prints the admin consent URL of the tenant on the cloud's
/// authority and the permission each probe needs; the landing page links it
/// for subscriptions failing with `not_consented`.
#[tokio::test]
async fn consent_url_and_landing_link() {
    let sim = start_sim(|_| {}).await;
    let cfg = config(&sim);
    let report = login::consent_report(&cfg, Path::new("test.yml"), Some("fabrikam"), None).unwrap();
    let url = format!(
        "{}/fabrikam.onmicrosoft.com/adminconsent?client_id=d0000000-0000-4000-8000-000000000003",
        sim.authority_host()
    );
    assert!(report.starts_with(&format!(
        "Admin consent for tenant fabrikam.onmicrosoft.com, app d0000000-0000-4000-8000-000000000003 (credential app-only), subscription fabrikam:\n\n  {url}\n"
    )), "{report}");
    assert!(report.contains("No permission is needed by: auth (sign-in only)."), "{report}");

    let report = login::consent_report(&cfg, Path::new("test.yml"), None, Some(("public", "newco.example"))).unwrap();
    for line in [
        "/newco.example/adminconsent?client_id=d0000000-0000-4000-8000-000000000001",
        "  Organization.Read.All    probes: organization",
        "  Mail.ReadBasic.All       probes: exchange",
        "  ServiceHealth.Read.All   probes: service_health",
        "  Mail.Send                probes: mail_roundtrip",
        "  ServiceMessage.Read.All  probes: message_center",
        "Credential public is delegated",
    ] {
        assert!(report.contains(line), "{line}\n{report}");
    }
    let err = login::consent_report(&cfg, Path::new("test.yml"), None, Some(("nope", "x.example"))).unwrap_err();
    assert_eq!(err.to_string(), "unknown credential \"nope\" in test.yml; configured: app-only, confidential, public");

    // Fabrikam has not consented the app-only app.
    let app = App::start_with_storage(ConfigSource::File("t.yml".into()), cfg, http_client(), &storage("consent"));
    assert_eq!(run(&app, "fabrikam", "auth").await.0, Outcome::Failure(FailureReason::NotConsented));
    let page = m365mon::landing::render(&app);
    assert!(page.contains("Consent needed"), "{page}");
    assert!(page.contains(&format!("<a href=\"#fabrikam\">fabrikam</a>: <a href=\"{url}\">{url}</a>")), "{page}");
    app.shutdown();
}

/// No client secret, refresh token or access token appears in metrics, the
/// landing page or probe logs, whatever happened.
#[tokio::test]
async fn secrets_and_tokens_never_shown() {
    let sim = start_sim(|w| w.tenants[0].device_flow.after_polls = 0).await;
    let cfg = config(&sim);
    let dir = storage("secrets");
    let store = TokenStore::new(&dir);
    let (result, _) = login_with(&sim, &cfg, &store, "contoso-conf", exact).await;
    let (_, path) = result.expect("signed in");
    let app = App::start_with_storage(ConfigSource::File("t.yml".into()), cfg, http_client(), &dir);
    let mut logs = Vec::new();
    let mut refresh_tokens = vec![stored_rt(&path)];
    for _ in 0..2 {
        logs.extend(run(&app, "contoso-conf", "organization").await.1);
        refresh_tokens.push(stored_rt(&path));
        app.runner().run("contoso-conf", "organization", Mode::OnDemand { deadline: None }).await;
    }
    sim.set_fault(CONTOSO, Target::Token, Fault::RefreshRevoked);
    logs.extend(run(&app, "contoso", "auth").await.1);
    logs.extend(run(&app, "fabrikam", "auth").await.1);
    let shown = format!("{}\n{}\n{}", metrics(&app), m365mon::landing::render(&app), logs.join("\n"));
    for secret in refresh_tokens.iter().map(String::as_str).chain([CONF_SECRET, APP_SECRET]) {
        assert!(!shown.contains(secret), "a secret is shown:\n{shown}");
    }
    // Minted access tokens are JWTs; none may appear.
    assert!(!shown.contains("eyJ"), "{shown}");
    app.shutdown();
}

/// An absurd `interval` from the server is capped at a minute between polls.
#[tokio::test]
async fn a_huge_server_interval_is_capped() {
    let sim = start_sim(|w| {
        let f = &mut w.tenants[0].device_flow;
        f.after_polls = 1;
        f.interval_seconds = 1_000_000;
        f.expires_in_seconds = 10_000_000;
    })
    .await;
    let cfg = config(&sim);
    let store = TokenStore::new(&storage("huge-interval"));
    let (result, seen) = login_with(&sim, &cfg, &store, "contoso", exact).await;
    result.expect("signed in");
    assert_eq!(seen.sleeps, secs(&[60, 60]));
}
