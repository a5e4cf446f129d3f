//! Canary secrets: unique client secrets (inline, in a file, and a wrong one)
//! and a certificate key that must never appear in logs, `/metrics`, `/probe`
//! debug output, the landing page or error messages, while the exporter
//! signs in with them, fails with them and reloads files holding them.

mod common;

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use m365mon::sim::{AppSecret, Fault, Target};

/// Collects everything the tracing subscriber writes.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// The canaries and a check that none of them is in `text`.
struct Canaries(Vec<String>);

impl Canaries {
    fn assert_absent(&self, what: &str, text: &str) {
        assert!(!text.is_empty(), "{what} is empty: nothing was checked");
        for c in &self.0 {
            assert!(!text.contains(c.as_str()), "a secret ({c:.20}...) appears in {what}:\n{text}");
        }
        // No bearer token or client assertion either (both are JWTs).
        assert!(!text.contains("eyJ"), "a JWT appears in {what}:\n{text}");
    }
}

fn sub(name: &str, tenant: &str, credential: &str) -> String {
    format!(
        "  - name: {name}\n    tenant_id: {tenant}\n    credential: {credential}\n    probes:\n      - type: auth\n      - type: organization\n"
    )
}

// Paused time: the scheduled runs (and back-off) happen in virtual time; one
// current-thread runtime, so the thread's default subscriber sees every task.
#[tokio::test(start_paused = true)]
async fn secrets_never_appear_in_logs_metrics_debug_output_landing_page_or_errors() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .event_format(m365mon::logging::Logfmt)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let unique = uuid::Uuid::new_v4().simple().to_string();
    let inline = format!("canary-inline-{unique}");
    let in_file = format!("canary-file-{unique}");
    let wrong = format!("canary-wrong-{unique}");
    let key_pem = std::fs::read_to_string(format!("{CERTS}/app.key.pem")).unwrap();
    let mut canaries: Vec<String> = vec![inline.clone(), in_file.clone(), wrong.clone()];
    // Every base64 line of the private key.
    canaries.extend(key_pem.lines().filter(|l| !l.starts_with("-----") && l.len() > 16).map(str::to_string));
    let canaries = Canaries(canaries);

    let mut w = world();
    let app = w.apps.iter_mut().find(|a| a.client_id == SECRET_APP).unwrap();
    for s in [&inline, &in_file] {
        app.secrets.push(AppSecret { value: m365mon::config::Secret::new(s.as_str()), expired: false });
    }
    let sim = start_sim(w).await;
    // Beta's token endpoint is down, so sign-in errors are logged and shown too.
    sim.set_fault(BETA, Target::Token, Fault::Down);

    let dir = TempDir::new("canary");
    dir.write("secret.txt", &format!("{in_file}\n"));
    let yaml = format!(
        "{}credentials:\n{}  file:\n    client_id: {SECRET_APP}\n    client_secret_file: secret.txt\n{}{}subscriptions:\n{}{}{}{}{}",
        global(&sim, "30s", "5s"),
        secret_credential("inline", SECRET_APP, &inline),
        secret_credential("wrong", SECRET_APP, &wrong),
        cert_credential("cert", CERT_APP, "app"),
        sub("inline", ALPHA, "inline"),
        sub("file", ALPHA, "file"),
        sub("wrong", ALPHA, "wrong"),
        sub("cert", ALPHA, "cert"),
        sub("down", BETA, "inline"),
    );
    let e = Exporter::start_in(dir, &yaml).await;
    let m = e
        .wait_metrics("every probe to run", Duration::from_secs(120), |m| {
            ["inline", "file", "wrong", "cert", "down"]
                .iter()
                .all(|s| m.runs(s, "auth") >= 1.0 && m.runs(s, "organization") >= 1.0)
                .then(|| m.clone())
        })
        .await;
    // The canaries were really used: good ones signed in, the wrong one failed.
    for s in ["inline", "file", "cert"] {
        assert_eq!(m.success(s, "auth"), Some(1.0), "{s}:\n{}", m.text);
    }
    assert_eq!(m.last_failure("wrong", "auth").as_deref(), Some("credential_invalid"));
    assert_eq!(m.last_failure("down", "auth").as_deref(), Some("http_5xx"));
    // Let the back-off and a few more rounds happen.
    tokio::time::sleep(Duration::from_secs(300)).await;

    canaries.assert_absent("/metrics", &e.metrics().await.text);
    for s in ["inline", "file", "wrong", "cert", "down"] {
        let (status, body) = e.get(&format!("/probe?subscription={s}&debug=true")).await;
        assert_eq!(status, 200);
        assert!(body.contains("Effective configuration (secrets redacted):"), "{body}");
        canaries.assert_absent(&format!("/probe?subscription={s}&debug=true"), &body);
        canaries
            .assert_absent(&format!("/probe?subscription={s}"), &e.get(&format!("/probe?subscription={s}")).await.1);
    }
    canaries.assert_absent("the landing page", &e.get("/").await.1);

    // Bad files holding the secrets: the errors quote neither.
    let bad_files = [
        // A misspelled key holding the secret.
        yaml.replace("    client_secret: \"canary-inline", "    client_secrett: \"canary-inline"),
        // Two secret kinds at once.
        yaml.replace(
            "    client_secret_file: secret.txt\n",
            &format!("    client_secret_file: secret.txt\n    client_secret: {in_file}\n"),
        ),
        // A YAML syntax error on the secret's line.
        yaml.replace(&format!("client_secret: \"{inline}\""), &format!("client_secret: \"{inline}")),
        // The secret where a list is expected.
        yaml.replace("    credential: wrong\n", &format!("    credential: wrong\n    admins: {wrong}\n")),
        // A secret value that is not a string.
        yaml.replace(&format!("client_secret: \"{wrong}\""), &format!("client_secret: [{wrong}]")),
        // The secret pasted where the name of an environment variable belongs.
        yaml.replace("    client_secret_file: secret.txt\n", &format!("    client_secret_env: {in_file}\n")),
        // The secret pasted where the path of a file belongs.
        yaml.replace("    client_secret_file: secret.txt\n", &format!("    client_secret_file: {in_file}\n")),
        // A password in an endpoint URL.
        yaml.replace("graph_endpoint: http://", &format!("graph_endpoint: http://monitor:{wrong}@")),
    ];
    for (i, bad) in bad_files.iter().enumerate() {
        assert_ne!(bad, &yaml, "bad file {i} differs from the good one");
        let (status, body) = e.reload_with(bad).await;
        assert_eq!(status, 500, "bad file {i}: {body}");
        canaries.assert_absent(&format!("the reload error for bad file {i}"), &body);
        canaries.assert_absent(
            &format!("the config error for bad file {i}"),
            &m365mon::config::load_file(&e.config_path).unwrap_err().to_string(),
        );
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_m365mon"))
            .arg("check-config")
            .arg("--config.file")
            .arg(&e.config_path)
            .output()
            .expect("run m365mon check-config");
        assert!(!out.status.success(), "check-config accepted bad file {i}");
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        canaries.assert_absent(&format!("check-config's output for bad file {i}"), &text);
    }
    // A good reload, and the configuration's own text views.
    assert_eq!(e.reload_with(&yaml).await.0, 200);
    let config = e.app.config();
    canaries.assert_absent("check-config's summary", &config.summary());
    canaries.assert_absent("the config's Debug output", &format!("{config:?}"));
    canaries.assert_absent("the landing page after reloads", &e.get("/").await.1);

    drop(e);
    let logs = logs.text();
    assert!(logs.contains("configuration reload failed"), "the logs were captured:\n{logs}");
    canaries.assert_absent("the logs", &logs);
}
