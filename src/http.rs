//! The exporter's HTTP endpoints: `/metrics`, `/probe`, `/-/healthy`,
//! `/-/ready`, `/-/reload` and the landing page `/`.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Response, StatusCode};

use crate::app::App;
use crate::landing;
use crate::metrics::{self, Families, names};
use crate::probe::Outcome;
use crate::runner::{Mode, Origin, RunRecord};
use crate::web::{Handler, HttpRequest, HttpResponse, text};

/// Time kept back from Prometheus' scrape timeout, as blackbox_exporter does.
const SCRAPE_TIMEOUT_OFFSET: Duration = Duration::from_millis(500);
/// Per-run families in `/probe` output (not in `/metrics`).
const RUN_DURATION: (&str, &str) = ("m365mon_probe_run_duration_seconds", "Duration of this on-demand probe run.");
const RUN_THROTTLED: (&str, &str) =
    ("m365mon_probe_throttled", "1 if this on-demand run was throttled (then m365mon_probe_success is absent).");

/// The request handler for `app`.
pub fn handler(app: Arc<App>) -> Handler {
    Arc::new(move |req| {
        let app = app.clone();
        Box::pin(async move { route(app, req).await })
    })
}

fn with_type(mut r: HttpResponse, ct: &'static str) -> HttpResponse {
    r.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(ct));
    r
}

fn method_not_allowed(allow: &'static str) -> HttpResponse {
    let mut r = text(StatusCode::METHOD_NOT_ALLOWED, format!("method not allowed; use {allow}\n"));
    r.headers_mut().insert(ALLOW, HeaderValue::from_static(allow));
    r
}

fn is_get(req: &HttpRequest) -> bool {
    req.method() == Method::GET || req.method() == Method::HEAD
}

async fn route(app: Arc<App>, req: HttpRequest) -> HttpResponse {
    match req.uri().path() {
        "/metrics" if is_get(&req) => {
            let body = app.store().with(|s| metrics::encode(s, &app.build));
            with_type(Response::new(Full::new(Bytes::from(body))), metrics::CONTENT_TYPE)
        }
        "/probe" if is_get(&req) => probe(app, req).await,
        "/-/healthy" if is_get(&req) => text(StatusCode::OK, "Healthy.\n"),
        "/-/ready" if is_get(&req) => {
            if app.is_ready() {
                text(StatusCode::OK, "Ready.\n")
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, "Not ready.\n")
            }
        }
        "/-/reload" if req.method() == Method::POST || req.method() == Method::PUT => match app.reload().await {
            Ok(()) => text(StatusCode::OK, "Configuration reloaded.\n"),
            Err(e) => text(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Configuration not reloaded; the running configuration stays in force:\n{e}\n"),
            ),
        },
        "/" if is_get(&req) => {
            let html = landing::render(&app);
            with_type(Response::new(Full::new(Bytes::from(html))), "text/html; charset=utf-8")
        }
        "/metrics" | "/probe" | "/-/healthy" | "/-/ready" | "/" => method_not_allowed("GET, HEAD"),
        "/-/reload" => method_not_allowed("POST, PUT"),
        other => text(StatusCode::NOT_FOUND, format!("not found: {other}; see / for the endpoints\n")),
    }
}

struct ProbeQuery {
    subscription: String,
    probe: Option<String>,
    debug: bool,
}

fn parse_query(query: &str) -> Result<ProbeQuery, String> {
    let mut subscription = None;
    let mut probe = None;
    let mut debug = false;
    for (k, v) in url::form_urlencoded::parse(query.as_bytes()) {
        match k.as_ref() {
            "subscription" if subscription.is_none() => subscription = Some(v.into_owned()),
            "probe" if probe.is_none() => probe = Some(v.into_owned()),
            "debug" => {
                debug = match v.as_ref() {
                    "true" | "1" => true,
                    "false" | "0" => false,
                    _ => {
                        return Err(format!("debug must be true or false, not {:?}", truncate(&v, 40)));
                    }
                }
            }
            "subscription" | "probe" => return Err(format!("{k} given more than once")),
            // Unknown parameters are ignored: Prometheus may add its own `params`.
            _ => {}
        }
    }
    let subscription = subscription.filter(|s| !s.is_empty()).ok_or("subscription parameter is missing")?;
    Ok(ProbeQuery { subscription, probe: probe.filter(|p| !p.is_empty()), debug })
}

fn truncate(s: &str, n: usize) -> String {
    s.chars().take(n).collect()
}

fn list(names: impl Iterator<Item = String>) -> String {
    let all: Vec<String> = names.collect();
    let mut shown: Vec<String> = all.iter().take(20).cloned().collect();
    if all.len() > 20 {
        shown.push(format!("... ({} in all)", all.len()));
    }
    shown.join(", ")
}

async fn probe(app: Arc<App>, req: HttpRequest) -> HttpResponse {
    let q = match parse_query(req.uri().query().unwrap_or("")) {
        Ok(q) => q,
        Err(e) => return text(StatusCode::BAD_REQUEST, format!("{e}\n")),
    };
    let config = app.config();
    let Some(sub) = config.subscriptions.iter().find(|s| s.name == q.subscription) else {
        return text(
            StatusCode::BAD_REQUEST,
            format!(
                "unknown subscription {:?}; configured: {}\n",
                truncate(&q.subscription, 100),
                list(config.subscriptions.iter().map(|s| s.name.clone()))
            ),
        );
    };
    let probes: Vec<String> = match &q.probe {
        Some(p) if sub.probes.iter().any(|c| &c.name == p) => vec![p.clone()],
        Some(p) => {
            return text(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown probe {:?} for subscription {}; configured: {}\n",
                    truncate(p, 100),
                    sub.name,
                    list(sub.probes.iter().map(|c| c.name.clone()))
                ),
            );
        }
        None => sub.probes.iter().map(|p| p.name.clone()).collect(),
    };
    let deadline = req
        .headers()
        .get("x-prometheus-scrape-timeout-seconds")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        // `try_`: a finite but huge value (e.g. 1e300) would make
        // `from_secs_f64` panic; such a header adds no bound.
        .and_then(|s| Duration::try_from_secs_f64(s).ok())
        .map(|s| s.saturating_sub(SCRAPE_TIMEOUT_OFFSET).max(Duration::from_millis(100)));

    let runs = probes.iter().map(|p| {
        let runner = app.runner().clone();
        let (s, p) = (sub.name.clone(), p.clone());
        async move { runner.run(&s, &p, Mode::OnDemand { deadline }).await }
    });
    let mut runs = run_each(runs, &sub.name, &probes).await;
    runs.sort_by_key(|(i, _)| *i);

    let mut f = Families::default();
    for (i, r) in runs.iter().filter(|(_, r)| r.origin != Origin::NoResult) {
        let l = [("subscription", sub.name.as_str()), ("probe", probes[*i].as_str())];
        match &r.outcome {
            Outcome::Throttled { .. } => f.gauge(RUN_THROTTLED, &l, 1.0),
            o => {
                f.gauge(names::PROBE_SUCCESS, &l, if *o == Outcome::Success { 1.0 } else { 0.0 });
                f.gauge(RUN_THROTTLED, &l, 0.0);
                if let Outcome::Failure(reason) = o {
                    f.gauge(
                        names::PROBE_LAST_FAILURE_REASON,
                        &[("subscription", &sub.name), ("probe", &probes[*i]), ("reason", reason.as_str())],
                        1.0,
                    );
                }
            }
        }
        f.gauge(RUN_DURATION, &l, r.duration.as_secs_f64());
        if let Some(h) = &r.health {
            metrics::add_health(&mut f, &sub.name, h);
        }
        if let Some(mc) = &r.message_center {
            metrics::add_message_center(&mut f, &sub.name, mc);
        }
    }
    f.gauge(
        names::SUBSCRIPTION_INFO,
        &[
            ("subscription", &sub.name),
            ("tenant_id", &sub.tenant_id),
            ("cloud", config.global.cloud.as_str()),
            ("credential", &sub.credential),
        ],
        1.0,
    );
    for admin in &sub.admins {
        f.gauge(names::SUBSCRIPTION_ADMIN_INFO, &[("subscription", &sub.name), ("admin", admin)], 1.0);
    }
    let exposition = f.encode();
    if !q.debug {
        return with_type(Response::new(Full::new(Bytes::from(exposition))), metrics::CONTENT_TYPE);
    }
    let mut out = String::new();
    for (i, r) in &runs {
        out.push_str(&format!("Logs for probe {} of subscription {}:\n", probes[*i], sub.name));
        for line in &r.log {
            out.push_str(line);
            out.push('\n');
        }
        out.push('\n');
    }
    out.push_str("Metrics that would have been returned:\n");
    out.push_str(&exposition);
    out.push_str("\nEffective configuration (secrets redacted):\n");
    out.push_str(&config.render_redacted(sub));
    text(StatusCode::OK, out)
}

/// Runs `runs` (one per name in `probes`) concurrently, each in a task of
/// its own: (index, record) of those that ran, in completion order. A run
/// that panicked (a bug) is reported as a failure with reason
/// `invalid_response` rather than left out of the answer.
async fn run_each<F>(runs: impl Iterator<Item = F>, sub: &str, probes: &[String]) -> Vec<(usize, RunRecord)>
where
    F: std::future::Future<Output = Option<RunRecord>> + Send + 'static,
{
    let mut set = tokio::task::JoinSet::new();
    let mut task_index = std::collections::HashMap::new();
    for (i, run) in runs.enumerate() {
        let task = set.spawn(async move { (i, run.await) });
        task_index.insert(task.id(), i);
    }
    let mut done = Vec::new();
    while let Some(joined) = set.join_next_with_id().await {
        match joined {
            Ok((_, (i, Some(r)))) => done.push((i, r)),
            // Removed by a concurrent reload: nothing to report.
            Ok((_, (_, None))) => {}
            Err(e) => {
                if let Some(&i) = task_index.get(&e.id()) {
                    done.push((i, panicked_run(sub, probes.get(i).map_or("", String::as_str))));
                }
            }
        }
    }
    done
}

/// A run whose task panicked (a bug): reported as a failure with reason
/// `invalid_response` rather than left out of the answer.
fn panicked_run(sub: &str, probe: &str) -> RunRecord {
    // The panic message is not repeated: it may quote text from a peer.
    tracing::error!(subscription = sub, probe, "on-demand probe run panicked (a bug in m365mon, please report it)");
    RunRecord {
        outcome: Outcome::Failure(crate::probe::FailureReason::InvalidResponse),
        duration: Duration::ZERO,
        log: vec!["the run panicked (a bug in m365mon, please report it); reported as invalid_response".into()],
        health: None,
        message_center: None,
        origin: crate::runner::Origin::Ran,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_run_is_reported_as_invalid_response() {
        let record = |ms| RunRecord {
            outcome: Outcome::Success,
            duration: Duration::from_millis(ms),
            log: vec![],
            health: None,
            message_center: None,
            origin: crate::runner::Origin::Ran,
        };
        let runs: Vec<crate::runner::BoxFuture<'static, Option<RunRecord>>> = vec![
            Box::pin(async move { Some(record(1)) }),
            Box::pin(async move { panic!("bug") }),
            Box::pin(async move { None }),
        ];
        let probes: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let mut done = run_each(runs.into_iter(), "contoso", &probes).await;
        done.sort_by_key(|(i, _)| *i);
        assert_eq!(done.len(), 2, "{done:?}");
        assert_eq!((done[0].0, &done[0].1.outcome), (0, &Outcome::Success));
        assert_eq!(done[1].0, 1);
        assert_eq!(done[1].1.outcome, Outcome::Failure(crate::probe::FailureReason::InvalidResponse));
        assert!(done[1].1.log[0].contains("panicked"), "{:?}", done[1].1.log);
    }

    #[test]
    fn query_parsing() {
        let q = parse_query("subscription=contoso&probe=exchange&debug=true").unwrap();
        assert_eq!((q.subscription.as_str(), q.probe.as_deref(), q.debug), ("contoso", Some("exchange"), true));
        let q = parse_query("subscription=a%20b&module=x").unwrap();
        assert_eq!((q.subscription.as_str(), q.probe, q.debug), ("a b", None, false));
        assert_eq!(parse_query("probe=x").err().unwrap(), "subscription parameter is missing");
        assert_eq!(parse_query("subscription=").err().unwrap(), "subscription parameter is missing");
        assert_eq!(parse_query("subscription=a&debug=yes").err().unwrap(), "debug must be true or false, not \"yes\"");
        assert_eq!(parse_query("subscription=a&subscription=b").err().unwrap(), "subscription given more than once");
    }
}
