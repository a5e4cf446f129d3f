//! Runs one probe of one subscription: no overlap with itself, the global
//! concurrency limit, the per-workload throttling gate and the timeout.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::auth::{TokenObserver, TokenProvider};
use crate::config::Config;
use crate::graph::GraphClient;
use crate::probe::{
    self, FailureReason, HealthSnapshot, Outcome, ProbeContext, ProbeLog, Workload,
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
}

struct Endpoints {
    tokens: Arc<TokenProvider>,
    graph: GraphClient,
    semaphore: Arc<Semaphore>,
    key: (String, String, usize),
}

/// Shared by the scheduler and the HTTP handlers.
#[derive(Clone)]
pub struct Runner {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: RwLock<Arc<Config>>,
    endpoints: RwLock<Arc<Endpoints>>,
    locks: Mutex<HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>>,
    gates: Mutex<HashMap<(String, Workload), Instant>>,
    store: Arc<Store>,
}

fn endpoints_for(http: &reqwest::Client, config: &Config, store: &Arc<Store>) -> Endpoints {
    let g = &config.global;
    let s = store.clone();
    let observer: TokenObserver =
        Arc::new(move |sub: &str, r: Result<(), FailureReason>| s.record_token(sub, r));
    Endpoints {
        tokens: Arc::new(TokenProvider::new(
            http.clone(),
            &g.authority_host,
            &g.graph_endpoint,
            observer,
        )),
        graph: GraphClient::new(http.clone(), &g.graph_endpoint),
        semaphore: Arc::new(Semaphore::new(g.max_concurrent_probes.max(1))),
        key: (
            g.authority_host.clone(),
            g.graph_endpoint.clone(),
            g.max_concurrent_probes,
        ),
    }
}

impl Runner {
    /// A runner for `config`, recording into `store`.
    pub fn new(http: reqwest::Client, config: Arc<Config>, store: Arc<Store>) -> Self {
        let endpoints = Arc::new(endpoints_for(&http, &config, &store));
        Runner {
            inner: Arc::new(Inner {
                http,
                config: RwLock::new(config),
                endpoints: RwLock::new(endpoints),
                locks: Mutex::new(HashMap::new()),
                gates: Mutex::new(HashMap::new()),
                store,
            }),
        }
    }

    /// The config in force.
    pub fn config(&self) -> Arc<Config> {
        self.inner
            .config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The store results go to.
    pub fn store(&self) -> &Arc<Store> {
        &self.inner.store
    }

    /// Switches to a new config. Cached tokens survive unless the endpoints
    /// or that credential changed.
    pub fn set_config(&self, config: Arc<Config>) {
        let old = self.config();
        let g = &config.global;
        let key = (
            g.authority_host.clone(),
            g.graph_endpoint.clone(),
            g.max_concurrent_probes,
        );
        let current = self
            .inner
            .endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if current.key != key {
            *self
                .inner
                .endpoints
                .write()
                .unwrap_or_else(|e| e.into_inner()) =
                Arc::new(endpoints_for(&self.inner.http, &config, &self.inner.store));
        } else {
            let changed: Vec<String> = old
                .credentials
                .iter()
                .filter(|(name, c)| config.credentials.get(*name) != Some(*c))
                .map(|(name, _)| name.clone())
                .collect();
            current.tokens.forget_credentials(&changed);
        }
        *self.inner.config.write().unwrap_or_else(|e| e.into_inner()) = config;
    }

    /// When the workload's throttling of `sub` ends, if it has not yet.
    pub fn throttled_until(&self, sub: &str, workload: Workload) -> Option<Instant> {
        let gates = self.inner.gates.lock().unwrap_or_else(|e| e.into_inner());
        gates
            .get(&(sub.to_string(), workload))
            .copied()
            .filter(|t| *t > Instant::now())
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
        let credential = config.credential_of(subscription)?;
        let workload = Workload::of(&probe_cfg.kind);

        let lock = {
            let mut locks = self.inner.locks.lock().unwrap_or_else(|e| e.into_inner());
            locks
                .entry((sub.to_string(), probe.to_string()))
                .or_default()
                .clone()
        };
        let _running = lock.lock().await;

        if let Some(until) = self.throttled_until(sub, workload) {
            match mode {
                Mode::Scheduled => tokio::time::sleep_until(until).await,
                Mode::OnDemand { .. } => {
                    let retry_after = until - Instant::now();
                    return Some(RunRecord {
                        outcome: Outcome::Throttled {
                            workload,
                            retry_after,
                        },
                        duration: Duration::ZERO,
                        log: vec![format!(
                            "not sent: {} is throttled for this subscription for another {}s",
                            workload.as_str(),
                            retry_after.as_secs()
                        )],
                        health: None,
                    });
                }
            }
        }

        let endpoints = self
            .inner
            .endpoints
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let _permit = endpoints.semaphore.clone().acquire_owned().await.ok()?;
        let timeout = match mode {
            Mode::OnDemand { deadline: Some(d) } => probe_cfg.timeout.min(d),
            _ => probe_cfg.timeout,
        };
        let ctx = ProbeContext {
            subscription,
            credential,
            global: &config.global,
            tokens: &endpoints.tokens,
            graph: &endpoints.graph,
        };
        let mut log = ProbeLog::new();
        log.line(format!(
            "probe {probe} ({}) of {sub}, timeout {}s",
            probe_cfg.kind.type_name(),
            timeout.as_secs_f64()
        ));
        let started = Instant::now();
        let result =
            tokio::time::timeout(timeout, probe::run(&probe_cfg.kind, &ctx, &mut log)).await;
        let duration = started.elapsed();
        let (outcome, details) = match result {
            Ok(r) => r,
            Err(_) => {
                log.line("timed out");
                (Outcome::Failure(FailureReason::Timeout), Default::default())
            }
        };
        if let Outcome::Throttled {
            workload,
            retry_after,
        } = &outcome
        {
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
            self.inner
                .store
                .record(sub, probe, &outcome, duration, details.health.clone());
        }
        Some(RunRecord {
            outcome,
            duration,
            log: log.lines().to_vec(),
            health: details.health,
        })
    }
}
