//! Partner tenant discovery: each `discovery:` entry signs in to a partner
//! tenant, lists its GDAP customers every `refresh_interval`, and each
//! customer becomes a subscription built from the entry's template.
//!
//! The subscriptions in force are always `configured + discovered`
//! ([`merge`]), recomputed on reload and after each refresh that changed a
//! list, and applied like a reload: unchanged subscriptions keep their
//! tasks, state and counters. A failed refresh keeps the last good list.

mod fetch;
mod slug;

pub use slug::{assign as assign_names, slug};

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock, Weak};

use tokio::task::JoinHandle;

use crate::app::App;
use crate::auth::{TokenObserver, TokenProvider};
use crate::config::{self, Config, Subscription};
use crate::graph::GraphClient;
use crate::probe::{FailureReason, ProbeLog};
use crate::state::{DiscoveryState, Store, unix_now};

/// A customer tenant as listed by the partner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Customer {
    /// Tenant GUID, lowercase.
    pub tenant_id: String,
    /// The customer's display name.
    pub display_name: String,
    /// Latest `endDateTime` of the partner's relationships in force with
    /// it, seconds since the epoch.
    pub relationship_end: Option<i64>,
}

/// The subscriptions in force and what discovery contributed.
#[derive(Debug, Clone, PartialEq)]
pub struct Merged {
    /// The file's config with discovered subscriptions appended (sorted by name).
    pub config: Config,
    /// Per discovery entry: how many subscriptions it contributes.
    pub counts: BTreeMap<String, usize>,
    /// Per subscription (discovered or configured for a customer tenant):
    /// when the partner's relationship ends.
    pub relationship_expiry: BTreeMap<String, i64>,
}

/// Combines the configured subscriptions with the discovered customers
/// (`found`, per discovery name). Configured subscriptions win for their
/// tenant; an excluded tenant is skipped; a tenant listed by two entries
/// goes to the first in the file.
///
/// `previous` maps tenant IDs of customers discovered before to the names
/// they had, which they keep while they can (see [`assign_names`]).
pub fn merge(file: &Config, found: &BTreeMap<String, Vec<Customer>>, previous: &BTreeMap<String, String>) -> Merged {
    let mut explicit: HashMap<String, Vec<&str>> = HashMap::new();
    for s in &file.subscriptions {
        explicit.entry(s.tenant_id.to_ascii_lowercase()).or_default().push(s.name.as_str());
    }
    let taken: BTreeSet<String> = file.subscriptions.iter().map(|s| s.name.clone()).collect();
    let mut expiry = BTreeMap::new();
    let mut claimed: BTreeMap<&str, (&config::Discovery, &Customer)> = BTreeMap::new();
    let mut counts: BTreeMap<String, usize> = file.discovery.iter().map(|d| (d.name.clone(), 0)).collect();
    for d in &file.discovery {
        for c in found.get(&d.name).map(Vec::as_slice).unwrap_or_default() {
            if d.exclude.contains(&c.tenant_id) {
                continue;
            }
            if let Some(names) = explicit.get(&c.tenant_id) {
                if let Some(end) = c.relationship_end {
                    for name in names {
                        expiry.insert(name.to_string(), end);
                    }
                }
                continue;
            }
            claimed.entry(c.tenant_id.as_str()).or_insert((d, c));
        }
    }
    let pairs: Vec<(&str, &str)> =
        claimed.values().map(|(_, c)| (c.tenant_id.as_str(), c.display_name.as_str())).collect();
    let names = slug::assign(&pairs, &taken, previous);
    let mut discovered: Vec<Subscription> = Vec::new();
    for (tenant, (d, c)) in &claimed {
        let Some(name) = names.get(tenant) else {
            tracing::warn!(discovery = %d.name, tenant = %tenant, "no free subscription name for a customer; skipped");
            continue;
        };
        *counts.entry(d.name.clone()).or_default() += 1;
        if let Some(end) = c.relationship_end {
            expiry.insert(name.clone(), end);
        }
        discovered.push(Subscription {
            name: name.clone(),
            tenant_id: c.tenant_id.clone(),
            credential: d.template.credential.clone(),
            admins: d.template.admins.clone(),
            probes: d.template.probes.clone(),
        });
    }
    discovered.sort_by(|a, b| a.name.cmp(&b.name));
    let mut config = file.clone();
    config.subscriptions.extend(discovered);
    Merged { config, counts, relationship_expiry: expiry }
}

/// Why a refresh did not happen or failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshError {
    /// No discovery entry of that name is configured.
    #[error("no discovery named {0:?} is configured")]
    Unknown(String),
    /// Signing in or listing failed; the last good list stays.
    #[error("discovery {name} failed: {reason}")]
    Failed {
        /// The discovery entry.
        name: String,
        /// Why.
        reason: FailureReason,
    },
}

/// The last good customer list of one entry, with what it was read for.
/// The longest one refresh (sign-in and every page of both lists) may
/// take; a partner with thousands of customers needs seconds.
pub const REFRESH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

struct Found {
    /// (credential, partner tenant): another partner's list does not carry over.
    key: (String, String),
    customers: Vec<Customer>,
}

struct Task {
    entry: config::Discovery,
    handle: JoinHandle<()>,
}

struct Clients {
    tokens: Arc<TokenProvider>,
    graph: GraphClient,
    /// (authority host, Graph endpoint, credentials) they were made for.
    made_for: (String, String, BTreeMap<String, config::Credential>),
}

/// Owns the discovery tasks and the last good lists.
pub struct Discoverer {
    http: reqwest::Client,
    found: Mutex<BTreeMap<String, Found>>,
    tasks: Mutex<HashMap<String, Task>>,
    locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    clients: RwLock<Option<Arc<Clients>>>,
}

impl Discoverer {
    /// No tasks yet; see [`Discoverer::apply`].
    pub fn new(http: reqwest::Client) -> Self {
        Discoverer {
            http,
            found: Mutex::new(BTreeMap::new()),
            tasks: Mutex::new(HashMap::new()),
            locks: Mutex::new(HashMap::new()),
            clients: RwLock::new(None),
        }
    }

    /// Starts a task per new or changed entry of `config` (its first
    /// refresh runs at once), stops those of removed entries, and forgets
    /// lists read for another partner or credential.
    pub fn apply(&self, config: &Config, app: Weak<App>) {
        {
            let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
            found.retain(|name, f| {
                config
                    .discovery
                    .iter()
                    .any(|d| d.name == *name && (d.credential.clone(), d.partner_tenant_id.clone()) == f.key)
            });
        }
        let mut tasks = self.tasks.lock().unwrap_or_else(|e| e.into_inner());
        tasks.retain(|name, t| {
            let keep = config.discovery.iter().any(|d| d.name == *name && *d == t.entry);
            if !keep {
                t.handle.abort();
            }
            keep
        });
        for d in &config.discovery {
            if tasks.contains_key(&d.name) {
                continue;
            }
            let handle = tokio::spawn(refresh_loop(app.clone(), d.name.clone(), d.refresh_interval));
            tasks.insert(d.name.clone(), Task { entry: d.clone(), handle });
        }
    }

    /// The last good lists of `config`'s entries, per discovery name (a
    /// list read for another partner or credential does not count).
    pub fn found(&self, config: &Config) -> BTreeMap<String, Vec<Customer>> {
        let found = self.found.lock().unwrap_or_else(|e| e.into_inner());
        config
            .discovery
            .iter()
            .filter_map(|d| {
                let f = found.get(&d.name)?;
                (f.key == (d.credential.clone(), d.partner_tenant_id.clone()))
                    .then(|| (d.name.clone(), f.customers.clone()))
            })
            .collect()
    }

    fn clients(&self, config: &Config) -> Arc<Clients> {
        let g = &config.global;
        let want = (g.authority_host.clone(), g.graph_endpoint.clone(), config.credentials.clone());
        if let Some(c) = self.clients.read().unwrap_or_else(|e| e.into_inner()).as_ref().filter(|c| c.made_for == want)
        {
            return c.clone();
        }
        // Discovery sign-ins are not a subscription's: they are not counted per subscription.
        let observer: TokenObserver = Arc::new(|_: &str, _: Result<(), FailureReason>| {});
        let c = Arc::new(Clients {
            tokens: Arc::new(TokenProvider::new(self.http.clone(), &g.authority_host, &g.graph_endpoint, observer)),
            graph: GraphClient::new(self.http.clone(), &g.graph_endpoint),
            made_for: want,
        });
        *self.clients.write().unwrap_or_else(|e| e.into_inner()) = Some(c.clone());
        c
    }

    /// Reads the customer list of entry `name` of `config` now (one refresh
    /// of an entry at a time) and records the result in `store`. Returns
    /// whether the list changed. On failure the last good list stays.
    pub async fn refresh(&self, name: &str, config: &Config, store: &Store) -> Result<bool, RefreshError> {
        let entry =
            config.discovery.iter().find(|d| d.name == name).ok_or_else(|| RefreshError::Unknown(name.into()))?;
        let lock = self.locks.lock().unwrap_or_else(|e| e.into_inner()).entry(name.to_string()).or_default().clone();
        let _one_at_a_time = lock.lock().await;
        let clients = self.clients(config);
        let mut log = ProbeLog::new();
        let result = match config.credentials.get(&entry.credential) {
            Some(credential) => {
                let fetch = fetch::customers(&clients.tokens, &clients.graph, entry, credential, &mut log);
                // A peer that stops answering mid-response must not stall the
                // refresh (and the reloads waiting on its lock) for ever.
                match tokio::time::timeout(REFRESH_TIMEOUT, fetch).await {
                    Ok(r) => r,
                    Err(_) => {
                        log.line(format!("timed out after {}s", REFRESH_TIMEOUT.as_secs()));
                        Err(FailureReason::Timeout)
                    }
                }
            }
            None => Err(FailureReason::AuthFailed),
        };
        store.update(|s| {
            let st = s.discovery.entry(name.to_string()).or_insert_with(DiscoveryState::default);
            st.refreshes += 1;
            match &result {
                Ok(_) => {
                    st.last_success_at = Some(unix_now());
                    st.last_failure = None;
                }
                Err(r) => {
                    *st.failures.entry(*r).or_default() += 1;
                    st.last_failure = Some(*r);
                }
            }
        });
        match result {
            Ok(customers) => {
                tracing::info!(discovery = %name, customers = customers.len(), "discovery refreshed");
                let key = (entry.credential.clone(), entry.partner_tenant_id.clone());
                let mut found = self.found.lock().unwrap_or_else(|e| e.into_inner());
                let changed = found.get(name).is_none_or(|f| f.key != key || f.customers != customers);
                found.insert(name.to_string(), Found { key, customers });
                Ok(changed)
            }
            Err(reason) => {
                // The log holds URLs, statuses and Microsoft's error texts, never a secret.
                tracing::warn!(discovery = %name, %reason, log = %log.lines().join(" | "), "discovery refresh failed; keeping the last list");
                Err(RefreshError::Failed { name: name.to_string(), reason })
            }
        }
    }

    /// Stops every task.
    pub fn shutdown(&self) {
        for (_, t) in self.tasks.lock().unwrap_or_else(|e| e.into_inner()).drain() {
            t.handle.abort();
        }
    }
}

impl Drop for Discoverer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// First retry after a failed refresh; it doubles with each failure in a
/// row, and never waits longer than the refresh interval.
pub const RETRY_AFTER_FAILURE: std::time::Duration = std::time::Duration::from_secs(30);

/// How long to wait after the refresh that ended with `failures_in_a_row`
/// failures: the interval after a success, else a doubling retry capped by it,
/// so one failure at start-up does not leave the customers unmonitored for
/// a whole interval, and a failing partner is not asked every millisecond.
pub fn next_refresh_in(interval: std::time::Duration, failures_in_a_row: u32) -> std::time::Duration {
    if failures_in_a_row == 0 {
        return interval;
    }
    let factor = 1u32 << (failures_in_a_row - 1).min(16);
    RETRY_AFTER_FAILURE.saturating_mul(factor).min(interval)
}

/// Refreshes at once, then every `interval` (sooner after a failure), until
/// the app is gone or the task is aborted.
async fn refresh_loop(app: Weak<App>, name: String, interval: std::time::Duration) {
    let mut failures_in_a_row = 0u32;
    loop {
        let Some(a) = app.upgrade() else { return };
        // Failures are recorded and logged by the refresh itself.
        match a.refresh_discovery(&name).await {
            Ok(_) => failures_in_a_row = 0,
            Err(_) => failures_in_a_row = failures_in_a_row.saturating_add(1),
        }
        drop(a);
        tokio::time::sleep(next_refresh_in(interval, failures_in_a_row)).await;
    }
}

#[cfg(test)]
mod retry_tests {
    use super::next_refresh_in;
    use std::time::Duration;

    #[test]
    fn retries_double_from_30s_and_never_exceed_the_interval() {
        let hour = Duration::from_secs(3600);
        let waits: Vec<u64> = (0..9).map(|n| next_refresh_in(hour, n).as_secs()).collect();
        assert_eq!(waits, [3600, 30, 60, 120, 240, 480, 960, 1920, 3600]);
        assert_eq!(next_refresh_in(Duration::from_millis(200), 3), Duration::from_millis(200));
        assert_eq!(next_refresh_in(hour, u32::MAX), hour);
    }
}
