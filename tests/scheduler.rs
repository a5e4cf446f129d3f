//! Scheduler and runner behaviour under paused time, with a scripted executor
//! instead of the network: spread, no overlap, Retry-After per workload,
//! the concurrency limit and timeouts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use m365mon::config::{
    Cloud, Config, Credential, CredentialKind, Global, ProbeConfig, ProbeKind, Secret, SecretSource, Subscription,
};
use m365mon::probe::{FailureReason, Outcome, ProbeLog, RunDetails, Workload};
use m365mon::runner::{BoxFuture, Execute, Mode, Origin, Runner};
use m365mon::scheduler::Scheduler;
use m365mon::state::Store;
use tokio::time::Instant;

/// What the fake executor does for one probe: sleep this long, then answer.
#[derive(Clone)]
struct Step {
    sleep: Duration,
    outcome: Outcome,
}

#[derive(Default)]
struct Script {
    /// Per (subscription, probe): steps used in order; the last one repeats.
    steps: HashMap<(String, String), Vec<Step>>,
    /// (subscription, probe, start, end) of each call.
    calls: Vec<(String, String, Instant, Option<Instant>)>,
    in_flight: usize,
    max_in_flight: usize,
    /// Per (subscription, probe): how many of the first calls panic.
    panics: HashMap<(String, String), usize>,
}

#[derive(Clone, Default)]
struct Fake(Arc<Mutex<Script>>);

impl Fake {
    fn script(&self, sub: &str, probe: &str, steps: Vec<Step>) {
        self.0.lock().unwrap().steps.insert((sub.into(), probe.into()), steps);
    }
    fn starts(&self, sub: &str, probe: &str) -> Vec<Instant> {
        self.0.lock().unwrap().calls.iter().filter(|c| c.0 == sub && c.1 == probe).map(|c| c.2).collect()
    }
    fn calls(&self) -> Vec<(String, String, Instant, Option<Instant>)> {
        self.0.lock().unwrap().calls.clone()
    }
}

impl Execute for Fake {
    fn execute<'a>(
        &'a self,
        _config: &'a Config,
        sub: &'a Subscription,
        probe: &'a ProbeConfig,
        _log: &'a mut ProbeLog,
    ) -> BoxFuture<'a, (Outcome, RunDetails)> {
        Box::pin(async move {
            let (step, idx) = {
                let mut s = self.0.lock().unwrap();
                let key = (sub.name.clone(), probe.name.clone());
                let n = s.calls.iter().filter(|c| c.0 == key.0 && c.1 == key.1).count();
                let steps = s.steps.get(&key).cloned().unwrap_or_default();
                let step = steps
                    .get(n)
                    .or(steps.last())
                    .cloned()
                    .unwrap_or(Step { sleep: Duration::from_millis(100), outcome: Outcome::Success });
                s.calls.push((key.0, key.1, Instant::now(), None));
                s.in_flight += 1;
                s.max_in_flight = s.max_in_flight.max(s.in_flight);
                (step, s.calls.len() - 1)
            };
            // Decrements even when the runner's timeout drops this future.
            struct Done<'f>(&'f Fake, usize);
            impl Drop for Done<'_> {
                fn drop(&mut self) {
                    let mut s = self.0.0.lock().unwrap();
                    s.in_flight -= 1;
                    s.calls[self.1].3 = Some(Instant::now());
                }
            }
            let _done = Done(self, idx);
            tokio::time::sleep(step.sleep).await;
            let panics = {
                let s = self.0.lock().unwrap();
                let key = (sub.name.clone(), probe.name.clone());
                let n = s.calls.iter().filter(|c| c.0 == key.0 && c.1 == key.1).count();
                n <= s.panics.get(&key).copied().unwrap_or(0)
            };
            if panics {
                panic!("scripted panic");
            }
            (step.outcome, RunDetails::default())
        })
    }
}

fn probe(name: &str, kind: ProbeKind, interval: u64, timeout: u64) -> ProbeConfig {
    ProbeConfig {
        name: name.into(),
        kind,
        interval: Duration::from_secs(interval),
        timeout: Duration::from_secs(timeout),
    }
}

fn config(subs: Vec<(&str, Vec<ProbeConfig>)>, max_concurrent: usize) -> Config {
    let mut credentials = BTreeMap::new();
    credentials.insert(
        "app".to_string(),
        Credential {
            name: "app".into(),
            client_id: "0e5b0a52-8f1a-4d5e-9d3c-6b7f3c2a9e01".into(),
            kind: CredentialKind::Secret(SecretSource::Inline(Secret::new("s"))),
        },
    );
    Config {
        global: Global {
            cloud: Cloud::Global,
            authority_host: "http://127.0.0.1:9/login".into(),
            graph_endpoint: "http://127.0.0.1:9/graph".into(),
            probe_interval: Duration::from_secs(60),
            probe_timeout: Duration::from_secs(15),
            max_concurrent_probes: max_concurrent,
        },
        credentials,
        subscriptions: subs
            .into_iter()
            .map(|(name, probes)| Subscription {
                name: name.into(),
                tenant_id: format!("{name}.onmicrosoft.com"),
                credential: "app".into(),
                admins: vec![format!("admin@{name}.example")],
                probes,
            })
            .collect(),
        discovery: vec![],
    }
}

fn start(cfg: Config, fake: &Fake) -> (Runner, Scheduler, Arc<Store>) {
    let store = Arc::new(Store::new());
    store.sync_config(&cfg);
    let runner = Runner::with_executor(Arc::new(fake.clone()), Arc::new(cfg.clone()), store.clone());
    let scheduler = Scheduler::new(runner.clone());
    scheduler.apply(&cfg);
    (runner, scheduler, store)
}

#[tokio::test(start_paused = true)]
async fn runs_every_interval_spread_over_it() {
    let fake = Fake::default();
    let subs: Vec<String> = (0..120).map(|i| format!("tenant{i}")).collect();
    let cfg = config(
        subs.iter().map(|s| (s.as_str(), vec![probe("organization", ProbeKind::Organization, 60, 15)])).collect(),
        64,
    );
    let t0 = Instant::now();
    let (_r, _s, _store) = start(cfg, &fake);
    tokio::time::sleep(Duration::from_secs(60 * 3 + 1)).await;

    let mut first_by_slot = [0u32; 6];
    for s in &subs {
        let starts = fake.starts(s, "organization");
        assert!(starts.len() >= 3, "{s} ran {} times in 3 minutes", starts.len());
        let first = starts[0] - t0;
        assert!(first < Duration::from_secs(60), "{s} first ran after {first:?}");
        first_by_slot[(first.as_secs() / 10) as usize] += 1;
        for w in starts.windows(2) {
            assert_eq!(w[1] - w[0], Duration::from_secs(60), "{s} is not on a 60 s rhythm");
        }
    }
    // 120 probes over six 10 s slots: none of them empty or holding most of the fleet.
    for n in first_by_slot {
        assert!((8..=40).contains(&n), "uneven spread {first_by_slot:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_slow_probe_never_overlaps_itself() {
    let fake = Fake::default();
    fake.script("contoso", "exchange", vec![Step { sleep: Duration::from_secs(90), outcome: Outcome::Success }]);
    let cfg = config(
        vec![("contoso", vec![probe("exchange", ProbeKind::Exchange { mailbox: "m@contoso.com".into() }, 60, 100)])],
        64,
    );
    let (_r, _s, store) = start(cfg, &fake);
    tokio::time::sleep(Duration::from_secs(60 * 8)).await;
    let calls = fake.calls();
    assert!(calls.len() >= 3);
    for w in calls.windows(2) {
        let prev_end = w[0].3.expect("previous run finished");
        assert!(w[1].2 >= prev_end, "run started before the previous one ended");
        // A missed tick is skipped, the rhythm kept: runs are 120 s apart.
        assert_eq!(w[1].2 - w[0].2, Duration::from_secs(120));
    }
    let snap = store.snapshot();
    assert_eq!(
        snap.subscriptions["contoso"].probes["exchange"].runs as usize,
        calls.iter().filter(|c| c.3.is_some()).count()
    );
}

#[tokio::test(start_paused = true)]
async fn retry_after_delays_only_that_workload_of_that_subscription() {
    let fake = Fake::default();
    let throttled = Outcome::Throttled { workload: Workload::Exchange, retry_after: Duration::from_secs(150) };
    fake.script(
        "contoso",
        "exchange",
        vec![
            Step { sleep: Duration::from_millis(200), outcome: throttled },
            Step { sleep: Duration::from_millis(200), outcome: Outcome::Success },
        ],
    );
    let mailbox = |t: &str| ProbeKind::Exchange { mailbox: format!("m@{t}.com") };
    let cfg = config(
        vec![
            (
                "contoso",
                vec![
                    probe("exchange", mailbox("contoso"), 30, 10),
                    probe("organization", ProbeKind::Organization, 30, 10),
                ],
            ),
            ("fabrikam", vec![probe("exchange", mailbox("fabrikam"), 30, 10)]),
        ],
        64,
    );
    let (runner, _s, store) = start(cfg, &fake);
    tokio::time::sleep(Duration::from_secs(400)).await;

    let ex = fake.starts("contoso", "exchange");
    let throttled_end = ex[0] + Duration::from_millis(200);
    assert!(
        ex[1] >= throttled_end + Duration::from_secs(150),
        "exchange was retried {:?} after throttling",
        ex[1] - throttled_end
    );
    // Other workloads and other subscriptions keep their 30 s rhythm meanwhile.
    for (sub, p) in [("contoso", "organization"), ("fabrikam", "exchange")] {
        let s = fake.starts(sub, p);
        let during = s.iter().filter(|t| **t > ex[0] && **t < ex[1]).count();
        assert!(during >= 4, "{sub}/{p} ran {during} times while contoso's Exchange was throttled");
    }
    // Throttling is not an outage: success unchanged (never set before), counted apart.
    let snap = store.snapshot();
    let p = &snap.subscriptions["contoso"].probes["exchange"];
    assert_eq!(p.throttled, 1);
    assert_eq!(p.failures.values().sum::<u64>(), 0);
    assert_eq!(p.last_success, Some(true));
    let _ = runner;
}

#[tokio::test(start_paused = true)]
async fn on_demand_runs_answer_throttled_without_a_request() {
    let fake = Fake::default();
    let throttled = Outcome::Throttled { workload: Workload::SharePoint, retry_after: Duration::from_secs(120) };
    fake.script("contoso", "sharepoint", vec![Step { sleep: Duration::ZERO, outcome: throttled }]);
    let cfg = config(
        vec![(
            "contoso",
            vec![
                probe(
                    "sharepoint",
                    ProbeKind::Sharepoint { site: "https://contoso.sharepoint.com/sites/x".into() },
                    60,
                    10,
                ),
                probe("onedrive", ProbeKind::Onedrive { user: "m@contoso.com".into() }, 60, 10),
            ],
        )],
        64,
    );
    let store = Arc::new(Store::new());
    store.sync_config(&cfg);
    let runner = Runner::with_executor(Arc::new(fake.clone()), Arc::new(cfg), store);
    let first = runner.run("contoso", "sharepoint", Mode::OnDemand { deadline: None }).await.unwrap();
    assert!(matches!(first.outcome, Outcome::Throttled { .. }));
    // OneDrive runs on SharePoint: it is throttled too, and no request is made.
    let second = runner.run("contoso", "onedrive", Mode::OnDemand { deadline: None }).await.unwrap();
    assert!(
        matches!(second.outcome, Outcome::Throttled { workload: Workload::SharePoint, .. }),
        "{:?}",
        second.outcome
    );
    assert_eq!(fake.calls().len(), 1);
    tokio::time::sleep(Duration::from_secs(121)).await;
    runner.run("contoso", "onedrive", Mode::OnDemand { deadline: None }).await.unwrap();
    assert_eq!(fake.calls().len(), 2);
    assert!(runner.run("nope", "onedrive", Mode::OnDemand { deadline: None }).await.is_none());
    assert!(runner.run("contoso", "nope", Mode::OnDemand { deadline: None }).await.is_none());
}

#[tokio::test(start_paused = true)]
async fn the_global_concurrency_limit_holds() {
    let fake = Fake::default();
    let subs: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    for s in &subs {
        fake.script(s, "organization", vec![Step { sleep: Duration::from_secs(5), outcome: Outcome::Success }]);
    }
    let cfg = config(
        subs.iter().map(|s| (s.as_str(), vec![probe("organization", ProbeKind::Organization, 60, 30)])).collect(),
        3,
    );
    let store = Arc::new(Store::new());
    store.sync_config(&cfg);
    let runner = Runner::with_executor(Arc::new(fake.clone()), Arc::new(cfg), store);
    let mut set = tokio::task::JoinSet::new();
    for s in &subs {
        let (r, s) = (runner.clone(), s.clone());
        set.spawn(async move { r.run(&s, "organization", Mode::Scheduled).await.unwrap().outcome });
    }
    while let Some(o) = set.join_next().await {
        assert_eq!(o.unwrap(), Outcome::Success);
    }
    assert_eq!(fake.0.lock().unwrap().max_in_flight, 3);
    assert_eq!(fake.calls().len(), 20);
}

#[tokio::test(start_paused = true)]
async fn a_run_past_its_timeout_fails_with_timeout() {
    let fake = Fake::default();
    fake.script("contoso", "teams", vec![Step { sleep: Duration::from_secs(30), outcome: Outcome::Success }]);
    let cfg = config(vec![("contoso", vec![probe("teams", ProbeKind::Teams { team_id: "x".into() }, 60, 10)])], 4);
    let store = Arc::new(Store::new());
    store.sync_config(&cfg);
    let runner = Runner::with_executor(Arc::new(fake.clone()), Arc::new(cfg), store.clone());
    let r = runner.run("contoso", "teams", Mode::Scheduled).await.unwrap();
    assert_eq!(r.outcome, Outcome::Failure(FailureReason::Timeout));
    assert_eq!(r.duration, Duration::from_secs(10));
    let snap = store.snapshot();
    let p = &snap.subscriptions["contoso"].probes["teams"];
    assert_eq!((p.runs, p.failures.get(&FailureReason::Timeout).copied(), p.last_success), (1, Some(1), Some(false)));
    // An on-demand run is bounded by the scrape deadline too, and not recorded.
    let r = runner.run("contoso", "teams", Mode::OnDemand { deadline: Some(Duration::from_secs(3)) }).await.unwrap();
    assert_eq!((r.outcome, r.duration), (Outcome::Failure(FailureReason::Timeout), Duration::from_secs(3)));
    assert_eq!(store.snapshot().subscriptions["contoso"].probes["teams"].runs, 1);
}

#[tokio::test(start_paused = true)]
async fn reload_keeps_unchanged_tasks_and_drops_removed_ones() {
    let fake = Fake::default();
    let cfg = config(
        vec![
            ("contoso", vec![probe("organization", ProbeKind::Organization, 60, 10)]),
            ("fabrikam", vec![probe("organization", ProbeKind::Organization, 60, 10)]),
        ],
        4,
    );
    let (runner, scheduler, store) = start(cfg.clone(), &fake);
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(scheduler.task_count(), 2);
    let before = store.snapshot().subscriptions["contoso"].probes["organization"].runs;
    assert!(before >= 1);

    let mut next = cfg.clone();
    next.subscriptions.retain(|s| s.name == "contoso");
    next.subscriptions.push(
        config(vec![("northwind", vec![probe("organization", ProbeKind::Organization, 60, 10)])], 4)
            .subscriptions
            .remove(0),
    );
    store.sync_config(&next);
    runner.set_config(Arc::new(next.clone()));
    scheduler.apply(&next);
    assert_eq!(scheduler.task_count(), 2);
    let snap = store.snapshot();
    assert!(!snap.subscriptions.contains_key("fabrikam"));
    assert_eq!(snap.subscriptions["contoso"].probes["organization"].runs, before, "contoso lost its counters");
    let contoso_before = fake.starts("contoso", "organization");
    tokio::time::sleep(Duration::from_secs(61)).await;
    let contoso_after = fake.starts("contoso", "organization");
    // Same rhythm as before the reload.
    assert_eq!(contoso_after[contoso_before.len()] - contoso_before[contoso_before.len() - 1], Duration::from_secs(60));
    assert!(!fake.starts("northwind", "organization").is_empty());
    let fab = fake.starts("fabrikam", "organization").len();
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(fake.starts("fabrikam", "organization").len(), fab, "removed subscription still probed");
}

/// `/probe` answers by the scrape deadline even while the probe itself or
/// every concurrency slot is busy with scheduled runs: with the last
/// scheduled result when there is one, else with `timeout`.
#[tokio::test(start_paused = true)]
async fn on_demand_waits_are_bounded_by_the_deadline() {
    let fake = Fake::default();
    let slow = Step { sleep: Duration::from_secs(120), outcome: Outcome::Success };
    fake.script("contoso", "teams", vec![slow.clone()]);
    fake.script("contoso", "organization", vec![slow]);
    let cfg = config(
        vec![(
            "contoso",
            vec![
                probe("teams", ProbeKind::Teams { team_id: "x".into() }, 60, 300),
                probe("organization", ProbeKind::Organization, 60, 300),
            ],
        )],
        1,
    );
    let store = Arc::new(Store::new());
    store.sync_config(&cfg);
    let runner = Runner::with_executor(Arc::new(fake.clone()), Arc::new(cfg), store);
    let on_demand = Mode::OnDemand { deadline: Some(Duration::from_secs(5)) };
    let scheduled = |p: &'static str| {
        let r = runner.clone();
        tokio::spawn(async move { r.run("contoso", p, Mode::Scheduled).await.unwrap() })
    };

    // The probe is busy with a scheduled run and has no result yet: timeout at the deadline.
    let first = scheduled("teams");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = Instant::now();
    let r = runner.run("contoso", "teams", on_demand).await.unwrap();
    assert_eq!(t.elapsed(), Duration::from_secs(5));
    assert_eq!((r.outcome, r.origin), (Outcome::Failure(FailureReason::Timeout), Origin::Ran), "{:?}", r.log);
    assert_eq!(first.await.unwrap().outcome, Outcome::Success);

    // Busy again: the last scheduled result, said so in the log.
    let second = scheduled("teams");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = Instant::now();
    let r = runner.run("contoso", "teams", on_demand).await.unwrap();
    assert_eq!(t.elapsed(), Duration::from_secs(5));
    assert_eq!((r.outcome, r.origin), (Outcome::Success, Origin::LastScheduled));
    assert_eq!(r.duration, Duration::from_secs(120));
    assert!(r.log.iter().any(|l| l.contains("last scheduled result")), "{:?}", r.log);
    second.await.unwrap();

    // The only concurrency slot is taken by another probe's scheduled run.
    let other = scheduled("organization");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let t = Instant::now();
    let r = runner.run("contoso", "teams", on_demand).await.unwrap();
    assert_eq!(t.elapsed(), Duration::from_secs(5));
    assert_eq!((r.outcome, r.origin), (Outcome::Success, Origin::LastScheduled));
    assert!(r.log.iter().any(|l| l.contains("max_concurrent_probes")), "{:?}", r.log);
    other.await.unwrap();
    assert_eq!(fake.starts("contoso", "teams").len(), 2, "on-demand runs never started");
}

#[tokio::test(start_paused = true)]
async fn a_panicking_run_fails_that_run_and_the_probe_keeps_its_schedule() {
    let fake = Fake::default();
    fake.0.lock().unwrap().panics.insert(("contoso".into(), "organization".into()), 2);
    let cfg = config(vec![("contoso", vec![probe("organization", ProbeKind::Organization, 60, 15)])], 64);
    let (_r, scheduler, store) = start(cfg, &fake);
    tokio::time::sleep(Duration::from_secs(60 * 4 + 1)).await;

    // Two panics, then successes: still every 60 s.
    let starts = fake.starts("contoso", "organization");
    assert!(starts.len() >= 4, "ran {} times in 4 minutes", starts.len());
    for w in starts.windows(2) {
        assert_eq!(w[1] - w[0], Duration::from_secs(60));
    }
    assert_eq!(scheduler.task_count(), 1);
    let snap = store.snapshot();
    let p = &snap.subscriptions["contoso"].probes["organization"];
    assert_eq!(p.failures.get(&FailureReason::InvalidResponse).copied(), Some(2), "{:?}", p.failures);
    assert_eq!(p.runs as usize, starts.len());
    assert_eq!(p.last_success, Some(true));
}

/// Configs built in code skip the config file's limits: a huge interval and
/// concurrency limit must neither panic the scheduler nor the runner.
#[tokio::test(start_paused = true)]
async fn huge_interval_and_concurrency_limit_do_not_panic() {
    let fake = Fake::default();
    let mut p = probe("organization", ProbeKind::Organization, 60, 15);
    p.interval = Duration::MAX;
    let cfg = config(
        vec![("contoso", vec![p]), ("fabrikam", vec![probe("organization", ProbeKind::Organization, 60, 15)])],
        usize::MAX,
    );
    let (runner, scheduler, _store) = start(cfg, &fake);
    tokio::time::sleep(Duration::from_secs(121)).await;
    assert_eq!(scheduler.task_count(), 2);
    // The other probe kept running, so nothing panicked in the runner.
    assert!(fake.starts("fabrikam", "organization").len() >= 2);
    let fabrikam = || ("fabrikam", vec![probe("organization", ProbeKind::Organization, 60, 15)]);
    runner.set_config(Arc::new(config(vec![fabrikam()], usize::MAX - 1)));
    let r = runner.run("fabrikam", "organization", Mode::OnDemand { deadline: None }).await;
    assert_eq!(r.map(|r| r.outcome), Some(Outcome::Success));
}
