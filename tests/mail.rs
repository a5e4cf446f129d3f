//! The `mail_roundtrip` and `message_center` probes against the in-process
//! simulator: delivery measured, dropped mail, cross-subscription reading,
//! cleanup, send failures, the global concurrency limit, the per-mailbox
//! limit, message center counts, and the exposition under promtool.

#[path = "common/tools.rs"]
mod tools;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use m365mon::config::{Config, parse_str};
use m365mon::graph::{GraphClient, MAILBOX_CONCURRENCY};
use m365mon::metrics::{BuildInfo, encode};
use m365mon::probe::{FailureReason, MAIL_DELIVERY_BUCKETS, Outcome, PROBE_HEADER, SUBJECT_PREFIX};
use m365mon::runner::{Mode, Origin, Runner};
use m365mon::sim::{self, Fault, SimHandle, Target, World};
use m365mon::state::Store;
use reqwest::Client;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::time::Instant;

const APP: &str = "a0000000-0000-4000-8000-000000000001";
const SECRET: &str = "s3cr3t~value+/=";
const ALPHA: &str = "alpha.onmicrosoft.com";
const BETA: &str = "beta.onmicrosoft.com";
const SENDER: &str = "monitor@alpha.example";
const RCPT: &str = "rcpt@alpha.example";
const BETA_RCPT: &str = "monitor@beta.example";
/// 2099-01-01T00:00:00Z, the earliest action date ahead in the test world.
const NEXT_ACTION: f64 = 4_070_908_800.0;

/// Two tenants where the app may send and read mail; Alpha has 150 message
/// center posts (two pages of 100), Beta reads mail only.
fn world() -> World {
    let mut messages = String::new();
    for i in 0..150 {
        let (category, severity) = match i % 3 {
            0 => ("planForChange", "normal"),
            1 => ("stayInformed", "high"),
            _ => ("preventOrFixIssue", "critical"),
        };
        let action = match i {
            7 => ", action_required_by: \"2099-01-01T00:00:00Z\"",
            8 => ", action_required_by: \"2099-06-01T00:00:00Z\"",
            9 => ", action_required_by: \"2020-01-01T00:00:00Z\"",
            _ => "",
        };
        messages.push_str(&format!(
            "      - {{id: MC{i:06}, title: Post {i}, category: {category}, severity: {severity}, \
             start: \"2025-01-01T00:00:00Z\"{action}}}\n"
        ));
    }
    messages
        .push_str("      - {id: MC999999, title: New kind, category: somethingNew, start: \"2025-01-01T00:00:00Z\"}\n");
    let yaml = format!(
        "apps:
  - client_id: {APP}
    secrets:
      - value: \"{SECRET}\"
tenants:
  - id: 10000000-0000-4000-8000-000000000001
    domains: [{ALPHA}, alpha.example]
    consents:
      - client_id: {APP}
        roles: [Organization.Read.All, Mail.ReadWrite, Mail.Send, ServiceMessage.Read.All]
    users:
      - upn: {SENDER}
      - upn: {RCPT}
    mail: {{delivery_delay_seconds: 3}}
    messages:
{messages}  - id: 20000000-0000-4000-8000-000000000002
    domains: [{BETA}, beta.example]
    consents:
      - client_id: {APP}
        roles: [Mail.ReadWrite]
    users:
      - upn: {BETA_RCPT}
    mail: {{delivery_delay_seconds: 7}}
"
    );
    World::from_yaml_str(&yaml, "mail-world.yml").expect("test world loads")
}

async fn start_sim() -> SimHandle {
    sim::start(TcpListener::bind("127.0.0.1:0").await.expect("bind"), world()).await
}

/// A config against `h` with the given probes for subscription `alpha` and
/// a subscription `beta` that only signs in.
fn config(h: &SimHandle, max_concurrent: usize, alpha_probes: &str) -> Arc<Config> {
    let text = format!(
        "global:
  authority_host: {}
  graph_endpoint: {}
  max_concurrent_probes: {max_concurrent}
credentials:
  app:
    client_id: {APP}
    client_secret: \"{SECRET}\"
subscriptions:
  - name: alpha
    tenant_id: {ALPHA}
    credential: app
    probes:
{alpha_probes}  - name: beta
    tenant_id: {BETA}
    credential: app
    probes:
      - type: auth
",
        h.authority_host(),
        h.graph_endpoint()
    );
    Arc::new(parse_str(&text, "mail-test.yml", Path::new(".")).unwrap_or_else(|e| panic!("{e}")))
}

const ROUNDTRIP: &str = "      - type: mail_roundtrip
        name: mail
        from: monitor@alpha.example
        to: rcpt@alpha.example
        interval: 10m
        timeout: 2m
      - type: organization
      - type: message_center
";

fn runner(config: Arc<Config>) -> Runner {
    let store = Arc::new(Store::new());
    store.sync_config(&config);
    Runner::new(Client::new(), config, store)
}

/// An app token for `tenant`, to look into mailboxes as a test.
async fn token(h: &SimHandle, tenant: &str) -> String {
    let url = format!("{}/{tenant}/oauth2/v2.0/token", h.authority_host());
    let scope = format!("{}/.default", h.graph_endpoint());
    let form = [("client_id", APP), ("client_secret", SECRET), ("scope", &scope), ("grant_type", "client_credentials")];
    let v: Value = Client::new().post(url).form(&form).send().await.unwrap().json().await.unwrap();
    v["access_token"].as_str().expect("token").to_string()
}

/// The messages in `user`'s `folder` (subject and probe header selected).
async fn folder(h: &SimHandle, tenant: &str, user: &str, folder: &str) -> Vec<Value> {
    let url = format!(
        "{}/v1.0/users/{user}/mailFolders/{folder}/messages?$select=subject,internetMessageHeaders",
        h.graph_endpoint()
    );
    let r = Client::new().get(url).bearer_auth(token(h, tenant).await).send().await.unwrap();
    assert_eq!(r.status(), 200, "listing {user}/{folder}");
    let v: Value = r.json().await.unwrap();
    v["value"].as_array().expect("value").clone()
}

/// Every folder of the probe's mailboxes is empty again.
async fn assert_no_probe_messages(h: &SimHandle, mailboxes: &[(&str, &str)]) {
    for (tenant, user) in mailboxes {
        for f in ["inbox", "sentitems", "drafts"] {
            let left = folder(h, tenant, user, f).await;
            assert!(left.is_empty(), "{user}/{f} still holds {left:?}");
        }
    }
}

fn deletes(h: &SimHandle) -> Vec<String> {
    h.requests().into_iter().filter(|r| r.method == "DELETE" && r.status == Some(204)).map(|r| r.path).collect()
}

/// Delivery after the tenant's 3 s delay is measured as 3 s (Exchange's
/// stamps, not the 5 s poll granularity), recorded as the probe's duration
/// and in the delivery histogram, and both copies are deleted.
#[tokio::test(start_paused = true)]
async fn delivered_mail_is_measured_and_cleaned_up() {
    let h = start_sim().await;
    let runner = runner(config(&h, 4, ROUNDTRIP));
    let rec = runner.run("alpha", "mail", Mode::Scheduled).await.expect("configured");
    assert_eq!(rec.outcome, Outcome::Success, "{:#?}", rec.log);
    assert_eq!(rec.duration, Duration::from_secs(3));

    let snap = runner.store().snapshot();
    let p = &snap.subscriptions["alpha"].probes["mail"];
    assert_eq!(p.last_success, Some(true));
    assert_eq!(p.last_duration, Some(Duration::from_secs(3)));
    let hist = p.mail_delivery.as_ref().expect("delivery histogram");
    assert_eq!(hist.count(), 1);
    assert_eq!(hist.sum, 3.0);
    assert_eq!(hist.bounds, &MAIL_DELIVERY_BUCKETS[..]);
    assert_eq!(*hist.bounds.last().unwrap(), 600.0);

    // The recipient's copy and the sender's Sent Items copy were deleted.
    let deleted = deletes(&h);
    assert_eq!(deleted.len(), 2, "{deleted:?}");
    assert!(deleted.iter().any(|p| p.contains(&format!("/users/{RCPT}/messages/"))), "{deleted:?}");
    assert!(deleted.iter().any(|p| p.contains(&format!("/users/{SENDER}/messages/"))), "{deleted:?}");
    assert_no_probe_messages(&h, &[(ALPHA, SENDER), (ALPHA, RCPT)]).await;

    // The inbox was looked up by internetMessageId, quoted and encoded.
    let polls: Vec<_> = h.requests().into_iter().filter(|r| r.path.ends_with("/mailFolders/inbox/messages")).collect();
    let q = polls[0].query.clone().unwrap_or_default();
    assert!(q.contains("$filter=internetMessageId%20eq%20%27%3CSIM"), "{q}");
}

/// Mail accepted but never delivered: `not_delivered` after the timeout,
/// the run gives up its concurrency slot while waiting, the message is
/// recognisable while it exists, and the sender's copy is deleted.
#[tokio::test(start_paused = true)]
async fn dropped_mail_is_not_delivered_and_recognisable() {
    let h = start_sim().await;
    h.set_mail_delivery(ALPHA, Duration::from_secs(1), true);
    let runner = runner(config(&h, 4, ROUNDTRIP));
    let started = Instant::now();
    let task = tokio::spawn({
        let runner = runner.clone();
        async move { runner.run("alpha", "mail", Mode::Scheduled).await }
    });
    tokio::time::sleep(Duration::from_secs(30)).await;
    let sent = folder(&h, ALPHA, SENDER, "sentitems").await;
    assert_eq!(sent.len(), 1, "{sent:?}");
    let subject = sent[0]["subject"].as_str().unwrap();
    assert!(subject.starts_with(&format!("{SUBJECT_PREFIX} ")), "{subject}");
    let headers = sent[0]["internetMessageHeaders"].as_array().unwrap();
    assert!(headers.iter().any(|x| x["name"] == PROBE_HEADER && subject.ends_with(x["value"].as_str().unwrap())));

    let rec = task.await.unwrap().expect("configured");
    assert_eq!(rec.outcome, Outcome::Failure(FailureReason::NotDelivered), "{:#?}", rec.log);
    // It waited the 2 minutes of its timeout, not the 15 s global default.
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(120) && waited < Duration::from_secs(130), "{waited:?}");
    let snap = runner.store().snapshot();
    let p = &snap.subscriptions["alpha"].probes["mail"];
    assert_eq!(p.failures.get(&FailureReason::NotDelivered), Some(&1));
    assert_eq!(p.mail_delivery.as_ref().unwrap().count(), 0);
    assert_no_probe_messages(&h, &[(ALPHA, SENDER), (ALPHA, RCPT)]).await;
}

/// The recipient is in another tenant: read with the other subscription's
/// sign-in it works (7 s delay there); with the sender's own it cannot find
/// the mailbox.
#[tokio::test(start_paused = true)]
async fn cross_subscription_round_trip() {
    let h = start_sim().await;
    let probes = format!(
        "      - type: mail_roundtrip
        name: cross
        from: {SENDER}
        to: {BETA_RCPT}
        to_subscription: beta
        interval: 10m
      - type: mail_roundtrip
        name: own-sign-in
        from: {SENDER}
        to: {BETA_RCPT}
        interval: 10m
"
    );
    let runner = runner(config(&h, 4, &probes));
    let rec = runner.run("alpha", "cross", Mode::Scheduled).await.expect("configured");
    assert_eq!(rec.outcome, Outcome::Success, "{:#?}", rec.log);
    assert_eq!(rec.duration, Duration::from_secs(7));
    // The reader's sign-in is counted for beta.
    assert!(runner.store().snapshot().subscriptions["beta"].token_requests >= 1);
    assert_no_probe_messages(&h, &[(ALPHA, SENDER), (BETA, BETA_RCPT)]).await;
    let reads: Vec<_> = h
        .requests()
        .into_iter()
        .filter(|r| r.path.contains(&format!("/users/{BETA_RCPT}/")))
        .map(|r| r.tenant)
        .collect();
    assert!(!reads.is_empty() && reads.iter().all(|t| t.as_deref() == Some("20000000-0000-4000-8000-000000000002")));

    h.clear_requests();
    let rec = runner.run("alpha", "own-sign-in", Mode::Scheduled).await.expect("configured");
    assert_eq!(rec.outcome, Outcome::Failure(FailureReason::NotFound), "{:#?}", rec.log);
    assert_no_probe_messages(&h, &[(ALPHA, SENDER)]).await;
}

/// Exchange refusing the message gives `send_failed`; permission problems keep their own reason.
#[tokio::test(start_paused = true)]
async fn send_failure_is_send_failed() {
    let h = start_sim().await;
    let runner = runner(config(&h, 4, ROUNDTRIP));
    h.set_fault(ALPHA, Target::Mail, Fault::Down);
    let rec = runner.run("alpha", "mail", Mode::Scheduled).await.expect("configured");
    assert_eq!(rec.outcome, Outcome::Failure(FailureReason::SendFailed), "{:#?}", rec.log);
    h.set_fault(ALPHA, Target::Mail, Fault::Forbidden);
    let rec = runner.run("alpha", "mail", Mode::Scheduled).await.expect("configured");
    assert_eq!(rec.outcome, Outcome::Failure(FailureReason::Forbidden), "{:#?}", rec.log);
    let p = &runner.store().snapshot().subscriptions["alpha"].probes["mail"];
    assert_eq!(p.failures.get(&FailureReason::SendFailed), Some(&1));
    h.clear_all_faults();
    assert_no_probe_messages(&h, &[(ALPHA, SENDER), (ALPHA, RCPT)]).await;
}

/// With one concurrency slot, a minutes-long round trip does not keep
/// another probe waiting: between polls it holds no slot.
#[tokio::test(start_paused = true)]
async fn a_long_round_trip_does_not_block_other_probes() {
    let h = start_sim().await;
    h.set_mail_delivery(ALPHA, Duration::from_secs(90), false);
    let runner = runner(config(&h, 1, ROUNDTRIP));
    let mail = tokio::spawn({
        let runner = runner.clone();
        async move { runner.run("alpha", "mail", Mode::Scheduled).await }
    });
    // Wait (bounded) until the message is sent.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !h.requests().iter().any(|r| r.path.ends_with("/send")) {
        assert!(Instant::now() < deadline, "the mail probe never sent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = Instant::now();
    let org = runner.run("alpha", "organization", Mode::Scheduled).await.expect("configured");
    assert_eq!(org.outcome, Outcome::Success, "{:#?}", org.log);
    assert!(before.elapsed() < Duration::from_secs(5), "waited {:?} for a slot", before.elapsed());
    assert!(!mail.is_finished(), "the round trip is still waiting for delivery");
    let rec = mail.await.unwrap().expect("configured");
    assert_eq!(rec.outcome, Outcome::Success, "{:#?}", rec.log);
    assert_eq!(rec.duration, Duration::from_secs(90));
}

/// At most four requests per mailbox at once; others wait for a slot.
#[tokio::test(start_paused = true)]
async fn mailbox_slots_are_limited_to_four() {
    let graph = GraphClient::new(Client::new(), "http://127.0.0.1:9");
    let mut held = Vec::new();
    for _ in 0..MAILBOX_CONCURRENCY {
        held.push(graph.mailbox_slot("app|tenant|Monitor@Contoso.com").await);
    }
    let fifth = tokio::time::timeout(Duration::from_secs(1), graph.mailbox_slot("app|tenant|monitor@contoso.com"));
    assert!(fifth.await.is_err(), "a fifth request to the same mailbox must wait");
    // Another mailbox is not affected.
    assert!(graph.mailbox_slot("app|tenant|other@contoso.com").await.is_some());
    held.pop();
    let fifth = tokio::time::timeout(Duration::from_secs(1), graph.mailbox_slot("app|tenant|monitor@contoso.com"));
    assert!(fifth.await.expect("a slot was freed").is_some());
}

/// Message center: 151 posts over two pages counted by category and
/// severity (unknown values as `unknown`), the earliest future action date.
#[tokio::test]
async fn message_center_counts_and_next_action() {
    let h = start_sim().await;
    let runner = runner(config(&h, 4, ROUNDTRIP));
    let rec = runner.run("alpha", "message_center", Mode::Scheduled).await.expect("configured");
    assert_eq!(rec.outcome, Outcome::Success, "{:#?}", rec.log);
    let pages = h.requests().iter().filter(|r| r.path.ends_with("/admin/serviceAnnouncement/messages")).count();
    assert_eq!(pages, 2);
    let mc = runner.store().snapshot().subscriptions["alpha"].message_center.clone().expect("recorded");
    let key = |c: &str, s: &str| (c.to_string(), s.to_string());
    assert_eq!(mc.posts[&key("planForChange", "normal")], 50);
    assert_eq!(mc.posts[&key("stayInformed", "high")], 50);
    assert_eq!(mc.posts[&key("preventOrFixIssue", "critical")], 50);
    assert_eq!(mc.posts[&key("unknown", "normal")], 1);
    assert_eq!(mc.next_action, Some(NEXT_ACTION));

    let text = encode(&runner.store().snapshot(), &build());
    for line in [
        "# TYPE m365mon_message_center_posts gauge",
        "m365mon_message_center_posts{subscription=\"alpha\",category=\"planForChange\",severity=\"normal\"} 50",
        "m365mon_message_center_posts{subscription=\"alpha\",category=\"planForChange\",severity=\"critical\"} 0",
        "m365mon_message_center_posts{subscription=\"alpha\",category=\"unknown\",severity=\"normal\"} 1",
        "m365mon_message_center_next_action_timestamp_seconds{subscription=\"alpha\"} 4070908800",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    // Without the permission: forbidden, and the last counts stay.
    h.set_fault(ALPHA, Target::ServiceHealth, Fault::Forbidden);
    let rec = runner.run("alpha", "message_center", Mode::Scheduled).await.expect("configured");
    assert_eq!(rec.outcome, Outcome::Failure(FailureReason::Forbidden));
    assert!(runner.store().snapshot().subscriptions["alpha"].message_center.is_some());
}

/// No action date ahead: the next-action series is absent.
#[tokio::test]
async fn next_action_is_absent_when_none_is_ahead() {
    let world = World::from_yaml_str(
        &format!(
            "apps: [{{client_id: {APP}, secrets: [{{value: \"{SECRET}\"}}]}}]
tenants:
  - id: 10000000-0000-4000-8000-000000000001
    domains: [{ALPHA}]
    consents: [{{client_id: {APP}, roles: [ServiceMessage.Read.All]}}]
    messages:
      - {{id: MC1, title: Old, category: planForChange, severity: normal, start: \"2020-01-01T00:00:00Z\", action_required_by: \"2020-02-01T00:00:00Z\"}}
"
        ),
        "old.yml",
    )
    .expect("world");
    let h = sim::start(TcpListener::bind("127.0.0.1:0").await.unwrap(), world).await;
    let runner = runner(config(&h, 4, "      - type: message_center\n"));
    let rec = runner.run("alpha", "message_center", Mode::Scheduled).await.expect("configured");
    assert_eq!(rec.outcome, Outcome::Success, "{:#?}", rec.log);
    let text = encode(&runner.store().snapshot(), &build());
    assert!(
        text.contains(
            "m365mon_message_center_posts{subscription=\"alpha\",category=\"planForChange\",severity=\"normal\"} 1"
        ),
        "{text}"
    );
    assert!(!text.contains("m365mon_message_center_next_action_timestamp_seconds"), "{text}");
}

fn build() -> BuildInfo {
    BuildInfo { version: "0.1.0", revision: "abc", rustc_version: "1.95.0" }
}

/// After a delivered, a dropped and a message center run, the exposition
/// passes `promtool check metrics` and carries the new families.
#[tokio::test(start_paused = true)]
async fn exposition_with_mail_and_message_center_passes_promtool() {
    let h = start_sim().await;
    let runner = runner(config(&h, 4, ROUNDTRIP));
    runner.run("alpha", "mail", Mode::Scheduled).await.expect("configured");
    h.set_mail_delivery(ALPHA, Duration::from_secs(1), true);
    runner.run("alpha", "mail", Mode::Scheduled).await.expect("configured");
    runner.run("alpha", "message_center", Mode::Scheduled).await.expect("configured");
    let text = encode(&runner.store().snapshot(), &build());
    for line in [
        "# TYPE m365mon_mail_delivery_seconds histogram",
        "m365mon_mail_delivery_seconds_bucket{subscription=\"alpha\",probe=\"mail\",le=\"2.5\"} 0",
        "m365mon_mail_delivery_seconds_bucket{subscription=\"alpha\",probe=\"mail\",le=\"5\"} 1",
        "m365mon_mail_delivery_seconds_bucket{subscription=\"alpha\",probe=\"mail\",le=\"600\"} 1",
        "m365mon_mail_delivery_seconds_count{subscription=\"alpha\",probe=\"mail\"} 1",
        "m365mon_probe_failures_total{subscription=\"alpha\",probe=\"mail\",reason=\"not_delivered\"} 1",
        "m365mon_probe_last_failure_reason{subscription=\"alpha\",probe=\"mail\",reason=\"not_delivered\"} 1",
        "m365mon_probe_runs_total{subscription=\"alpha\",probe=\"mail\"} 2",
    ] {
        assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
    }
    // Only mail probes get the delivery histogram.
    assert!(!text.contains("m365mon_mail_delivery_seconds_count{subscription=\"alpha\",probe=\"organization\"}"));
    let (ok, out) = tools::promtool_check_metrics(&text);
    assert!(ok, "promtool check metrics found problems:\n{out}\n--- exposition ---\n{text}");
}

/// A message delivered after the timeout is still deleted: the inbox is
/// looked at again after the run.
#[tokio::test(start_paused = true)]
async fn late_delivery_is_cleaned_up_after_the_run() {
    let h = start_sim().await;
    h.set_mail_delivery(ALPHA, Duration::from_secs(150), false);
    let runner = runner(config(&h, 4, ROUNDTRIP));
    let rec = runner.run("alpha", "mail", Mode::Scheduled).await.expect("configured");
    assert_eq!(rec.outcome, Outcome::Failure(FailureReason::NotDelivered), "{:#?}", rec.log);
    assert_no_probe_messages(&h, &[(ALPHA, SENDER)]).await;
    let after = Instant::now();
    // Delivered 150 s after sending, 30 s after the run; the first look after the run is 60 s after it.
    tokio::time::sleep(Duration::from_secs(40)).await;
    assert_eq!(folder(&h, ALPHA, RCPT, "inbox").await.len(), 1, "delivered late");
    while !folder(&h, ALPHA, RCPT, "inbox").await.is_empty() {
        assert!(after.elapsed() < Duration::from_secs(90), "the late message was not deleted by the first look");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// A run cut short (here dropped after 20 s, as on a reload or shutdown)
/// still deletes what it sent, including a message that arrives later.
#[tokio::test(start_paused = true)]
async fn an_interrupted_run_still_cleans_up() {
    let h = start_sim().await;
    h.set_mail_delivery(ALPHA, Duration::from_secs(40), false);
    let runner = runner(config(&h, 4, ROUNDTRIP));
    let cut = tokio::time::timeout(Duration::from_secs(20), runner.run("alpha", "mail", Mode::Scheduled)).await;
    assert!(cut.is_err(), "the run finished within 20 s");
    // The message arrives 40 s after sending, after the interrupted run's cleanup looked.
    // At 50 s: delivered; the cleanup's next look is at about 80 s.
    tokio::time::sleep(Duration::from_secs(30)).await;
    assert_eq!(folder(&h, ALPHA, RCPT, "inbox").await.len(), 1, "delivered after the run");
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let left = [
            folder(&h, ALPHA, SENDER, "sentitems").await,
            folder(&h, ALPHA, SENDER, "drafts").await,
            folder(&h, ALPHA, RCPT, "inbox").await,
        ];
        if left.iter().all(Vec::is_empty) {
            break;
        }
        assert!(Instant::now() < deadline, "left behind: {left:?}");
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

/// `/probe` never starts a round trip (it cannot finish within a scrape
/// timeout): nothing to report before the first scheduled run, then that
/// run's result, and no request to Exchange either way.
#[tokio::test(start_paused = true)]
async fn on_demand_returns_the_last_scheduled_round_trip() {
    let h = start_sim().await;
    let runner = runner(config(&h, 4, ROUNDTRIP));
    let on_demand = Mode::OnDemand { deadline: Some(Duration::from_secs(10)) };
    let rec = runner.run("alpha", "mail", on_demand).await.expect("configured");
    assert_eq!(rec.origin, Origin::NoResult, "{:#?}", rec.log);
    assert!(h.requests().is_empty(), "{:?}", h.requests());

    let scheduled = runner.run("alpha", "mail", Mode::Scheduled).await.expect("configured");
    assert_eq!(scheduled.outcome, Outcome::Success, "{:#?}", scheduled.log);
    h.clear_requests();
    let t = Instant::now();
    let rec = runner.run("alpha", "mail", on_demand).await.expect("configured");
    assert_eq!(t.elapsed(), Duration::ZERO);
    assert_eq!(
        (rec.outcome, rec.origin, rec.duration),
        (Outcome::Success, Origin::LastScheduled, Duration::from_secs(3))
    );
    assert!(rec.log.iter().any(|l| l.contains("only run on schedule")), "{:#?}", rec.log);
    assert!(h.requests().is_empty(), "{:?}", h.requests());
    // Other probes of the subscription still run on demand.
    let org = runner.run("alpha", "organization", on_demand).await.expect("configured");
    assert_eq!((org.outcome, org.origin), (Outcome::Success, Origin::Ran));
}

/// Tokens that live 60 s (renewed after 30 s) and a delivery that takes
/// 100 s: the polls after the first token expired take a renewed one from
/// the provider, so the round trip succeeds and cleans up. The simulator's
/// wall clock is kept in step with the paused tokio clock.
#[tokio::test(start_paused = true)]
async fn a_long_round_trip_renews_its_tokens() {
    let mut w = world();
    w.token_lifetime_seconds = 60;
    let h = sim::start(TcpListener::bind("127.0.0.1:0").await.expect("bind"), w).await;
    let clock = {
        let h = h.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                h.advance_clock(Duration::from_secs(1));
            }
        })
    };
    h.set_mail_delivery(ALPHA, Duration::from_secs(100), false);
    let runner = runner(config(&h, 4, ROUNDTRIP));
    let rec = runner.run("alpha", "mail", Mode::Scheduled).await.expect("configured");
    assert_eq!(rec.outcome, Outcome::Success, "{:#?}", rec.log);
    assert!(rec.duration >= Duration::from_secs(100), "{:?}", rec.duration);
    let unauthorized = h.requests().into_iter().filter(|r| r.status == Some(401)).count();
    assert_eq!(unauthorized, 0, "a request went out with an expired token");
    assert!(h.token_requests(ALPHA) >= 3, "tokens renewed: {}", h.token_requests(ALPHA));
    assert_no_probe_messages(&h, &[(ALPHA, SENDER), (ALPHA, RCPT)]).await;
    clock.abort();
}

/// An inbox that could not be read at all during the wait is reported with
/// the reason of the failed reads, not as `not_delivered`: Exchange may well
/// have delivered the message.
#[tokio::test(start_paused = true)]
async fn an_unreadable_inbox_is_not_reported_as_not_delivered() {
    let h = start_sim().await;
    let probes = format!(
        "      - type: mail_roundtrip
        name: cross
        from: {SENDER}
        to: {BETA_RCPT}
        to_subscription: beta
        interval: 10m
        timeout: 1m
"
    );
    let runner = runner(config(&h, 4, &probes));
    h.set_fault(BETA, Target::Exchange, Fault::Down);
    h.set_fault(BETA, Target::Mail, Fault::Down);
    let rec = runner.run("alpha", "cross", Mode::Scheduled).await.expect("configured");
    assert_eq!(rec.outcome, Outcome::Failure(FailureReason::Http5xx), "{:#?}", rec.log);
    assert!(rec.log.iter().any(|l| l.contains("could not be read at all (http_5xx)")), "{:#?}", rec.log);
}
