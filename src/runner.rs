//! Runs one probe of one subscription: no overlap with itself, the global
//! concurrency limit, the per-workload throttling gate and the timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::auth::{StatusObserver, TokenObserver, TokenProvider, TokenStore};
use crate::config::{Config, ProbeConfig, ProbeKind, Subscription};
use crate::graph::GraphClient;
use crate::probe::{
    self, FailureReason, HealthSnapshot, MessageCenterSnapshot, Outcome, ProbeContext, ProbeLog, RunDetails, Workload,
};
use crate::state::Store;

/// Whether a run is the scheduler's (recorded in the store) or a `/probe` request's (not recorded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Scheduled: waits out throttling, results go to the store.
    Scheduled,
    /// On demand: answers "throttled" at once while the workload is throttled; results are only returned.
    OnDemand {
        /// An extra bound from the scrape timeout.
        deadline: Option<Duration>,
    },
}

/// What one run produced.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The outcome.
    pub outcome: Outcome,
    /// How long the run took (sign-in included, queueing excluded).
    pub duration: Duration,
    /// The run's debug log.
    pub log: Vec<String>,
    /// Service health, for a successful `service_health` run.
    pub health: Option<HealthSnapshot>,
    /// Message center counts, for a successful `message_center` run.
    pub message_center: Option<MessageCenterSnapshot>,
    /// Where the outcome comes from.
    pub origin: Origin,
}

/// Where a [`RunRecord`]'s outcome comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// This call ran the probe (or answered throttled or timed out waiting).
    Ran,
    /// An on-demand call that could not start the probe returned the last
    /// scheduled result from the store instead.
    LastScheduled,
    /// Nothing to report: the probe did not run and has no scheduled result
    /// yet. Only the log is meaningful.
    NoResult,
}

tokio::task_local! {
    /// The running probe's place under `max_concurrent_probes`.
    static SLOT: Slot;
}

/// A run's concurrency permit, which [`idle`] gives up and takes back.
struct Slot {
    semaphore: Arc<Semaphore>,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
}

/// Awaits `fut` without holding the run's place under
/// `max_concurrent_probes`, then queues for a place again. A probe that
/// waits minutes between requests (the mail round trip) uses it so that it
/// never keeps other probes waiting. Outside a run it just awaits `fut`.
pub async fn idle<F: std::future::Future>(fut: F) -> F::Output {
    let semaphore = SLOT
        .try_with(|s| {
            s.permit.lock().unwrap_or_else(|e| e.into_inner()).take();
            s.semaphore.clone()
        })
        .ok();
    let out = fut.await;
    if let Some(semaphore) = semaphore {
        let permit = semaphore.acquire_owned().await.ok();
        let _ = SLOT.try_with(|s| *s.permit.lock().unwrap_or_else(|e| e.into_inner()) = permit);
    }
    out
}

/// Executes one probe attempt. The real one talks to Entra ID and Graph;
/// tests substitute one that sleeps and answers on a script, so the
/// scheduler and runner can be tested under paused time.
pub trait Execute: Send + Sync + 'static {
    /// One attempt of `probe` for `sub`; the runner applies the timeout.
    fn execute<'a>(
        &'a self,
        config: &'a Config,
        sub: &'a Subscription,
        probe: &'a ProbeConfig,
        log: &'a mut ProbeLog,
    ) -> BoxFuture<'a, (Outcome, RunDetails)>;

    /// Called when a reload replaced `old` by `new`.
    fn reconfigure(&self, old: &Config, new: &Config) {
        let _ = (old, new);
    }
}

/// A boxed future borrowing its arguments.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

struct Endpoints {
    tokens: Arc<TokenProvider>,
    graph: GraphClient,
    key: (String, String),
}

/// The real executor: sign-in and Graph.
pub struct GraphExecutor {
    http: reqwest::Client,
    store: Arc<Store>,
    token_store: Arc<TokenStore>,
    endpoints: RwLock<Arc<Endpoints>>,
}

impl GraphExecutor {
    /// An executor for `config`'s endpoints; token requests are counted in
    /// `store`; delegated sign-ins are kept in `token_store`.
    pub fn new(http: reqwest::Client, config: &Config, store: Arc<Store>, token_store: Arc<TokenStore>) -> Self {
        let endpoints = RwLock::new(Arc::new(Self::endpoints(&http, config, &store, &token_store)));
        GraphExecutor { http, store, token_store, endpoints }
    }

    fn endpoints(
        http: &reqwest::Client,
        config: &Config,
        store: &Arc<Store>,
        token_store: &Arc<TokenStore>,
    ) -> Endpoints {
        let g = &config.global;
        let s = store.clone();
        let observer: TokenObserver = Arc::new(move |sub: &str, r: Result<(), FailureReason>| s.record_token(sub, r));
        let s = store.clone();
        let status: StatusObserver = Arc::new(move |sub: &str, r: Option<FailureReason>| s.record_sign_in(sub, r));
        let tokens = TokenProvider::new(http.clone(), &g.authority_host, &g.graph_endpoint, observer)
            .with_token_store(token_store.clone())
            .with_status_observer(status);
        Endpoints {
            tokens: Arc::new(tokens),
            graph: GraphClient::new(http.clone(), &g.graph_endpoint),
            key: (g.authority_host.clone(), g.graph_endpoint.clone()),
        }
    }
}

impl Execute for GraphExecutor {
    fn execute<'a>(
        &'a self,
        config: &'a Config,
        sub: &'a Subscription,
        probe: &'a ProbeConfig,
        log: &'a mut ProbeLog,
    ) -> BoxFuture<'a, (Outcome, RunDetails)> {
        Box::pin(async move {
            let endpoints = self.endpoints.read().unwrap_or_else(|e| e.into_inner()).clone();
            let Some(credential) = config.credential_of(sub) else {
                log.line(format!("credential {} is not configured", sub.credential));
                return (Outcome::Failure(FailureReason::AuthFailed), RunDetails::default());
            };
            let ctx = ProbeContext {
                subscription: sub,
                credential,
                global: &config.global,
                tokens: &endpoints.tokens,
                graph: &endpoints.graph,
                config,
                timeout: probe.timeout,
            };
            probe::run(&probe.kind, &ctx, log).await
        })
    }

    fn reconfigure(&self, old: &Config, new: &Config) {
        let current = self.endpoints.read().unwrap_or_else(|e| e.into_inner()).clone();
        if current.key != (new.global.authority_host.clone(), new.global.graph_endpoint.clone()) {
            *self.endpoints.write().unwrap_or_else(|e| e.into_inner()) =
                Arc::new(Self::endpoints(&self.http, new, &self.store, &self.token_store));
            return;
        }
        // Same endpoints: keep cached tokens except for credentials that changed.
        let changed: Vec<String> = old
            .credentials
            .iter()
            .filter(|(name, c)| new.credentials.get(*name) != Some(*c))
            .map(|(name, _)| name.clone())
            .collect();
        current.tokens.forget_credentials(&changed);
    }
}

/// Held while a probe runs, so it never overlaps itself.
type RunLock = Arc<tokio::sync::Mutex<()>>;

/// Shared by the scheduler and the HTTP handlers.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

struct Inner {
    executor: Arc<dyn Execute>,
    config: RwLock<Arc<Config>>,
    semaphore: RwLock<(usize, Arc<Semaphore>)>,
    locks: Mutex<HashMap<(String, String), RunLock>>,
    gates: Mutex<HashMap<(String, Workload), Instant>>,
    store: Arc<Store>,
}

impl Runner {
    /// A runner for `config` that probes Entra ID and Graph, recording into
    /// `store`, with the token store under the default `--storage.path`.
    pub fn new(http: reqwest::Client, config: Arc<Config>, store: Arc<Store>) -> Self {
        let token_store = Arc::new(TokenStore::new(std::path::Path::new(crate::auth::DEFAULT_STORAGE_PATH)));
        Self::with_token_store(http, config, store, token_store)
    }

    /// Like [`Runner::new`], with delegated sign-ins kept in `token_store`.
    pub fn with_token_store(
        http: reqwest::Client,
        config: Arc<Config>,
        store: Arc<Store>,
        token_store: Arc<TokenStore>,
    ) -> Self {
        let executor = Arc::new(GraphExecutor::new(http, &config, store.clone(), token_store));
        Self::with_executor(executor, config, store)
    }

    /// A runner with another executor (tests).
    pub fn with_executor(executor: Arc<dyn Execute>, config: Arc<Config>, store: Arc<Store>) -> Self {
        let limit = config.global.max_concurrent_probes.clamp(1, Semaphore::MAX_PERMITS);
        Runner {
            inner: Arc::new(Inner {
                executor,
                config: RwLock::new(config),
                semaphore: RwLock::new((limit, Arc::new(Semaphore::new(limit)))),
                locks: Mutex::new(HashMap::new()),
                gates: Mutex::new(HashMap::new()),
                store,
            }),
        }
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.inner.config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The store results go to.
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// Switches to a new config. Cached tokens survive unless the endpoints
    /// or that credential changed.
    pub fn set_config(&self, config: Arc<Config>) {
        let old = self.config();
        self.inner.executor.reconfigure(&old, &config);
        let limit = config.global.max_concurrent_probes.clamp(1, Semaphore::MAX_PERMITS);
        {
            let mut sem = self.inner.semaphore.write().unwrap_or_else(|e| e.into_inner());
            if sem.0 != limit {
                // Runs holding permits of the old semaphore finish under the old limit.
                *sem = (limit, Arc::new(Semaphore::new(limit)));
            }
        }
        *self.inner.config.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// When the workload's throttling of `sub` ends, if it has not yet.
    pub fn throttled_until(&self, sub: &str, workload: Workload) -> Option<Instant> {
        let gates = self.inner.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates.get(&(sub.to_string(), workload)).copied().filter(|t| *t > Instant::now())
    }

    fn close_gate(&self, sub: &str, workload: Workload, retry_after: Duration) {
        let mut gates = self.inner.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates.retain(|_, until| *until > Instant::now());
        gates.insert((sub.to_string(), workload), Instant::now() + retry_after);
    }

    /// Runs `probe` of `sub` once. `None` when either is not configured.
    pub async fn run(&self, sub: &str, probe: &str, mode: Mode) -> Option<RunRecord> {
        let config = self.config();
        let subscription = config.subscriptions.iter().find(|s| s.name == sub)?;
        let probe_cfg = subscription.probes.iter().find(|p| p.name == probe)?;
        let workload = Workload::of(&probe_cfg.kind);
        if matches!(mode, Mode::OnDemand { .. }) && matches!(probe_cfg.kind, ProbeKind::MailRoundtrip { .. }) {
            // A round trip takes longer than any scrape timeout (the first
            // look into the inbox is 5 s after sending), so it only runs on schedule.
            return Some(self.last_scheduled(
                sub,
                probe,
                "mail_roundtrip probes only run on schedule",
                Origin::NoResult,
            ));
        }
        // An on-demand run must answer before the scrape times out, so every
        // wait before it starts is bounded too, not only the run itself.
        let deadline = match mode {
            Mode::OnDemand { deadline: Some(d) } => Some(Instant::now() + d),
            _ => None,
        };

        let lock = {
            let mut locks = self.inner.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks.entry((sub.to_string(), probe.to_string())).or_default().clone()
        };
        let Some(_running) = until(deadline, lock.lock()).await else {
            return Some(self.last_scheduled(
                sub,
                probe,
                "another run of this probe did not finish before the scrape deadline",
                Origin::Ran,
            ));
        };

        if let Some(until) = self.throttled_until(sub, workload) {
            match mode {
                Mode::Scheduled => tokio::time::sleep_until(until).await,
                Mode::OnDemand { .. } => {
                    let retry_after = until - Instant::now();
                    return Some(RunRecord {
                        outcome: Outcome::Throttled { workload, retry_after },
                        duration: Duration::ZERO,
                        log: vec![format!(
                            "not sent: {} is throttled for this subscription for another {}s",
                            workload.as_str(),
                            retry_after.as_secs()
                        )],
                        health: None,
                        message_center: None,
                        origin: Origin::Ran,
                    });
                }
            }
        }

        let semaphore = self.inner.semaphore.read().unwrap_or_else(|e| e.into_inner()).1.clone();
        let Some(permit) = until(deadline, semaphore.clone().acquire_owned()).await else {
            return Some(self.last_scheduled(
                sub,
                probe,
                "max_concurrent_probes runs were busy until the scrape deadline",
                Origin::Ran,
            ));
        };
        let slot = Slot { semaphore, permit: Mutex::new(Some(permit.ok()?)) };
        // A mail round trip's timeout bounds the wait for delivery; sending and cleanup get a little more.
        let limit = probe::run_limit(&probe_cfg.kind, probe_cfg.timeout);
        let timeout = match deadline {
            Some(d) => limit.min(d.saturating_duration_since(Instant::now())),
            None => limit,
        };
        let mut log = ProbeLog::new();
        log.line(format!(
            "probe {probe} ({}) of {sub}, timeout {}s",
            probe_cfg.kind.type_name(),
            timeout.as_secs_f64()
        ));
        let started = Instant::now();
        let run =
            tokio::time::timeout(timeout, self.inner.executor.execute(&config, subscription, probe_cfg, &mut log));
        let result = SLOT.scope(slot, run).await;
        let (outcome, details) = match result {
            Ok(r) => r,
            Err(_) => {
                log.line("timed out");
                (Outcome::Failure(FailureReason::Timeout), RunDetails::default())
            }
        };
        // A mail round trip's duration is the send-to-inbox time.
        let duration = details.delivery.unwrap_or_else(|| started.elapsed());
        if let Outcome::Throttled { workload, retry_after } = &outcome {
            self.close_gate(sub, *workload, *retry_after);
        }
        log.line(match &outcome {
            Outcome::Success => format!("success in {:.3}s", duration.as_secs_f64()),
            Outcome::Failure(r) => format!("failed: {r} after {:.3}s", duration.as_secs_f64()),
            Outcome::Throttled { retry_after, .. } => {
                format!("throttled: retry after {}s", retry_after.as_secs())
            }
        });
        if mode == Mode::Scheduled {
            self.inner.store.record(sub, probe, &outcome, duration, details.health.clone());
            if let Some(d) = details.delivery {
                self.inner.store.record_mail_delivery(sub, probe, d);
            }
            if let Some(mc) = &details.message_center {
                self.inner.store.record_message_center(sub, mc.clone());
            }
        }
        Some(RunRecord {
            outcome,
            duration,
            log: log.lines().to_vec(),
            health: details.health,
            message_center: details.message_center,
            origin: Origin::Ran,
        })
    }

    /// The answer of an on-demand run that did not start (`why`): the last
    /// completed scheduled result of the probe. When there is none yet, a
    /// `timeout` failure with origin `none` ([`Origin::Ran`]: the request
    /// timed out; [`Origin::NoResult`]: nothing to report).
    fn last_scheduled(&self, sub: &str, probe: &str, why: &str, none: Origin) -> RunRecord {
        let stored = self.inner.store.with(|s| {
            let st = s.subscriptions.get(sub)?;
            let ps = st.probes.get(probe)?;
            let outcome = match ps.last_success? {
                true => Outcome::Success,
                false => Outcome::Failure(ps.last_failure.unwrap_or(FailureReason::Timeout)),
            };
            let ok = outcome == Outcome::Success;
            let health = if ok && ps.type_name == "service_health" { st.health.clone() } else { None };
            let message_center = if ok && ps.type_name == "message_center" { st.message_center.clone() } else { None };
            Some((outcome, ps.last_duration.unwrap_or_default(), ps.last_run, health, message_center))
        });
        match stored {
            Some((outcome, duration, last_run, health, message_center)) => {
                let ago = last_run.map(|t| format!(" {:.0}s ago", (crate::state::unix_now() - t).max(0.0)));
                let result = match &outcome {
                    Outcome::Failure(r) => format!("failed: {r}"),
                    _ => "success".to_string(),
                };
                RunRecord {
                    outcome,
                    duration,
                    log: vec![
                        format!("not run: {why}"),
                        format!(
                            "returning the last scheduled result (finished{}): {result} in {:.3}s",
                            ago.unwrap_or_default(),
                            duration.as_secs_f64()
                        ),
                    ],
                    health,
                    message_center,
                    origin: Origin::LastScheduled,
                }
            }
            None => RunRecord {
                outcome: Outcome::Failure(FailureReason::Timeout),
                duration: Duration::ZERO,
                log: vec![
                    format!("not run: {why}"),
                    match none {
                        Origin::NoResult => "no scheduled result yet: left out of the output".to_string(),
                        _ => "no scheduled result yet: timeout".to_string(),
                    },
                ],
                health: None,
                message_center: None,
                origin: none,
            },
        }
    }
}

/// Awaits `fut`, giving up at `deadline` (if any).
async fn until<F: std::future::Future>(deadline: Option<Instant>, fut: F) -> Option<F::Output> {
    match deadline {
        Some(d) => tokio::time::timeout_at(d, fut).await.ok(),
        None => Some(fut.await),
    }
}
