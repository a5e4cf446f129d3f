//! Reload on SIGHUP, through the built binary: a good file is applied, a bad
//! one is refused and the running config stays.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use m365mon::demo::demo_config;
use m365mon::sim::{self, World};

struct Running(Child, PathBuf);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
        let _ = std::fs::remove_dir_all(&self.1);
    }
}

/// The demo config cut down to the subscriptions named in `keep`.
fn config(authority: &str, graph: &str, keep: &[&str]) -> String {
    let full = demo_config(authority, graph);
    let mut parts = full.split("\n  - name: ");
    let head = parts.next().expect("the part before the subscriptions");
    let subs = parts.filter(|p| keep.iter().any(|k| p.starts_with(&format!("{k}\n"))));
    std::iter::once(head).chain(subs).collect::<Vec<_>>().join("\n  - name: ")
}

fn write(path: &PathBuf, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write config");
    std::fs::rename(&tmp, path).expect("replace config");
}

fn hup(pid: u32) {
    let status = Command::new("kill").args(["-HUP", &pid.to_string()]).status().expect("kill runs");
    assert!(status.success(), "kill -HUP {pid}");
}

async fn wait_for(url: &str, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = reqwest::get(url).await.expect("scrape").text().await.expect("body");
        if ok(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what} within 20 s; last scrape:\n{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_good_file_and_refuses_a_bad_one() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let sim = sim::start(listener, World::demo()).await;
    let (authority, graph) = (sim.authority_host(), sim.graph_endpoint());

    let dir = std::env::temp_dir().join(format!("m365mon-sighup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("m365mon.yml");
    write(&file, &config(&authority, &graph, &["northwind"]));

    let mut child = Command::new(env!("CARGO_BIN_EXE_m365mon"))
        .arg(format!("--config.file={}", file.display()))
        .arg(format!("--storage.path={}", dir.join("data").display()))
        .args(["--web.listen-address", "127.0.0.1:0"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("m365mon starts");
    let stderr = child.stderr.take().expect("stderr");
    let pid = child.id();
    let _running = Running(child, dir.clone());
    let mut lines = BufReader::new(stderr).lines();
    let address = loop {
        let line = lines.next().expect("m365mon exited before it listened (see its log above)").expect("UTF-8 log");
        eprintln!("m365mon: {line}");
        if line.contains("m365mon listening")
            && let Some(rest) = line.split("address=").nth(1)
        {
            break rest.split_whitespace().next().expect("address value").to_string();
        }
    };
    // Keep draining the log so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    let url = format!("http://{address}/metrics");
    let info = |s: &str| format!("m365mon_subscription_info{{subscription=\"{s}\"");

    wait_for(&url, "northwind configured", |t| t.contains(&info("northwind"))).await;
    assert!(!reqwest::get(&url).await.unwrap().text().await.unwrap().contains(&info("tailspin")));

    write(&file, &config(&authority, &graph, &["northwind", "tailspin"]));
    hup(pid);
    wait_for(&url, "tailspin added by SIGHUP", |t| t.contains(&info("tailspin"))).await;

    write(&file, "subscriptions: [oops\n");
    hup(pid);
    let text = wait_for(&url, "the bad file refused", |t| t.contains("m365mon_config_last_reload_successful 0")).await;
    assert!(text.contains(&info("northwind")) && text.contains(&info("tailspin")), "the running config stays:\n{text}");

    sim.shutdown().await;
}
