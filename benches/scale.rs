//! Scale benchmark: how m365mon copes with thousands of tenants.
//!
//! `cargo bench --bench scale` (optionally `-- 5000` for the tenant count).
//! It measures, on this machine:
//! 1. loading a config of N subscriptions with 4 probes each;
//! 2. one full round of probes (sign-in, organization, Exchange, service
//!    health) for every subscription against the in-process simulator on
//!    loopback, with the default concurrency limit: wall time and probes/s;
//! 3. building and encoding `/metrics` for all of them: time per scrape and size;
//! 4. resident memory (VmRSS) after each step.
//!
//! The numbers in the README's "Performance" section come from this program.
//! A plain `harness = false` bench keeps criterion out of the build; each
//! timing is the median of several repetitions where repeating is cheap.

use std::sync::Arc;
use std::time::{Duration, Instant};

use m365mon::config::parse_str;
use m365mon::metrics::{BuildInfo, encode};
use m365mon::runner::{Mode, Runner};
use m365mon::sim::{self, World};
use m365mon::state::Store;

fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|kb| kb.parse::<f64>().ok()))
        })
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn world(n: usize) -> World {
    let mut w = World::demo();
    let template = w.tenants[0].clone();
    w.tenants = (0..n)
        .map(|i| {
            let mut t = template.clone();
            t.id = format!("{:08x}-0000-4000-8000-{:012x}", i + 1, i + 1);
            t.display_name = format!("Tenant {i}");
            t.domains = vec![format!("t{i}.onmicrosoft.com")];
            t
        })
        .collect();
    w
}

fn config_text(n: usize, authority: &str, graph: &str) -> String {
    let mut s = format!(
        "global:\n  authority_host: {authority}\n  graph_endpoint: {graph}\n  probe_interval: 5m\n  probe_timeout: 1m\n\
         credentials:\n  app:\n    client_id: 0e5b0a52-8f1a-4d5e-9d3c-6b7f3c2a9e01\n    client_secret: demo-secret-not-for-production\n\
         subscription_defaults:\n  credential: app\n  admins: [noc@reseller.example]\n  probes:\n\
         \x20   - type: auth\n    - type: organization\n    - type: exchange\n      mailbox: monitor@contoso.com\n\
         \x20   - type: service_health\nsubscriptions:\n"
    );
    for i in 0..n {
        s.push_str(&format!("  - name: t{i}\n    tenant_id: t{i}.onmicrosoft.com\n    admins: [admin{i}@example.com, noc@reseller.example]\n"));
    }
    s
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let n: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(2000);
    println!("m365mon scale benchmark: {n} subscriptions x 4 probes");
    println!("start: RSS {:.1} MiB", rss_mib());

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let sim = sim::start(listener, world(n)).await;
    println!("simulator with {n} tenants: RSS {:.1} MiB (simulator included from here on)", rss_mib());

    let text = config_text(n, &sim.authority_host(), &sim.graph_endpoint());
    let times: Vec<Duration> = (0..5)
        .map(|_| {
            let t = Instant::now();
            parse_str(&text, "bench.yml", std::path::Path::new(".")).expect("valid");
            t.elapsed()
        })
        .collect();
    let config = parse_str(&text, "bench.yml", std::path::Path::new(".")).expect("valid");
    println!("config load ({} KiB): median {:?}", text.len() / 1024, median(times));

    let store = Arc::new(Store::new());
    store.sync_config(&config);
    let limit = config.global.max_concurrent_probes;
    let runner = Runner::new(m365mon::app::http_client(), Arc::new(config.clone()), store.clone());
    for round in ["first (token requests)", "second (cached tokens)"] {
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for sub in &config.subscriptions {
            for probe in &sub.probes {
                let (runner, s, p) = (runner.clone(), sub.name.clone(), probe.name.clone());
                tasks.spawn(async move { runner.run(&s, &p, Mode::Scheduled).await });
            }
        }
        let total = tasks.len();
        let mut ok = 0;
        while let Some(r) = tasks.join_next().await {
            if r.ok().flatten().is_some_and(|r| matches!(r.outcome, m365mon::probe::Outcome::Success)) {
                ok += 1;
            }
        }
        let el = t.elapsed();
        println!(
            "{round} round: {total} probes ({ok} ok) in {el:.2?} = {:.0} probes/s at max_concurrent_probes {limit}; RSS {:.1} MiB",
            total as f64 / el.as_secs_f64(),
            rss_mib()
        );
    }

    let build = BuildInfo::current();
    let times: Vec<Duration> = (0..9)
        .map(|_| {
            let t = Instant::now();
            std::hint::black_box(store.with(|s| encode(s, &build)));
            t.elapsed()
        })
        .collect();
    let body = store.with(|s| encode(s, &build));
    println!(
        "/metrics: {} series, {} KiB, encode under the store lock (as /metrics does) median {:?}; RSS {:.1} MiB",
        body.lines().filter(|l| !l.starts_with('#')).count(),
        body.len() / 1024,
        median(times),
        rss_mib()
    );
    sim.shutdown().await;
}
