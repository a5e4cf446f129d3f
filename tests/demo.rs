//! `m365mon demo`, run as a user runs it: the built binary on a free port,
//! its printed `/metrics` URL scraped until every subscription has results.

#[path = "common/tools.rs"]
mod tools;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills the demo when the test ends, also on panic.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An empty directory of its own under the system temp dir, removed on drop.
struct Cwd(std::path::PathBuf);

impl Cwd {
    fn new(tag: &str) -> Cwd {
        let dir = std::env::temp_dir().join(format!("m365mon-{tag}-{}-{}", std::process::id(), uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        Cwd(dir)
    }
    fn entries(&self) -> Vec<String> {
        std::fs::read_dir(&self.0).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect()
    }
}

impl Drop for Cwd {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start_demo(cwd: &Cwd) -> (Running, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_m365mon"))
        .args(["demo", "--web.listen-address", "127.0.0.1:0"])
        .current_dir(&cwd.0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("m365mon demo starts");
    let stdout = child.stdout.take().expect("stdout");
    let running = Running(child);
    let mut url = None;
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("demo output is UTF-8");
        if let Some(rest) = line.trim().strip_prefix("metrics:") {
            url = Some(rest.trim().to_string());
        }
        if line.starts_with("Press Ctrl-C") {
            break;
        }
    }
    let url = url.expect("the demo prints its /metrics URL");
    assert!(url.starts_with("http://127.0.0.1:") && !url.contains(":0/"), "a real port is printed: {url}");
    (running, url)
}

fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_serves_healthy_and_failing_subscriptions() {
    let cwd = Cwd::new("demo");
    let (demo, url) = start_demo(&cwd);
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let subs = ["contoso", "fabrikam", "northwind", "tailspin"];
    let probes = ["auth", "organization", "exchange", "sharepoint", "onedrive", "teams", "service_health"];
    let text = loop {
        let text = client.get(&url).send().await.expect("scrape").text().await.expect("body");
        let all_ran = subs.iter().all(|s| {
            probes.iter().all(|p| {
                value(&text, &format!("m365mon_probe_runs_total{{subscription=\"{s}\",probe=\"{p}\"}}"))
                    .is_some_and(|v| v >= 1.0)
            })
        });
        if all_ran {
            break text;
        }
        assert!(Instant::now() < deadline, "not every probe ran within 60 s (the demo interval is 15 s):\n{text}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    for s in ["contoso", "northwind"] {
        for p in probes {
            let series = format!("m365mon_probe_success{{subscription=\"{s}\",probe=\"{p}\"}}");
            assert_eq!(value(&text, &series), Some(1.0), "{series} in\n{text}");
        }
    }
    for p in probes {
        let series = format!("m365mon_probe_success{{subscription=\"tailspin\",probe=\"{p}\"}}");
        assert_eq!(value(&text, &series), Some(0.0), "{series}");
    }
    assert!(
        text.contains(
            "m365mon_probe_failures_total{subscription=\"tailspin\",probe=\"auth\",reason=\"credential_expired\"}"
        ),
        "tailspin fails with credential_expired:\n{text}"
    );
    for s in subs {
        let series = format!("m365mon_subscription_admin_info{{subscription=\"{s}\",admin=\"noc@reseller.example\"}}");
        assert_eq!(value(&text, &series), Some(1.0), "one admin manages every subscription: {series}");
    }
    assert!(!text.contains("demo-secret-not-for-production") && !text.contains("tailspin-old-secret"));
    let (ok, findings) = tools::promtool_check_metrics(&text);
    assert!(ok, "promtool check metrics: {findings}");
    // Nothing written where it was started (no `data/`): the demo has no delegated sign-in to store.
    drop(demo);
    assert_eq!(cwd.entries(), Vec::<String>::new());
}

/// `--config.file` would suggest the demo probes that file's tenants: it is refused, saying why.
#[test]
fn demo_refuses_config_file() {
    let cwd = Cwd::new("demo-config");
    let out = Command::new(env!("CARGO_BIN_EXE_m365mon"))
        .args(["demo", "--config.file", "mine.yml", "--web.listen-address", "127.0.0.1:0"])
        .current_dir(&cwd.0)
        .output()
        .expect("m365mon demo runs");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.trim_end(),
        "m365mon: demo runs its built-in configuration against the simulator; --config.file does not apply \
         (to probe your tenants, run m365mon --config.file mine.yml)"
    );
    assert!(out.stdout.is_empty(), "nothing started: {}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(cwd.entries(), Vec::<String>::new());
}
