//! The whole stack on loopback: the simulator (in-process), m365mon (the
//! built binary), Prometheus with the shipped rules and Alertmanager with the
//! shipped routing, both with waiting times scaled by [`timing`], and the
//! webhook and SMTP sinks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use m365mon::sim::{self, SimHandle, World};

use super::sinks::{SmtpSink, WebhookSink};
use super::support::{Proc, TempDir, start_with_retry, wait_for};
use super::timing::{self, ALERTMANAGER_KEYS, RULE_KEYS};
use super::tools::require;

/// Seconds between two runs of each probe (production default: 60).
pub const PROBE_INTERVAL: &str = "2s";
/// Prometheus' scrape and evaluation interval (production example: 30s).
pub const SCRAPE_INTERVAL: &str = "1s";

/// A subscription of the test world: name, tenant domain, credential, admins.
pub struct Sub {
    /// The `subscription` label.
    pub name: &'static str,
    /// The tenant's domain in `tests/fixtures/e2e/world.yml`.
    pub tenant: &'static str,
    /// The credential name in the generated m365mon.yml.
    pub credential: &'static str,
    /// Its admins (m365mon lowercases them; these are lowercase already).
    pub admins: &'static [&'static str],
}

/// The admin who owns every subscription.
pub const OPS: &str = "ops@msp.example";

/// The subscriptions: bob owns two, `OPS` owns all.
pub const SUBS: &[Sub] = &[
    Sub {
        name: "contoso",
        tenant: "contoso.onmicrosoft.com",
        credential: "msp-secret",
        admins: &["alice@contoso.example", OPS],
    },
    Sub {
        name: "fabrikam",
        tenant: "fabrikam.onmicrosoft.com",
        credential: "msp-secret",
        admins: &["bob@fabrikam.example", OPS],
    },
    Sub {
        name: "northwind",
        tenant: "northwind.onmicrosoft.com",
        credential: "msp-secret",
        admins: &["bob@fabrikam.example", OPS],
    },
    Sub {
        name: "tailspin",
        tenant: "tailspin.onmicrosoft.com",
        credential: "msp-secret",
        admins: &["carol@tailspin.example", OPS],
    },
    Sub {
        name: "wingtip",
        tenant: "wingtip.onmicrosoft.com",
        credential: "msp-cert",
        admins: &["dave@wingtip.example", OPS],
    },
];

/// The probes of every subscription.
pub const PROBES: &[&str] = &["auth", "organization", "exchange", "service_health"];

/// Litware's tenant ID: the GDAP customer of the partner tenant
/// ([`PARTNER`]); given as a GUID so that its configured subscriptions win over
/// discovery (tenants are compared by GUID) and discovery adds none.
pub const LITWARE: &str = "e2e00000-0000-4000-8000-0000000000c6";
/// The partner tenant that partner discovery (`msp`) reads.
pub const PARTNER: &str = "msp.onmicrosoft.com";
/// Litware's admins.
pub const LITWARE_ADMINS: &[&str] = &["erin@litware.example", OPS];
/// The subscription with the delegated credential (signed in by
/// [`Stack::start`] before m365mon starts).
pub const DELEGATED_SUB: &str = "litware-user";

/// The (subscription, probe) pairs beyond [`SUBS`] x [`PROBES`]: Litware's
/// message center, mail round trip and delegated sign-in, in a tenant that
/// no outage phase touches (so they add no notification).
pub const EXTRA_PROBES: &[(&str, &str)] = &[
    ("litware", "auth"),
    ("litware", "message_center"),
    ("litware", "mail_roundtrip"),
    (DELEGATED_SUB, "auth"),
    (DELEGATED_SUB, "organization"),
];

/// The subscription called `name`.
pub fn sub(name: &str) -> &'static Sub {
    SUBS.iter().find(|s| s.name == name).unwrap_or_else(|| panic!("no subscription {name}"))
}

/// Everything that runs. Dropping it kills the processes, then removes the
/// temporary directory (fields drop in order).
pub struct Stack {
    /// The simulator.
    pub sim: SimHandle,
    /// Webhook notifications.
    pub webhooks: WebhookSink,
    /// E-mail notifications.
    pub mails: SmtpSink,
    /// `http://127.0.0.1:PORT` of m365mon.
    pub exporter_url: String,
    /// `http://127.0.0.1:PORT` of Prometheus.
    pub prometheus_url: String,
    /// `http://127.0.0.1:PORT` of Alertmanager.
    pub alertmanager_url: String,
    /// An HTTP client for the APIs.
    pub http: reqwest::Client,
    prometheus: Proc,
    exporter: Proc,
    alertmanager: Proc,
    /// Kept last: removed after the processes are gone.
    _dir: TempDir,
}

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

impl Stack {
    /// Starts everything and waits until Prometheus has scraped every probe of
    /// every subscription once and evaluated the rules.
    pub async fn start() -> Stack {
        let prometheus_bin = require("prometheus");
        let alertmanager_bin = require("prometheus-alertmanager");
        let dir = TempDir::new("e2e");
        let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("http client");

        let world = World::from_yaml_file(&root().join("tests/fixtures/e2e/world.yml")).expect("e2e world");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind simulator");
        let sim = sim::start(listener, world).await;
        let webhooks = WebhookSink::start().await;
        let mails = SmtpSink::start().await;

        // Alertmanager with the shipped routing.
        let am_dir = dir.path().join("alertmanager");
        write_alertmanager_config(&am_dir, &webhooks.base, &mails.addr.to_string());
        let (alertmanager, am_port) = start_with_retry(&http, "alertmanager", "/-/ready", |port| {
            Proc::spawn(
                "alertmanager",
                &alertmanager_bin,
                &[
                    format!("--config.file={}", am_dir.join("alertmanager.yml").display()),
                    format!("--storage.path={}", am_dir.join("data").display()),
                    format!("--web.listen-address=127.0.0.1:{port}"),
                    "--cluster.listen-address=".into(),
                    "--log.level=info".into(),
                ],
                &am_dir,
                dir.path().join("alertmanager.log"),
            )
        })
        .await;

        // m365mon, the binary users run, on the simulator.
        let config = dir.path().join("m365mon.yml");
        let config_text = m365mon_config(&sim);
        std::fs::write(&config, &config_text).expect("write m365mon.yml");
        let storage = dir.path().join("data");
        sign_in_delegated(&config_text, dir.path(), &storage).await;
        let exporter_bin = PathBuf::from(env!("CARGO_BIN_EXE_m365mon"));
        let (exporter, exporter_port) = start_with_retry(&http, "m365mon", "/metrics", |port| {
            Proc::spawn(
                "m365mon",
                &exporter_bin,
                &[
                    format!("--config.file={}", config.display()),
                    format!("--web.listen-address=127.0.0.1:{port}"),
                    format!("--storage.path={}", storage.display()),
                    "--log.level=warn".into(),
                ],
                dir.path(),
                dir.path().join("m365mon.log"),
            )
        })
        .await;

        // Prometheus with the shipped rules.
        let prom_dir = dir.path().join("prometheus");
        write_prometheus_config(&prom_dir, exporter_port, am_port);
        let (prometheus, prom_port) = start_with_retry(&http, "prometheus", "/-/ready", |port| {
            Proc::spawn(
                "prometheus",
                &prometheus_bin,
                &[
                    format!("--config.file={}", prom_dir.join("prometheus.yml").display()),
                    format!("--storage.tsdb.path={}", prom_dir.join("data").display()),
                    format!("--web.listen-address=127.0.0.1:{port}"),
                    // Scaled like the rest: a firing alert is re-sent every 2s, not every minute.
                    format!("--rules.alert.resend-delay={}", timing::format_ms(60_000 / timing::TIME_SCALE)),
                    "--log.level=warn".into(),
                ],
                &prom_dir,
                dir.path().join("prometheus.log"),
            )
        })
        .await;

        let stack = Stack {
            sim,
            webhooks,
            mails,
            exporter_url: format!("http://127.0.0.1:{exporter_port}"),
            prometheus_url: format!("http://127.0.0.1:{prom_port}"),
            alertmanager_url: format!("http://127.0.0.1:{am_port}"),
            http,
            prometheus,
            exporter,
            alertmanager,
            _dir: dir,
        };
        let want = SUBS.len() * PROBES.len() + EXTRA_PROBES.len();
        wait_for("every probe to succeed, as seen through the recording rules", Duration::from_secs(60), || async {
            let ok = stack.query("subscription_probe:m365mon_probe_success:min == 1").await?;
            if ok.len() == want { Ok(()) } else { Err(format!("{} of {want} probes succeeding", ok.len())) }
        })
        .await;
        stack
    }

    /// Runs an instant PromQL query; `Err` on any API error.
    pub async fn query(&self, expr: &str) -> Result<Vec<serde_json::Value>, String> {
        let r = self
            .http
            .post(format!("{}/api/v1/query", self.prometheus_url))
            .form(&[("query", expr)])
            .send()
            .await
            .map_err(|e| format!("query failed: {e}"))?;
        let v: serde_json::Value = r.json().await.map_err(|e| format!("bad query answer: {e}"))?;
        if v["status"] != "success" {
            return Err(format!("Prometheus rejected {expr}: {} {}", v["errorType"], v["error"]));
        }
        Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
    }

    /// Every alert Alertmanager holds, inhibited and silenced included.
    pub async fn alertmanager_alerts(&self) -> Result<Vec<serde_json::Value>, String> {
        let r = self
            .http
            .get(format!("{}/api/v2/alerts", self.alertmanager_url))
            .query(&[("active", "true"), ("inhibited", "true"), ("silenced", "true"), ("unprocessed", "true")])
            .send()
            .await
            .map_err(|e| format!("alertmanager API: {e}"))?;
        r.json::<Vec<serde_json::Value>>().await.map_err(|e| format!("alertmanager API answer: {e}"))
    }

    /// m365mon's `/metrics` text.
    pub async fn metrics(&self) -> String {
        let r = self.http.get(format!("{}/metrics", self.exporter_url)).send().await.expect("GET /metrics");
        assert!(r.status().is_success(), "/metrics answered {}", r.status());
        r.text().await.expect("/metrics body")
    }

    /// Panics if a process died.
    pub fn assert_running(&mut self) {
        for p in [&mut self.prometheus, &mut self.exporter, &mut self.alertmanager] {
            if let Some(status) = p.exited() {
                panic!("{} exited ({status}); log:\n{}", p.name, p.log_tail(40));
            }
        }
    }
}

/// m365mon.yml for the simulator: short probe intervals, the admins of [`SUBS`].
fn m365mon_config(sim: &SimHandle) -> String {
    let certs = root().join("tests/fixtures/certs");
    let mut y = format!(
        "global:\n  authority_host: {}\n  graph_endpoint: {}\n  probe_interval: {PROBE_INTERVAL}\n  probe_timeout: 2s\n\
         credentials:\n  msp-secret:\n    client_id: e2e00000-0000-4000-8000-000000000001\n    client_secret: e2e-secret-not-for-production\n\
         \x20 msp-cert:\n    client_id: e2e00000-0000-4000-8000-000000000002\n    certificate_file: {}\n    private_key_file: {}\n\
         \x20 msp-delegated:\n    client_id: e2e00000-0000-4000-8000-000000000003\n    delegated: true\n\
         discovery:\n  - name: msp\n    credential: msp-secret\n    partner_tenant_id: {PARTNER}\n    refresh_interval: 5s\n\
         \x20   subscription_template:\n      admins: [{OPS}]\n      probes: [{{type: auth}}]\n\
         subscriptions:\n",
        sim.authority_host(),
        sim.graph_endpoint(),
        certs.join("app.crt.pem").display(),
        certs.join("app.key.pem").display(),
    );
    for s in SUBS {
        y.push_str(&format!(
            "  - name: {}\n    tenant_id: {}\n    credential: {}\n    admins: [{}]\n    probes:\n\
             \x20     - type: auth\n      - type: organization\n      - type: exchange\n        mailbox: monitor@{}\n\
             \x20     - type: service_health\n",
            s.name,
            s.tenant,
            s.credential,
            s.admins.join(", "),
            s.tenant
        ));
    }
    // Litware: message center and a mail round trip (interval >= timeout, and the
    // timeout longer than the 5s between two looks into the inbox); and the
    // same tenant signed in as an account.
    let admins = LITWARE_ADMINS.join(", ");
    y.push_str(&format!(
        "  - name: litware\n    tenant_id: {LITWARE}\n    credential: msp-secret\n    admins: [{admins}]\n    probes:\n\
         \x20     - type: auth\n      - type: message_center\n\
         \x20     - type: mail_roundtrip\n        from: monitor@litware.onmicrosoft.com\n        to: monitor@litware.onmicrosoft.com\n\
         \x20       interval: 10s\n        timeout: 8s\n\
         \x20 - name: {DELEGATED_SUB}\n    tenant_id: {LITWARE}\n    credential: msp-delegated\n    admins: [{admins}]\n\
         \x20   probes: [{{type: auth}}, {{type: organization}}]\n"
    ));
    y
}

/// `m365mon login --subscription` [`DELEGATED_SUB`], in-process, into the
/// token store at `storage` (the simulator approves the device code at the
/// second poll; the waits between polls are skipped).
async fn sign_in_delegated(config_text: &str, base: &Path, storage: &Path) {
    let config = m365mon::config::parse_str(config_text, "m365mon.yml", base)
        .unwrap_or_else(|e| panic!("the e2e m365mon.yml does not load:\n{e}"));
    let (subscription, credential) =
        m365mon::login::delegated_subscription(&config, Path::new("m365mon.yml"), DELEGATED_SUB).expect("delegated");
    let store = m365mon::auth::TokenStore::new(storage);
    let http = reqwest::Client::new();
    let mut sleep = |_: Duration| Box::pin(async {}) as std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;
    let mut prompt = |_: &m365mon::auth::DeviceCode| {};
    let mut progress = |_: &str| {};
    m365mon::login::login(&http, &config, subscription, credential, &store, &mut sleep, &mut prompt, &mut progress)
        .await
        .unwrap_or_else(|e| panic!("m365mon login --subscription {DELEGATED_SUB}: {e}"));
}

/// prometheus.yml: job `m365mon` (the selector of alerting/rules/config.yml),
/// the shipped rule files with scaled `for:`, and the Alertmanager.
fn write_prometheus_config(dir: &Path, exporter_port: u16, am_port: u16) {
    let rules = dir.join("rules");
    std::fs::create_dir_all(&rules).expect("create rules dir");
    let mut scaled = 0;
    let shipped = root().join("alerting/rules");
    let mut files: Vec<_> = std::fs::read_dir(&shipped).expect("alerting/rules").flatten().map(|e| e.path()).collect();
    files.sort();
    for path in files.iter().filter(|p| p.extension().is_some_and(|e| e == "yml")) {
        let text = std::fs::read_to_string(path).expect("read rule file");
        let (out, changes) = timing::scale_durations(&text, RULE_KEYS);
        scaled += changes.len();
        std::fs::write(rules.join(path.file_name().expect("file name")), out).expect("write rule file");
    }
    assert!(scaled > 0, "no for:/keep_firing_for: found in {}: did the rule layout change?", shipped.display());
    let config = format!(
        "global:\n  scrape_interval: {SCRAPE_INTERVAL}\n  scrape_timeout: {SCRAPE_INTERVAL}\n  evaluation_interval: {SCRAPE_INTERVAL}\n\
         rule_files: ['rules/*.yml']\n\
         alerting:\n  alertmanagers:\n    - static_configs: [{{targets: ['127.0.0.1:{am_port}']}}]\n\
         scrape_configs:\n  - job_name: m365mon\n    static_configs: [{{targets: ['127.0.0.1:{exporter_port}']}}]\n"
    );
    std::fs::write(dir.join("prometheus.yml"), config).expect("write prometheus.yml");
}

/// alertmanager.yml as shipped, with scaled waiting times, the webhook
/// placeholders pointed at the sink and the SMTP smarthost at the SMTP sink
/// (without TLS, which the sink does not speak); the templates next to it.
fn write_alertmanager_config(dir: &Path, webhook_base: &str, smtp: &str) {
    let tdir = dir.join("templates");
    std::fs::create_dir_all(&tdir).expect("create templates dir");
    for e in std::fs::read_dir(root().join("alerting/templates")).expect("alerting/templates").flatten() {
        std::fs::copy(e.path(), tdir.join(e.file_name())).expect("copy template");
    }
    let shipped = std::fs::read_to_string(root().join("alerting/alertmanager.yml")).expect("alerting/alertmanager.yml");
    const PLACEHOLDER: &str = "http://127.0.0.1:9098/";
    assert_eq!(
        shipped.matches(PLACEHOLDER).count(),
        3,
        "expected 3 webhook placeholders {PLACEHOLDER} (noc, page, ticket)"
    );
    let text = shipped.replace(PLACEHOLDER, &format!("{webhook_base}/"));
    let mut smtp_lines = 0;
    let text: String = text
        .lines()
        .map(|l| {
            let key = l.trim_start().split(':').next().unwrap_or("");
            match key {
                "smtp_smarthost" => {
                    smtp_lines += 1;
                    format!("  smtp_smarthost: '{smtp}'")
                }
                "smtp_require_tls" => {
                    smtp_lines += 1;
                    "  smtp_require_tls: false".to_string()
                }
                _ => l.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    assert_eq!(smtp_lines, 2, "expected smtp_smarthost and smtp_require_tls in the global section");
    let (text, changes) = timing::scale_durations(&text, ALERTMANAGER_KEYS);
    assert!(!changes.is_empty(), "no group_wait/group_interval/repeat_interval in alertmanager.yml");
    std::fs::write(dir.join("alertmanager.yml"), text + "\n").expect("write alertmanager.yml");
}
