//! The built binary: kill -9 while it rotates refresh tokens (after a
//! restart the probes sign in again from the token store, with no new
//! login), and the `login`, `logout` and `consent-url` commands.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use m365mon::app::http_client;
use m365mon::auth::TokenStore;
use m365mon::config::parse_str;
use m365mon::sim::{self, SimHandle, World};
use tokio::net::TcpListener;
use tokio::time::Instant;

const WORLD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sim/delegated.yml");
const BIN: &str = env!("CARGO_BIN_EXE_m365mon");

async fn start_sim(strict: bool) -> SimHandle {
    let mut world = World::from_yaml_file(Path::new(WORLD)).expect("world fixture loads");
    world.strict_rotation = strict;
    world.tenants[0].device_flow.after_polls = 0;
    sim::start(TcpListener::bind("127.0.0.1:0").await.expect("bind"), world).await
}

/// Writes the config and signs `contoso` in; returns (config file, storage dir).
async fn setup(sim: &SimHandle, name: &str, probes: &str, interval: &str) -> (PathBuf, PathBuf) {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("delegated-kill").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let text = format!(
        "global:\n  authority_host: {}\n  graph_endpoint: {}\n  probe_interval: {interval}\n  probe_timeout: {interval}\n\
         credentials:\n  public:\n    client_id: d0000000-0000-4000-8000-000000000001\n    delegated: true\n\
         subscriptions:\n  - name: contoso\n    tenant_id: contoso.onmicrosoft.com\n    credential: public\n    probes: {probes}\n",
        sim.authority_host(),
        sim.graph_endpoint()
    );
    let file = dir.join("m365mon.yml");
    std::fs::write(&file, &text).unwrap();
    let storage = dir.join("data");
    let config = parse_str(&text, "m365mon.yml", &dir).unwrap_or_else(|e| panic!("{e}"));
    let (sub, cred) = m365mon::login::delegated_subscription(&config, &file, "contoso").unwrap();
    let mut sleep =
        |_d: Duration| Box::pin(async {}) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
    let store = TokenStore::new(&storage);
    m365mon::login::login(&http_client(), &config, sub, cred, &store, &mut sleep, &mut |_| {}, &mut |_| {})
        .await
        .expect("signed in");
    (file, storage)
}

fn spawn(config: &Path, storage: &Path, log: &Path) -> Child {
    let log = std::fs::OpenOptions::new().create(true).append(true).open(log).unwrap();
    Command::new(BIN)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", storage.display()))
        .arg("--web.listen-address=127.0.0.1:0")
        .arg("--log.level=debug")
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("the m365mon binary starts")
}

fn kill_9(mut child: Child) {
    child.kill().expect("SIGKILL"); // std's kill is SIGKILL on Unix
    child.wait().expect("reaped");
}

/// Waits (at most 30 s) until the simulator saw a successful Graph call
/// made after a successful refresh, both since the last `clear_requests`.
async fn wait_for_signed_in_probe(sim: &SimHandle) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let reqs = sim.requests();
        let refreshed = reqs.iter().position(|r| r.path.ends_with("/oauth2/v2.0/token") && r.status == Some(200));
        if let Some(i) = refreshed
            && reqs[i..].iter().any(|r| r.path == "/graph/v1.0/organization" && r.status == Some(200))
        {
            return;
        }
        let failed: Vec<_> = reqs.iter().filter(|r| r.status.is_some_and(|s| s >= 400)).collect();
        assert!(failed.is_empty(), "requests failed (a new login would be needed): {failed:#?}");
        assert!(Instant::now() < deadline, "no signed-in probe within 30 s; requests: {reqs:#?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn stored_rt(storage: &Path) -> String {
    let path = TokenStore::new(storage).file_for("public", "contoso.onmicrosoft.com");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap())
        .unwrap_or_else(|e| panic!("{} is not whole JSON after kill -9: {e}", path.display()));
    v["refresh_token"].as_str().expect("refresh_token").to_string()
}

fn assert_no_secret_in_log(log: &Path, secrets: &[String]) {
    let text = std::fs::read_to_string(log).unwrap();
    assert!(text.contains("m365mon listening"), "the log was captured:\n{text}");
    for s in secrets {
        assert!(!text.contains(s.as_str()), "a refresh token is in the log:\n{text}");
    }
    assert!(!text.contains("eyJ"), "an access token is in the log:\n{text}");
}

/// Strict rotation (a redeemed refresh token stops working): each start
/// redeems the stored token once, and the process is killed right after it
/// used the new access token. The restart works, so the rotated refresh
/// token was on disk before the access token was used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_after_rotation_with_strict_rotation() {
    let sim = start_sim(true).await;
    let (config, storage) = setup(&sim, "strict", "[{type: organization}]", "1s").await;
    let log = storage.with_file_name("exporter.log");
    let mut seen = vec![stored_rt(&storage)];
    for _ in 0..4 {
        sim.clear_requests();
        let child = spawn(&config, &storage, &log);
        wait_for_signed_in_probe(&sim).await;
        kill_9(child);
        let now = stored_rt(&storage);
        assert!(!seen.contains(&now), "each start rotated and stored the refresh token");
        seen.push(now);
    }
    assert_no_secret_in_log(&log, &seen);
}

/// Killed at arbitrary moments while it rotates every 100 ms: the token
/// file is always whole and usable, and every restart signs in with it.
/// Entra keeps a redeemed refresh token valid (protocol doc 1.5), as this
/// simulator does without strict rotation; under strict single-use rotation
/// a kill between Entra's answer and the rename would lose the new token,
/// which no client can prevent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_at_any_moment_during_rotation() {
    let sim = start_sim(false).await;
    let (config, storage) = setup(&sim, "any-moment", "[{type: auth}, {type: organization}]", "100ms").await;
    let log = storage.with_file_name("exporter.log");
    let mut seen = vec![stored_rt(&storage)];
    // Kill delays spread over a few rotation periods (a fixed sequence, so a failure can be replayed).
    for delay_ms in [0u64, 37, 113, 71, 260, 5, 190, 149] {
        sim.clear_requests();
        let child = spawn(&config, &storage, &log);
        wait_for_signed_in_probe(&sim).await;
        tokio::time::sleep(Duration::from_millis(delay_ms)).await;
        kill_9(child);
        seen.push(stored_rt(&storage));
        let tmp = TokenStore::new(&storage).dir().join(".public@contoso.onmicrosoft.com.json.tmp");
        if let Ok(meta) = std::fs::metadata(&tmp) {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(meta.permissions().mode() & 0o777, 0o600, "a leftover temporary file is private");
        }
    }
    sim.clear_requests();
    let child = spawn(&config, &storage, &log);
    wait_for_signed_in_probe(&sim).await;
    kill_9(child);
    seen.dedup();
    assert!(seen.len() > 3, "tokens were rotated and stored: {}", seen.len());
    assert_no_secret_in_log(&log, &seen);
}

fn command(config: &Path, storage: &Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", storage.display()))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("the m365mon binary runs")
}

/// `m365mon login` prints Microsoft's message, waits the interval, stores
/// the sign-in; `logout` removes it; `consent-url` prints the link; a
/// wrong subscription is a clear error with exit code 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_logout_and_consent_url_commands() {
    let sim = start_sim(false).await;
    let (config, storage) = setup(&sim, "commands", "[{type: organization}]", "1m").await;
    let file = TokenStore::new(&storage).file_for("public", "contoso.onmicrosoft.com");

    let out = command(&config, &storage, &["logout", "--subscription=contoso"]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("Signed out subscription contoso: removed {}.\n", file.display())
    );
    assert!(!file.exists());
    let out = command(&config, &storage, &["logout", "--subscription=contoso"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Subscription contoso has no stored sign-in; nothing to do.\n");

    // Approved at the first poll, which comes after the 5 s interval.
    let cli = tokio::task::spawn_blocking({
        let (c, s) = (config.clone(), storage.clone());
        move || command(&c, &s, &["login", "--subscription=contoso"])
    });
    let out = cli.await.unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        stdout.starts_with(
            "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code "
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!(
            "Signed in as monitor@contoso.example for subscription contoso; the refresh token is stored in {}.",
            file.display()
        )),
        "{stdout}"
    );
    assert!(!stdout.contains(&stored_rt(&storage)));

    let out = command(&config, &storage, &["consent-url", "--subscription=contoso"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!(
            "  {}/contoso.onmicrosoft.com/adminconsent?client_id=d0000000-0000-4000-8000-000000000001\n",
            sim.authority_host()
        )),
        "{text}"
    );

    let out = command(&config, &storage, &["login", "--subscription=nope"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!("m365mon login: unknown subscription \"nope\" in {}; configured: contoso\n", config.display())
    );
    let out = command(&config, &storage, &["consent-url", "--credential=public"]);
    assert_eq!(out.status.code(), Some(2), "clap: --credential needs --tenant");
}
