//! The latest results and counters, per subscription and probe. `/metrics`
//! and the landing page read it; only the scheduler writes it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::ProbeKind;
use crate::config::{CertificateCredential, Config, CredentialKind};
use crate::probe::{FailureReason, HealthSnapshot, MAIL_DELIVERY_BUCKETS, MessageCenterSnapshot, Outcome};

/// Upper bounds of the `m365mon_probe_duration_seconds` buckets.
pub const DURATION_BUCKETS: [f64; 12] = [0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0];

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_secs_f64()
}

/// A fixed-bucket histogram; by default over [`DURATION_BUCKETS`].
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Upper bounds of the buckets, ascending (+Inf is implied).
    pub bounds: &'static [f64],
    /// Non-cumulative counts per bucket of `bounds`, plus +Inf last.
    pub counts: Vec<u64>,
    /// Sum of observations, in seconds.
    pub sum: f64,
}

impl Default for Histogram {
    fn default() -> Self {
        Histogram::new(&DURATION_BUCKETS)
    }
}

impl Histogram {
    /// An empty histogram over `bounds`.
    pub fn new(bounds: &'static [f64]) -> Self {
        Histogram { bounds, counts: vec![0; bounds.len() + 1], sum: 0.0 }
    }

    /// Adds one observation.
    pub fn observe(&mut self, secs: f64) {
        let i = self.bounds.iter().position(|b| secs <= *b).unwrap_or(self.bounds.len());
        if let Some(c) = self.counts.get_mut(i) {
            *c += 1;
        }
        self.sum += secs;
    }

    /// The number of observations.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }
}

/// One probe's results so far.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProbeState {
    /// The probe's type name (for the landing page).
    pub type_name: String,
    /// Completed runs (not throttled ones).
    pub runs: u64,
    /// Failed runs by reason.
    pub failures: BTreeMap<FailureReason, u64>,
    /// Throttled runs.
    pub throttled: u64,
    /// Result of the last completed run.
    pub last_success: Option<bool>,
    /// Reason of the last completed run when it failed.
    pub last_failure: Option<FailureReason>,
    /// When the last run (of any outcome) finished.
    pub last_run: Option<f64>,
    /// When the last successful run finished.
    pub last_success_at: Option<f64>,
    /// Duration of the last completed run.
    pub last_duration: Option<Duration>,
    /// Whether the last run was throttled, and for how long.
    pub last_throttle: Option<Duration>,
    /// Durations of completed runs.
    pub durations: Histogram,
    /// Send-to-inbox times of a `mail_roundtrip` probe (over
    /// [`MAIL_DELIVERY_BUCKETS`]); `None` for other types.
    pub mail_delivery: Option<Histogram>,
}

/// One subscription's state.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubscriptionState {
    /// Tenant GUID or domain.
    pub tenant_id: String,
    /// Cloud name.
    pub cloud: String,
    /// Credential name.
    pub credential: String,
    /// Owning admins.
    pub admins: Vec<String>,
    /// Per probe name.
    pub probes: BTreeMap<String, ProbeState>,
    /// Token requests sent for this subscription.
    pub token_requests: u64,
    /// Failed token requests by reason.
    pub token_failures: BTreeMap<FailureReason, u64>,
    /// Service health from the last successful `service_health` run.
    pub health: Option<HealthSnapshot>,
    /// Message center counts from the last successful `message_center` run.
    pub message_center: Option<MessageCenterSnapshot>,
    /// Whether the credential is `delegated: true` (a signed-in account).
    pub delegated: bool,
    /// The reason the last non-transient sign-in attempt failed; `None`
    /// after a success (or before any attempt).
    pub sign_in_failure: Option<FailureReason>,
}

impl SubscriptionState {
    /// A delegated sign-in that only `m365mon login` can repair.
    pub fn reauth_required(&self) -> bool {
        self.delegated && self.sign_in_failure == Some(FailureReason::ReauthRequired)
    }
}

/// Reload bookkeeping.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ReloadStatus {
    /// Whether the last load attempt succeeded.
    pub last_successful: bool,
    /// When the config was last loaded successfully.
    pub last_success_at: f64,
}

/// One discovery entry's refreshes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiscoveryState {
    /// Refresh attempts.
    pub refreshes: u64,
    /// Failed refreshes by reason.
    pub failures: BTreeMap<FailureReason, u64>,
    /// When a refresh last succeeded.
    pub last_success_at: Option<f64>,
    /// Subscriptions it contributes now.
    pub subscriptions: usize,
    /// Why the last refresh failed; `None` after a success.
    pub last_failure: Option<FailureReason>,
}

/// Everything `/metrics` shows.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    /// Per subscription name.
    pub subscriptions: BTreeMap<String, SubscriptionState>,
    /// Certificate notAfter per credential name.
    pub credential_expiry: BTreeMap<String, i64>,
    /// Reload status.
    pub reload: ReloadStatus,
    /// Per discovery entry.
    pub discovery: BTreeMap<String, DiscoveryState>,
    /// When the partner's GDAP relationship ends, per subscription.
    pub relationship_expiry: BTreeMap<String, i64>,
}

/// The shared store.
#[derive(Debug, Default)]
pub struct Store {
    inner: RwLock<Snapshot>,
}

impl Store {
    /// An empty store.
    pub fn new() -> Self {
        Store::default()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Snapshot> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// A store holding `snapshot` (tests and tools).
    pub fn from_snapshot(snapshot: Snapshot) -> Self {
        Store { inner: RwLock::new(snapshot) }
    }

    /// A copy of the current state.
    pub fn snapshot(&self) -> Snapshot {
        self.inner.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Changes the state under the write lock (bookkeeping outside the probe path, e.g. discovery).
    pub fn update<R>(&self, f: impl FnOnce(&mut Snapshot) -> R) -> R {
        f(&mut self.write())
    }

    /// Runs `f` on the current state without copying it.
    pub fn with<R>(&self, f: impl FnOnce(&Snapshot) -> R) -> R {
        f(&self.inner.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Makes the store match `config`: new subscriptions and probes appear,
    /// removed ones vanish, and the state of probes whose name and kind are
    /// unchanged is kept.
    pub fn sync_config(&self, config: &Config) {
        let mut s = self.write();
        let mut keep = BTreeSet::new();
        for sub in &config.subscriptions {
            keep.insert(sub.name.clone());
            let st = s.subscriptions.entry(sub.name.clone()).or_default();
            if st.tenant_id != sub.tenant_id || st.credential != sub.credential {
                // Another tenant or app: earlier health and token results no longer apply.
                st.health = None;
                st.message_center = None;
                st.sign_in_failure = None;
            }
            st.delegated = config.credential_of(sub).is_some_and(|c| matches!(c.kind, CredentialKind::Delegated(_)));
            st.tenant_id = sub.tenant_id.clone();
            st.cloud = config.global.cloud.as_str().to_string();
            st.credential = sub.credential.clone();
            st.admins = sub.admins.clone();
            let probe_names: BTreeSet<_> = sub.probes.iter().map(|p| p.name.clone()).collect();
            st.probes.retain(|name, _| probe_names.contains(name));
            for p in &sub.probes {
                let ps = st.probes.entry(p.name.clone()).or_default();
                if ps.type_name != p.kind.type_name() {
                    *ps = ProbeState { type_name: p.kind.type_name().to_string(), ..Default::default() };
                }
                if matches!(p.kind, ProbeKind::MailRoundtrip { .. }) && ps.mail_delivery.is_none() {
                    // Present from the start, so rates and quantiles need no special case.
                    ps.mail_delivery = Some(Histogram::new(&MAIL_DELIVERY_BUCKETS));
                }
            }
            if !sub.probes.iter().any(|p| p.kind == ProbeKind::ServiceHealth) {
                st.health = None;
            }
            if !sub.probes.iter().any(|p| p.kind == ProbeKind::MessageCenter) {
                st.message_center = None;
            }
        }
        s.subscriptions.retain(|name, _| keep.contains(name));
        s.credential_expiry = config
            .credentials
            .values()
            .filter_map(|c| match &c.kind {
                CredentialKind::Certificate(CertificateCredential { not_after_unix, .. }) => {
                    Some((c.name.clone(), *not_after_unix))
                }
                _ => None,
            })
            .collect();
    }

    /// Records a finished run. Unknown subscriptions or probes (removed by a
    /// reload while the run was in flight) are ignored.
    pub fn record(
        &self,
        sub: &str,
        probe: &str,
        outcome: &Outcome,
        duration: Duration,
        health: Option<HealthSnapshot>,
    ) {
        let now = unix_now();
        let mut s = self.write();
        let Some(st) = s.subscriptions.get_mut(sub) else {
            return;
        };
        if let Some(h) = health {
            st.health = Some(h);
        }
        let Some(ps) = st.probes.get_mut(probe) else {
            return;
        };
        ps.last_run = Some(now);
        match outcome {
            Outcome::Throttled { retry_after, .. } => {
                ps.throttled += 1;
                ps.last_throttle = Some(*retry_after);
            }
            Outcome::Success | Outcome::Failure(_) => {
                ps.runs += 1;
                ps.last_throttle = None;
                ps.last_duration = Some(duration);
                ps.durations.observe(duration.as_secs_f64());
                if let Outcome::Failure(r) = outcome {
                    *ps.failures.entry(*r).or_insert(0) += 1;
                    ps.last_success = Some(false);
                    ps.last_failure = Some(*r);
                } else {
                    ps.last_success = Some(true);
                    ps.last_failure = None;
                    ps.last_success_at = Some(now);
                }
            }
        }
    }

    /// Records the send-to-inbox time of a delivered probe message.
    pub fn record_mail_delivery(&self, sub: &str, probe: &str, delivery: Duration) {
        let mut s = self.write();
        let ps = s.subscriptions.get_mut(sub).and_then(|st| st.probes.get_mut(probe));
        if let Some(ps) = ps {
            ps.mail_delivery
                .get_or_insert_with(|| Histogram::new(&MAIL_DELIVERY_BUCKETS))
                .observe(delivery.as_secs_f64());
        }
    }

    /// Keeps the latest message center counts of `sub`.
    pub fn record_message_center(&self, sub: &str, snapshot: MessageCenterSnapshot) {
        if let Some(st) = self.write().subscriptions.get_mut(sub) {
            st.message_center = Some(snapshot);
        }
    }

    /// Counts a token request made for `sub`.
    pub fn record_token(&self, sub: &str, result: Result<(), FailureReason>) {
        let mut s = self.write();
        if let Some(st) = s.subscriptions.get_mut(sub) {
            st.token_requests += 1;
            if let Err(r) = result {
                *st.token_failures.entry(r).or_insert(0) += 1;
            }
        }
    }

    /// Records the sign-in state of `sub` (see [`crate::auth::StatusObserver`]).
    pub fn record_sign_in(&self, sub: &str, failure: Option<FailureReason>) {
        let mut s = self.write();
        if let Some(st) = s.subscriptions.get_mut(sub) {
            st.sign_in_failure = failure;
        }
    }

    /// Records a (re)load attempt.
    pub fn record_reload(&self, ok: bool) {
        let mut s = self.write();
        s.reload.last_successful = ok;
        if ok {
            s.reload.last_success_at = unix_now();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets() {
        let mut h = Histogram::default();
        h.observe(0.01);
        h.observe(0.05);
        h.observe(0.3);
        h.observe(100.0);
        assert_eq!(h.counts[0], 2);
        assert_eq!(h.counts[3], 1);
        assert_eq!(h.counts[DURATION_BUCKETS.len()], 1);
        assert_eq!(h.count(), 4);
    }
}
