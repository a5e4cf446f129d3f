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

    let mut set = tokio::task::JoinSet::new();
    for (i, p) in probes.iter().enumerate() {
        let runner = app.runner().clone();
        let (s, p) = (sub.name.clone(), p.clone());
        set.spawn(async move { (i, runner.run(&s, &p, Mode::OnDemand { deadline }).await) });
    }
    let mut runs: Vec<(usize, RunRecord)> = Vec::new();
    while let Some(done) = set.join_next().await {
        if let Ok((i, Some(r))) = done {
            runs.push((i, r));
        }
    }
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

#[cfg(test)]
mod tests {
    use super::parse_query;

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
