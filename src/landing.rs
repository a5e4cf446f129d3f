//! The landing page: name, version, links, and each subscription's probes
//! with their last result. It shows nothing secret: the store holds none.

use std::fmt::Write;
use std::time::{Duration, UNIX_EPOCH};

use crate::app::App;
use crate::probe::FailureReason;
use crate::state::{ProbeState, unix_now};

/// Escapes text for HTML element content and attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn when(ts: Option<f64>, now: f64) -> String {
    match ts {
        Some(t) => {
            let at = httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs_f64(t.max(0.0)));
            format!("{}s ago ({at})", (now - t).max(0.0).round() as i64)
        }
        None => "never".into(),
    }
}

fn result_cell(p: &ProbeState) -> (&'static str, String) {
    match (p.last_success, p.last_throttle) {
        (_, Some(ra)) => ("throttled", format!("throttled, retry after {}s", ra.as_secs())),
        (Some(true), None) => ("ok", "success".into()),
        (Some(false), None) => ("fail", "failure".into()),
        (None, None) => ("pending", "not run yet".into()),
    }
}

/// Renders the page.
pub fn render(app: &App) -> String {
    let snap = app.store().snapshot();
    let now = unix_now();
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>m365mon</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:.25em .5em;text-align:left}}
.ok{{color:#176f2c}}.fail{{color:#b00020;font-weight:bold}}.throttled{{color:#a65e00}}.pending{{color:#666}}</style></head>
<body><h1>m365mon</h1>
<p>Prometheus exporter for Microsoft 365 tenants. Version {} (revision {}, rustc {}).</p>
<ul><li><a href="metrics">Metrics</a></li><li><a href="-/healthy">Health</a></li><li><a href="-/ready">Readiness</a></li>
<li>Probe on demand: <code>probe?subscription=NAME[&amp;probe=PROBE][&amp;debug=true]</code></li></ul>
<p>Configuration last loaded {}; last reload {}.</p>
"#,
        escape(app.build.version),
        escape(app.build.revision),
        escape(app.build.rustc_version),
        when(Some(snap.reload.last_success_at), now),
        if snap.reload.last_successful { "succeeded" } else { "FAILED (the previous configuration stays in force)" },
    );
    sign_in_actions(&mut h, app, &snap);
    discovery_table(&mut h, &snap, now);
    let _ = writeln!(h, "<h2>Subscriptions ({})</h2>", snap.subscriptions.len());
    if snap.subscriptions.is_empty() {
        h.push_str("<p>No subscriptions are configured.</p>\n");
    }
    for (name, st) in &snap.subscriptions {
        let _ = writeln!(
            h,
            "<h3 id=\"{0}\">{0}</h3>\n<p>Tenant <code>{1}</code>, cloud {2}, credential {3}; admins: {4}. <a href=\"probe?subscription={0}&amp;debug=true\">Probe now (debug)</a></p>",
            escape(name),
            escape(&st.tenant_id),
            escape(&st.cloud),
            escape(&st.credential),
            escape(&st.admins.join(", ")),
        );
        h.push_str("<table><tr><th>Probe</th><th>Type</th><th>Last result</th><th>Latency</th><th>Failure reason</th><th>Last run</th><th>Last success</th></tr>\n");
        for (probe, p) in &st.probes {
            let (class, result) = result_cell(p);
            let _ = writeln!(
                h,
                "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(probe),
                escape(&p.type_name),
                escape(&result),
                p.last_duration.map(|d| format!("{:.3} s", d.as_secs_f64())).unwrap_or_else(|| "-".into()),
                p.last_failure.filter(|_| p.last_success == Some(false)).map(|r| r.as_str()).unwrap_or("-"),
                escape(&when(p.last_run, now)),
                escape(&when(p.last_success_at, now)),
            );
        }
        h.push_str("</table>\n");
        if let Some(health) = &st.health {
            let bad: Vec<String> = health
                .services
                .iter()
                .filter(|s| !crate::probe::is_operational(&s.status))
                .map(|s| format!("{} ({})", s.name, s.status))
                .collect();
            let _ = writeln!(
                h,
                "<p>Microsoft service health: {}; {} unresolved issues.</p>",
                if bad.is_empty() { "all services operational".to_string() } else { escape(&bad.join(", ")) },
                health.issues.values().sum::<u64>()
            );
        }
    }
    h.push_str("</body></html>\n");
    h
}

/// Partner discovery entries: what each contributes and whether its last refresh worked.
fn discovery_table(h: &mut String, snap: &crate::state::Snapshot, now: f64) {
    if snap.discovery.is_empty() {
        return;
    }
    h.push_str("<h2 id=\"discovery\">Partner discovery</h2>\n<table><tr><th>Discovery</th><th>Subscriptions</th><th>Last refresh</th><th>Last success</th><th>Failed refreshes</th></tr>\n");
    for (name, d) in &snap.discovery {
        let (class, last) = match d.last_failure {
            Some(r) => ("fail", format!("failed: {} (the last good list stays)", r.as_str())),
            None if d.last_success_at.is_some() => ("ok", "succeeded".to_string()),
            None => ("pending", "not run yet".to_string()),
        };
        let _ = writeln!(
            h,
            "<tr><td>{}</td><td>{}</td><td class=\"{class}\">{}</td><td>{}</td><td>{}</td></tr>",
            escape(name),
            d.subscriptions,
            escape(&last),
            escape(&when(d.last_success_at, now)),
            d.failures.values().sum::<u64>(),
        );
    }
    h.push_str("</table>\n");
}

/// Subscriptions that need someone to act: a new `m365mon login`, or admin consent.
fn sign_in_actions(h: &mut String, app: &App, snap: &crate::state::Snapshot) {
    let reauth: Vec<&String> =
        snap.subscriptions.iter().filter(|(_, st)| st.reauth_required()).map(|(n, _)| n).collect();
    if !reauth.is_empty() {
        h.push_str("<h2 id=\"sign-in-needed\">Sign-in needed</h2>\n<p>The delegated sign-in of these subscriptions is missing or was rejected (expired, revoked or consent withdrawn). Run the command on the exporter's host, with the same <code>--config.file</code> and <code>--storage.path</code>; the running exporter picks the new sign-in up without a restart.</p>\n<ul>\n");
        for name in reauth {
            let _ = writeln!(
                h,
                "<li><a href=\"#{0}\">{0}</a>: <code>m365mon login --subscription {0}</code></li>",
                escape(name)
            );
        }
        h.push_str("</ul>\n");
    }
    let config = app.config();
    let not_consented: Vec<(&String, String)> = snap
        .subscriptions
        .iter()
        .filter(|(_, st)| st.sign_in_failure == Some(FailureReason::NotConsented))
        .filter_map(|(name, st)| {
            let sub = config.subscriptions.iter().find(|s| &s.name == name)?;
            let cred = config.credential_of(sub)?;
            Some((
                name,
                crate::consent::admin_consent_url(&config.global.authority_host, &st.tenant_id, &cred.client_id),
            ))
        })
        .collect();
    if !not_consented.is_empty() {
        h.push_str("<h2 id=\"consent-needed\">Consent needed</h2>\n<p>The app is not consented in these tenants (sign-in fails with <code>not_consented</code>). An administrator of the tenant opens the link; <code>m365mon consent-url --subscription NAME</code> (for a discovered subscription: <code>--credential CREDENTIAL --tenant TENANT</code>) lists the permissions to add to the app first.</p>\n<ul>\n");
        for (name, url) in not_consented {
            let _ =
                writeln!(h, "<li><a href=\"#{0}\">{0}</a>: <a href=\"{1}\">{1}</a></li>", escape(name), escape(&url));
        }
        h.push_str("</ul>\n");
    }
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escapes_markup() {
        assert_eq!(escape("<a href=\"x\">&'"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;");
    }
}
