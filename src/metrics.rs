//! Prometheus exposition: metric families built from a [`Snapshot`] on each
//! scrape (so removed subscriptions leave no stale series), encoded in the
//! text format 0.0.4.

use prometheus::proto::{Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType};

use crate::probe::{MessageCenterSnapshot, is_operational};
use crate::state::{ProbeState, Snapshot};

/// The content type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Metric names and help texts: the contract documented in the README.
pub mod names {
    /// (name, help) pairs.
    pub const PROBE_SUCCESS: (&str, &str) = (
        "m365mon_probe_success",
        "1 if the last completed run of the probe succeeded, 0 if it failed (throttled runs do not change it).",
    );
    pub const PROBE_DURATION: (&str, &str) =
        ("m365mon_probe_duration_seconds", "Duration of completed probe runs, sign-in included.");
    pub const PROBE_RUNS: (&str, &str) =
        ("m365mon_probe_runs_total", "Completed probe runs, successful or failed; throttled runs are not counted.");
    pub const PROBE_FAILURES: (&str, &str) = ("m365mon_probe_failures_total", "Failed probe runs by reason.");
    pub const PROBE_THROTTLED: (&str, &str) = (
        "m365mon_probe_throttled_total",
        "Probe runs answered with throttling (429, or 503 with Retry-After); neither success nor failure.",
    );
    pub const PROBE_LAST_RUN: (&str, &str) =
        ("m365mon_probe_last_run_timestamp_seconds", "When the last run of the probe finished, whatever its outcome.");
    pub const PROBE_LAST_SUCCESS: (&str, &str) =
        ("m365mon_probe_last_success_timestamp_seconds", "When the last successful run of the probe finished.");
    pub const PROBE_LAST_FAILURE_REASON: (&str, &str) = (
        "m365mon_probe_last_failure_reason",
        "1 with the reason of the last completed run while it failed; absent after a success.",
    );
    pub const SERVICE_HEALTH_STATUS: (&str, &str) = (
        "m365mon_service_health_status",
        "1 per service with its current Microsoft service-health status (unknown for unrecognised values).",
    );
    pub const SERVICE_OPERATIONAL: (&str, &str) = (
        "m365mon_service_operational",
        "1 if Microsoft reports the service as healthy (serviceOperational, serviceRestored, falsePositive, postIncidentReviewPublished, resolved, resolvedExternal), else 0.",
    );
    pub const SERVICE_ISSUES_ACTIVE: (&str, &str) =
        ("m365mon_service_issues_active", "Unresolved Microsoft service-health issues by service and classification.");
    pub const MAIL_DELIVERY: (&str, &str) =
        ("m365mon_mail_delivery_seconds", "Send-to-inbox time of delivered mail_roundtrip probe messages.");
    pub const MESSAGE_CENTER_POSTS: (&str, &str) =
        ("m365mon_message_center_posts", "Message center posts listed for the tenant, by category and severity.");
    pub const MESSAGE_CENTER_NEXT_ACTION: (&str, &str) = (
        "m365mon_message_center_next_action_timestamp_seconds",
        "The earliest future actionRequiredByDateTime of the tenant's message center posts; absent when none.",
    );
    pub const SUBSCRIPTION_INFO: (&str, &str) =
        ("m365mon_subscription_info", "1 per configured subscription, with its tenant, cloud and credential.");
    pub const SUBSCRIPTION_ADMIN_INFO: (&str, &str) =
        ("m365mon_subscription_admin_info", "1 per owning admin of a subscription.");
    pub const TOKEN_REQUESTS: (&str, &str) =
        ("m365mon_token_requests_total", "Token requests sent to Entra ID for the subscription.");
    pub const TOKEN_FAILURES: (&str, &str) =
        ("m365mon_token_request_failures_total", "Failed token requests by reason.");
    pub const CREDENTIAL_REAUTH_REQUIRED: (&str, &str) = (
        "m365mon_credential_reauth_required",
        "1 while the subscription's delegated sign-in needs `m365mon login` (none stored, or the refresh token was rejected); 0 otherwise. Only for delegated credentials.",
    );
    pub const CREDENTIAL_EXPIRY: (&str, &str) =
        ("m365mon_credential_expiry_timestamp_seconds", "When the certificate of a certificate credential expires.");
    pub const DISCOVERY_LAST_SUCCESS: (&str, &str) = (
        "m365mon_discovery_last_success_timestamp_seconds",
        "When the discovery last read its partner's customer list successfully.",
    );
    pub const DISCOVERY_SUBSCRIPTIONS: (&str, &str) = (
        "m365mon_discovery_subscriptions",
        "Subscriptions the discovery contributes now (customers after exclusions and explicit subscriptions).",
    );
    pub const DISCOVERY_REFRESHES: (&str, &str) =
        ("m365mon_discovery_refreshes_total", "Attempts to read the partner's customer list, successful or not.");
    pub const DISCOVERY_FAILURES: (&str, &str) = (
        "m365mon_discovery_refresh_failures_total",
        "Failed attempts to read the partner's customer list by reason; the last good list stays in force.",
    );
    pub const RELATIONSHIP_EXPIRY: (&str, &str) = (
        "m365mon_relationship_expiry_timestamp_seconds",
        "When the partner's latest GDAP relationship in force with the subscription's tenant ends.",
    );
    pub const BUILD_INFO: (&str, &str) = (
        "m365mon_build_info",
        "A metric with a constant '1' value labeled by version, revision and rustc_version from which m365mon was built.",
    );
    pub const RELOAD_OK: (&str, &str) =
        ("m365mon_config_last_reload_successful", "1 if the last configuration load succeeded.");
    pub const RELOAD_TS: (&str, &str) = (
        "m365mon_config_last_reload_success_timestamp_seconds",
        "When the configuration was last loaded successfully.",
    );
}

/// Build metadata for `m365mon_build_info`.
#[derive(Debug, Clone)]
pub struct BuildInfo {
    /// Crate version.
    pub version: &'static str,
    /// Git revision, or `unknown`.
    pub revision: &'static str,
    /// rustc version, or `unknown`.
    pub rustc_version: &'static str,
}

impl BuildInfo {
    /// This binary's build info (set by build.rs).
    pub fn current() -> Self {
        BuildInfo {
            version: env!("CARGO_PKG_VERSION"),
            revision: env!("M365MON_REVISION"),
            rustc_version: env!("M365MON_RUSTC_VERSION"),
        }
    }
}

/// Collects families in a fixed order.
#[derive(Default)]
pub struct Families(Vec<MetricFamily>);

impl Families {
    fn family(&mut self, (name, help): (&str, &str), kind: MetricType) -> &mut MetricFamily {
        if let Some(i) = self.0.iter().position(|f| f.name() == name) {
            return &mut self.0[i];
        }
        let mut f = MetricFamily::default();
        f.set_name(name.to_string());
        f.set_help(help.to_string());
        f.set_field_type(kind);
        self.0.push(f);
        self.0.last_mut().expect("just pushed")
    }

    /// Adds a gauge sample.
    pub fn gauge(&mut self, def: (&str, &str), labels: &[(&str, &str)], value: f64) {
        let mut g = Gauge::default();
        g.set_value(value);
        let mut m = metric(labels);
        m.set_gauge(g);
        self.family(def, MetricType::GAUGE).mut_metric().push(m);
    }

    /// Declares a family even if it gets no samples (so HELP/TYPE are stable).
    pub fn declare(&mut self, def: (&str, &str), kind: MetricType) {
        self.family(def, kind);
    }

    /// Adds a counter sample.
    pub fn counter(&mut self, def: (&str, &str), labels: &[(&str, &str)], value: f64) {
        let mut c = Counter::default();
        c.set_value(value);
        let mut m = metric(labels);
        m.set_counter(c);
        self.family(def, MetricType::COUNTER).mut_metric().push(m);
    }

    fn histogram(&mut self, def: (&str, &str), labels: &[(&str, &str)], data: &crate::state::Histogram) {
        let mut h = Histogram::default();
        let mut cumulative = 0;
        let mut buckets = Vec::with_capacity(data.bounds.len());
        for (i, ub) in data.bounds.iter().enumerate() {
            cumulative += data.counts.get(i).copied().unwrap_or(0);
            let mut b = Bucket::default();
            b.set_upper_bound(*ub);
            b.set_cumulative_count(cumulative);
            buckets.push(b);
        }
        h.set_bucket(buckets);
        h.set_sample_count(data.count());
        h.set_sample_sum(data.sum);
        let mut m = metric(labels);
        m.set_histogram(h);
        self.family(def, MetricType::HISTOGRAM).mut_metric().push(m);
    }

    /// Encodes as text 0.0.4, dropping families without samples.
    pub fn encode(self) -> String {
        let fams: Vec<MetricFamily> = self.0.into_iter().filter(|f| !f.get_metric().is_empty()).collect();
        let mut out = String::new();
        // Encoding into a String cannot fail for well-formed families.
        if let Err(e) = prometheus::TextEncoder::new().encode_utf8(&fams, &mut out) {
            tracing::error!(error = %e, "encoding metrics failed");
        }
        out
    }
}

fn metric(labels: &[(&str, &str)]) -> Metric {
    let mut m = Metric::default();
    m.set_label(
        labels
            .iter()
            .map(|(k, v)| {
                let mut l = LabelPair::default();
                l.set_name(k.to_string());
                l.set_value(v.to_string());
                l
            })
            .collect(),
    );
    m
}

fn bool_f(b: bool) -> f64 {
    if b { 1.0 } else { 0.0 }
}

/// Adds one probe's series (everything but service health) to `f`.
pub fn add_probe(f: &mut Families, sub: &str, probe: &str, p: &ProbeState) {
    use names::*;
    let l = [("subscription", sub), ("probe", probe)];
    if let Some(ok) = p.last_success {
        f.gauge(PROBE_SUCCESS, &l, bool_f(ok));
    }
    f.histogram(PROBE_DURATION, &l, &p.durations);
    f.counter(PROBE_RUNS, &l, p.runs as f64);
    for (reason, n) in &p.failures {
        f.counter(PROBE_FAILURES, &[("subscription", sub), ("probe", probe), ("reason", reason.as_str())], *n as f64);
    }
    f.counter(PROBE_THROTTLED, &l, p.throttled as f64);
    if let Some(t) = p.last_run {
        f.gauge(PROBE_LAST_RUN, &l, t);
    }
    if let Some(t) = p.last_success_at {
        f.gauge(PROBE_LAST_SUCCESS, &l, t);
    }
    if let (Some(false), Some(r)) = (p.last_success, p.last_failure) {
        f.gauge(PROBE_LAST_FAILURE_REASON, &[("subscription", sub), ("probe", probe), ("reason", r.as_str())], 1.0);
    }
    if let Some(h) = &p.mail_delivery {
        f.histogram(MAIL_DELIVERY, &l, h);
    }
}

/// Adds a subscription's message center series. The known categories and
/// severities always appear (0 when there are none), so queries need no
/// `or vector(0)`.
pub fn add_message_center(f: &mut Families, sub: &str, mc: &MessageCenterSnapshot) {
    use names::*;
    for ((category, severity), n) in mc.counts_with_zeros() {
        f.gauge(
            MESSAGE_CENTER_POSTS,
            &[("subscription", sub), ("category", &category), ("severity", &severity)],
            n as f64,
        );
    }
    if let Some(t) = mc.next_action {
        f.gauge(MESSAGE_CENTER_NEXT_ACTION, &[("subscription", sub)], t);
    }
}

/// Adds a subscription's service-health series.
pub fn add_health(f: &mut Families, sub: &str, h: &crate::probe::HealthSnapshot) {
    use names::*;
    for s in &h.services {
        f.gauge(SERVICE_HEALTH_STATUS, &[("subscription", sub), ("service_name", &s.name), ("status", &s.status)], 1.0);
        f.gauge(
            SERVICE_OPERATIONAL,
            &[("subscription", sub), ("service_name", &s.name)],
            bool_f(is_operational(&s.status)),
        );
    }
    // Services without open issues get an explicit 0 so queries need no `or vector(0)`.
    let mut names_seen: Vec<&str> = h.services.iter().map(|s| s.name.as_str()).collect();
    for (service, _) in h.issues.keys() {
        if !names_seen.contains(&service.as_str()) {
            names_seen.push(service);
        }
    }
    for service in names_seen {
        for class in ["incident", "advisory"] {
            let n = h.issues.get(&(service.to_string(), class.to_string())).copied().unwrap_or(0);
            f.gauge(
                SERVICE_ISSUES_ACTIVE,
                &[("subscription", sub), ("service_name", service), ("classification", class)],
                n as f64,
            );
        }
        if let Some(n) = h.issues.get(&(service.to_string(), "unknown".to_string())) {
            f.gauge(
                SERVICE_ISSUES_ACTIVE,
                &[("subscription", sub), ("service_name", service), ("classification", "unknown")],
                *n as f64,
            );
        }
    }
}

/// The whole `/metrics` page.
pub fn encode(snapshot: &Snapshot, build: &BuildInfo) -> String {
    use names::*;
    let mut f = Families::default();
    // Probe families first, in contract order.
    f.declare(PROBE_SUCCESS, MetricType::GAUGE);
    f.declare(PROBE_DURATION, MetricType::HISTOGRAM);
    for (name, st) in &snapshot.subscriptions {
        for (probe, p) in &st.probes {
            add_probe(&mut f, name, probe, p);
        }
    }
    for (name, st) in &snapshot.subscriptions {
        if let Some(h) = &st.health {
            add_health(&mut f, name, h);
        }
    }
    for (name, st) in &snapshot.subscriptions {
        if let Some(mc) = &st.message_center {
            add_message_center(&mut f, name, mc);
        }
    }
    for (name, st) in &snapshot.subscriptions {
        f.gauge(
            SUBSCRIPTION_INFO,
            &[
                ("subscription", name),
                ("tenant_id", &st.tenant_id),
                ("cloud", &st.cloud),
                ("credential", &st.credential),
            ],
            1.0,
        );
        for admin in &st.admins {
            f.gauge(SUBSCRIPTION_ADMIN_INFO, &[("subscription", name), ("admin", admin)], 1.0);
        }
    }
    for (name, st) in &snapshot.subscriptions {
        f.counter(TOKEN_REQUESTS, &[("subscription", name)], st.token_requests as f64);
        for (reason, n) in &st.token_failures {
            f.counter(TOKEN_FAILURES, &[("subscription", name), ("reason", reason.as_str())], *n as f64);
        }
    }
    for (name, st) in snapshot.subscriptions.iter().filter(|(_, st)| st.delegated) {
        f.gauge(CREDENTIAL_REAUTH_REQUIRED, &[("subscription", name)], bool_f(st.reauth_required()));
    }
    for (cred, ts) in &snapshot.credential_expiry {
        f.gauge(CREDENTIAL_EXPIRY, &[("credential", cred)], *ts as f64);
    }
    add_discovery(&mut f, snapshot);
    f.gauge(
        BUILD_INFO,
        &[("version", build.version), ("revision", build.revision), ("rustc_version", build.rustc_version)],
        1.0,
    );
    f.gauge(RELOAD_OK, &[], bool_f(snapshot.reload.last_successful));
    f.gauge(RELOAD_TS, &[], snapshot.reload.last_success_at);
    f.encode()
}

/// The discovery series and the relationship end dates.
fn add_discovery(f: &mut Families, snapshot: &Snapshot) {
    use names::*;
    for (name, d) in &snapshot.discovery {
        let l = [("discovery", name.as_str())];
        if let Some(t) = d.last_success_at {
            f.gauge(DISCOVERY_LAST_SUCCESS, &l, t);
        }
        f.gauge(DISCOVERY_SUBSCRIPTIONS, &l, d.subscriptions as f64);
        f.counter(DISCOVERY_REFRESHES, &l, d.refreshes as f64);
        for (reason, n) in &d.failures {
            f.counter(DISCOVERY_FAILURES, &[("discovery", name), ("reason", reason.as_str())], *n as f64);
        }
    }
    for (sub, ts) in &snapshot.relationship_expiry {
        f.gauge(RELATIONSHIP_EXPIRY, &[("subscription", sub)], *ts as f64);
    }
}
