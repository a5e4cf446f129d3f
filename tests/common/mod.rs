//! Shared by the end-to-end tests: the simulator with the fixture world, the
//! real exporter (App + HTTP server on 127.0.0.1:0) on a config file written
//! to a temporary directory, and reading `/metrics` as a user would.

// Each test crate uses a different part of these helpers.
#![allow(dead_code)]

pub mod tools;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use m365mon::app::{App, ConfigSource};
use m365mon::sim::{self, SimHandle, World};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const WORLD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sim/world.yml");
pub const CERTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/certs");

/// Tenant Alpha of the fixture world: every app consented, users, a site and a team.
pub const ALPHA: &str = "10000000-0000-4000-8000-000000000001";
/// Tenant Beta: only the secret app, with `Organization.Read.All`.
pub const BETA: &str = "20000000-0000-4000-8000-000000000002";
pub const SECRET_APP: &str = "a0000000-0000-4000-8000-000000000001";
pub const CERT_APP: &str = "a0000000-0000-4000-8000-000000000002";
pub const FED_APP: &str = "a0000000-0000-4000-8000-000000000003";
pub const NOROLES_APP: &str = "a0000000-0000-4000-8000-000000000005";
pub const LONELY_APP: &str = "a0000000-0000-4000-8000-000000000006";
/// The secret app's valid secret.
pub const SECRET: &str = "s3cr3t~value+/=";
/// The secret app's expired secret.
pub const EXPIRED_SECRET: &str = "old-secret";
pub const LONELY_SECRET: &str = "lonely-secret";
pub const FED_ISSUER: &str = "https://token.actions.githubusercontent.com";
pub const FED_SUBJECT: &str = "repo:example/m365mon:ref:refs/heads/main";
/// Alpha's team.
pub const ALPHA_TEAM: &str = "b0000000-0000-4000-8000-000000000001";

/// An interval so long that the scheduler does not fire during a test
/// (its phase is a hash of the names spread over a year), for tests that
/// drive probes through `/probe` only.
pub const NEVER: &str = "1y";

/// The fixture world.
pub fn world() -> World {
    World::from_yaml_file(Path::new(WORLD)).expect("fixture world loads")
}

/// Adds a copy of tenant `from` with a new GUID and domain (faults are per
/// tenant and target, so isolated tenants let one exporter show many faults).
pub fn clone_tenant(world: &mut World, from: &str, id: &str, domain: &str) {
    let mut t = world.tenants.iter().find(|t| t.id == from).expect("tenant to clone").clone();
    t.id = id.to_string();
    t.domains = vec![domain.to_string()];
    t.display_name = domain.to_string();
    world.tenants.push(t);
}

/// A GUID for the `n`th cloned tenant.
pub fn tenant_guid(n: u32) -> String {
    format!("90000000-0000-4000-8000-{n:012}")
}

/// Starts the simulator on 127.0.0.1:0.
pub async fn start_sim(world: World) -> SimHandle {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind simulator");
    sim::start(listener, world).await
}

/// A directory under the system temp dir, removed on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
        let dir = std::env::temp_dir().join(format!(
            "m365mon-test-{tag}-{}-{}-{nanos}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    /// Writes `name` in the directory (atomically: write then rename, so a
    /// reload never reads half a file) and returns its path.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        let tmp = self.0.join(format!(".{name}.tmp"));
        std::fs::write(&tmp, contents).expect("write temp file");
        std::fs::rename(&tmp, &path).expect("rename temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The `global:` section pointing at `sim`.
pub fn global(sim: &SimHandle, interval: &str, timeout: &str) -> String {
    format!(
        "global:\n  authority_host: {}\n  graph_endpoint: {}\n  probe_interval: {interval}\n  probe_timeout: {timeout}\n",
        sim.authority_host(),
        sim.graph_endpoint()
    )
}

/// The fixture app's certificate credential, as a `credentials:` entry.
pub fn cert_credential(name: &str, client_id: &str, which: &str) -> String {
    format!(
        "  {name}:\n    client_id: {client_id}\n    certificate_file: {CERTS}/{which}.crt.pem\n    private_key_file: {CERTS}/{which}.key.pem\n"
    )
}

/// A secret credential, as a `credentials:` entry (the secret quoted for YAML).
pub fn secret_credential(name: &str, client_id: &str, secret: &str) -> String {
    format!("  {name}:\n    client_id: {client_id}\n    client_secret: \"{secret}\"\n")
}

/// The real exporter: [`App`] on a config file, served on 127.0.0.1:0.
/// Stops when dropped.
pub struct Exporter {
    pub app: Arc<App>,
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    pub dir: TempDir,
    pub config_path: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Exporter {
    /// Writes `yaml` to `m365mon.yml` in a fresh directory and starts the
    /// exporter on it, as `m365mon --config.file=...` does.
    pub async fn start(yaml: &str) -> Exporter {
        let dir = TempDir::new("exporter");
        Self::start_in(dir, yaml).await
    }

    /// Like [`Exporter::start`], in a directory that may hold other files
    /// (secret or token files) already.
    pub async fn start_in(dir: TempDir, yaml: &str) -> Exporter {
        let config_path = dir.write("m365mon.yml", yaml);
        let source = ConfigSource::File(config_path.clone());
        let config = source.load().unwrap_or_else(|e| panic!("test config is invalid:\n{e}\n---\n{yaml}"));
        let app = App::start(source, config, m365mon::app::http_client());
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind exporter");
        let addr = listener.local_addr().expect("exporter addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let handler = m365mon::http::handler(app.clone());
        let task = tokio::spawn(async move {
            let shutdown = async {
                let _ = stopped.await;
            };
            m365mon::web::serve(listener, None, handler, shutdown).await.expect("exporter serves");
        });
        Exporter { app, addr, http: reqwest::Client::new(), dir, config_path, stop: Some(stop), task }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// GET `path`: (status, body).
    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self.http.get(self.url(path)).send().await.expect("GET the exporter");
        let status = r.status().as_u16();
        (status, r.text().await.expect("body"))
    }

    /// A request with any method: (status, Allow header, body).
    pub async fn request(&self, method: reqwest::Method, path: &str) -> (u16, Option<String>, String) {
        let r = self.http.request(method, self.url(path)).send().await.expect("request to the exporter");
        let status = r.status().as_u16();
        let allow = r.headers().get("allow").map(|v| v.to_str().unwrap_or("").to_string());
        (status, allow, r.text().await.expect("body"))
    }

    /// The `/metrics` page (asserting 200 and the 0.0.4 content type).
    pub async fn metrics(&self) -> Metrics {
        let r = self.http.get(self.url("/metrics")).send().await.expect("GET /metrics");
        assert_eq!(r.status().as_u16(), 200);
        let ct = r.headers().get("content-type").expect("content type").to_str().unwrap().to_string();
        assert_eq!(ct, "text/plain; version=0.0.4; charset=utf-8");
        Metrics::parse(&r.text().await.expect("body"))
    }

    /// `/probe?QUERY`, asserting 200, parsed.
    pub async fn probe(&self, query: &str) -> Metrics {
        let (status, body) = self.get(&format!("/probe?{query}")).await;
        assert_eq!(status, 200, "/probe?{query}: {body}");
        Metrics::parse(&body)
    }

    /// Rewrites the config file (atomically) and POSTs `/-/reload`: (status, body).
    pub async fn reload_with(&self, yaml: &str) -> (u16, String) {
        self.dir.write("m365mon.yml", yaml);
        let (status, _, body) = self.request(reqwest::Method::POST, "/-/reload").await;
        (status, body)
    }

    /// Polls `/metrics` until `check` returns `Some`, for at most `limit`
    /// (tokio time, so it works under paused time too). It polls about 500
    /// times over `limit`, at most every 10 ms.
    pub async fn wait_metrics<T>(&self, what: &str, limit: Duration, check: impl Fn(&Metrics) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + limit;
        let poll = (limit / 500).max(Duration::from_millis(10));
        loop {
            let m = self.metrics().await;
            if let Some(v) = check(&m) {
                return v;
            }
            if tokio::time::Instant::now() > deadline {
                panic!("timed out after {limit:?} waiting for {what}; last /metrics:\n{}", m.text);
            }
            tokio::time::sleep(poll).await;
        }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.abort();
        self.app.shutdown();
    }
}

/// One parsed sample.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// A parsed exposition (text format 0.0.4), with the raw text kept.
#[derive(Debug, Clone)]
pub struct Metrics {
    pub text: String,
    pub samples: Vec<Sample>,
}

impl Metrics {
    /// Parses the text format; panics (failing the test) on lines it cannot read.
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad sample line {line:?}"));
            let value = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {line:?}")),
            };
            let (name, labels) = match series.split_once('{') {
                None => (series.to_string(), BTreeMap::new()),
                Some((name, rest)) => {
                    let rest = rest.strip_suffix('}').unwrap_or_else(|| panic!("bad labels in {line:?}"));
                    (name.to_string(), parse_labels(rest, line))
                }
            };
            samples.push(Sample { name, labels, value });
        }
        Metrics { text: text.to_string(), samples }
    }

    /// Samples of `name` whose labels include all of `labels`.
    pub fn all(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
            .collect()
    }

    /// The one sample of `name` matching `labels`, if any (panics if several match).
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let all = self.all(name, labels);
        assert!(all.len() <= 1, "{name}{labels:?} matches {} series:\n{}", all.len(), self.text);
        all.first().map(|s| s.value)
    }

    /// Like [`Metrics::get`], 0 when absent (counters that have not started).
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or(0.0)
    }

    /// `m365mon_probe_success` of (sub, probe).
    pub fn success(&self, sub: &str, probe: &str) -> Option<f64> {
        self.get("m365mon_probe_success", &[("subscription", sub), ("probe", probe)])
    }

    /// `m365mon_probe_runs_total` of (sub, probe).
    pub fn runs(&self, sub: &str, probe: &str) -> f64 {
        self.value("m365mon_probe_runs_total", &[("subscription", sub), ("probe", probe)])
    }

    /// The `reason` of `m365mon_probe_last_failure_reason` of (sub, probe), if present.
    pub fn last_failure(&self, sub: &str, probe: &str) -> Option<String> {
        let all = self.all("m365mon_probe_last_failure_reason", &[("subscription", sub), ("probe", probe)]);
        assert!(all.len() <= 1, "several last failure reasons for {sub}/{probe}:\n{}", self.text);
        all.first().map(|s| {
            assert_eq!(s.value, 1.0);
            s.labels["reason"].clone()
        })
    }

    /// Whether any series carries `subscription="sub"`.
    pub fn mentions_subscription(&self, sub: &str) -> bool {
        self.samples.iter().any(|s| s.labels.get("subscription").map(String::as_str) == Some(sub))
    }

    /// The distinct `subscription` label values.
    pub fn subscriptions(&self) -> Vec<String> {
        let mut v: Vec<String> = self.samples.iter().filter_map(|s| s.labels.get("subscription").cloned()).collect();
        v.sort();
        v.dedup();
        v
    }
}

fn parse_labels(s: &str, line: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut chars = s.chars().peekable();
    loop {
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.is_empty() {
            break;
        }
        assert_eq!(chars.next(), Some('='), "bad labels in {line:?}");
        assert_eq!(chars.next(), Some('"'), "bad labels in {line:?}");
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => panic!("bad escape in {line:?}"),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => panic!("unterminated label value in {line:?}"),
            }
        }
        out.insert(name, value);
        match chars.next() {
            Some(',') => continue,
            None => break,
            Some(c) => panic!("unexpected {c:?} in labels of {line:?}"),
        }
    }
    out
}
