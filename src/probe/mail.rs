//! `mail_roundtrip`: create a draft in the sender's mailbox, send it, poll
//! the recipient's inbox by `internetMessageId` until it arrives or the
//! timeout passes, then delete the probe message from both mailboxes
//! (protocol doc 5.7, 5.8).
//!
//! The wait between polls gives up the run's place under
//! `max_concurrent_probes` ([`crate::runner::idle`]), and every request
//! takes one of Outlook's 4 slots of its mailbox
//! ([`GraphClient::mailbox_slot`]).

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::{FailureReason, Outcome, ProbeContext, ProbeLog, RunDetails, Workload, common};
use crate::auth::TokenProvider;
use crate::config::{Credential, ProbeKind, Secret, Subscription};
use crate::graph::{GraphClient, GraphResponse, status_outcome};

/// Subject of every probe message, followed by the probe message's ID.
pub const SUBJECT_PREFIX: &str = "m365mon probe";
/// The internet message header that marks a probe message; its value is the probe message's ID.
pub const PROBE_HEADER: &str = "x-m365mon-probe";
/// Time between two looks into the recipient's inbox.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Upper bounds of the `m365mon_mail_delivery_seconds` buckets: up to 10 minutes.
pub const MAIL_DELIVERY_BUCKETS: [f64; 16] =
    [1.0, 2.5, 5.0, 10.0, 15.0, 20.0, 30.0, 45.0, 60.0, 90.0, 120.0, 180.0, 240.0, 300.0, 450.0, 600.0];

/// What a run may spend besides waiting for delivery: sign-in, draft and
/// send before, and deleting the probe messages after.
const SEND_BUDGET: Duration = Duration::from_secs(30);
const CLEANUP_BUDGET: Duration = Duration::from_secs(30);
/// After a run that did not see its message arrive, the inbox is looked at
/// again after these waits (1, 3 and 7 minutes later), so a late delivery
/// is deleted too.
const LATE_SWEEPS: [Duration; 3] = [Duration::from_secs(60), Duration::from_secs(120), Duration::from_secs(240)];

/// The longest a run of `kind` with timeout `timeout` may take. A mail round
/// trip's timeout bounds the wait for delivery, so its run gets the time to
/// send and clean up on top.
pub fn run_limit(kind: &ProbeKind, timeout: Duration) -> Duration {
    match kind {
        ProbeKind::MailRoundtrip { .. } => timeout + SEND_BUDGET + CLEANUP_BUDGET,
        _ => timeout,
    }
}

/// One side of the round trip: a mailbox and the sign-in that reaches it.
/// The token is taken from the provider for each request: a run with its
/// cleanup and late sweeps lasts up to about 13 minutes, longer than a
/// cached token may still be good for.
#[derive(Clone)]
struct Mailbox {
    user: String,
    tokens: Arc<TokenProvider>,
    subscription: Subscription,
    credential: Credential,
    /// (app, tenant, mailbox): what Outlook counts concurrent requests by.
    slot_key: String,
}

impl Mailbox {
    fn new(tokens: &Arc<TokenProvider>, sub: &Subscription, credential: &Credential, user: &str) -> Self {
        Mailbox {
            user: user.to_string(),
            tokens: tokens.clone(),
            subscription: sub.clone(),
            credential: credential.clone(),
            slot_key: common::mailbox_key(sub, credential, user),
        }
    }

    /// A token for this side (normally from the cache).
    async fn token(&self, log: &mut ProbeLog) -> Result<Secret, Outcome> {
        // Cache hits are not worth a log line per poll; failures are.
        let mut scratch = ProbeLog::new();
        let sub = &self.subscription;
        match self.tokens.token(&sub.name, &self.credential, &sub.tenant_id, false, &mut scratch).await {
            Ok(token) => Ok(token),
            Err(e) => {
                for line in scratch.lines() {
                    log.line(line.clone());
                }
                Err(match e.reason {
                    FailureReason::Throttled => Outcome::Throttled {
                        workload: Workload::Identity,
                        retry_after: e.retry_after.unwrap_or(Duration::from_secs(60)),
                    },
                    r => Outcome::Failure(r),
                })
            }
        }
    }

    /// One request under `/users/{user}`, holding one of the mailbox's slots.
    async fn request(
        &self,
        graph: &GraphClient,
        method: Method,
        rest: &str,
        body: Option<&Value>,
        log: &mut ProbeLog,
    ) -> Result<GraphResponse, Outcome> {
        let token = self.token(log).await?;
        let _slot = graph.mailbox_slot(&self.slot_key).await;
        let url = graph.url(&format!("/users/{}{rest}", common::segment(&self.user)));
        let r = graph.send(method, &url, &token, body, log).await?;
        if r.status == 401 {
            let unauthorized = Outcome::Failure(FailureReason::Unauthorized);
            common::on_unauthorized(&self.tokens, &self.subscription, &self.credential, &token, &unauthorized, log)
                .await;
        }
        Ok(r)
    }

    /// IDs of the messages in `folder` with this `internetMessageId`.
    async fn find(
        &self,
        graph: &GraphClient,
        folder: &str,
        imid: &str,
        log: &mut ProbeLog,
    ) -> Result<Vec<Value>, Outcome> {
        let filter = common::query_value(&format!("internetMessageId eq {}", common::odata_string(imid)));
        let rest = format!(
            "/mailFolders/{folder}/messages?$filter={filter}&$select=id,sentDateTime,receivedDateTime,internetMessageId&$top=10"
        );
        let r = self.request(graph, Method::GET, &rest, None, log).await?;
        if let Some(o) = status_outcome(r.status, r.retry_after, Workload::Exchange) {
            return Err(o);
        }
        match r.json(log)?.get("value").and_then(Value::as_array) {
            Some(items) => Ok(items.clone()),
            None => {
                log.line("response has no \"value\" array");
                Err(Outcome::Failure(FailureReason::InvalidResponse))
            }
        }
    }

    /// Deletes one message; a message already gone is fine.
    async fn delete(&self, graph: &GraphClient, id: &str, log: &mut ProbeLog) {
        let rest = format!("/messages/{}", common::segment(id));
        match self.request(graph, Method::DELETE, &rest, None, log).await {
            Ok(r) if r.is_success() || r.status == 404 => {}
            _ => log.line(format!("could not delete message {id} from {}", self.user)),
        }
    }
}

/// What the run left in the mailboxes, deleted at the end of the run or,
/// when the run is cut short (timeout, reload, shutdown), by a task spawned
/// on drop.
struct Cleanup {
    graph: GraphClient,
    sender: Mailbox,
    reader: Mailbox,
    draft_id: Option<String>,
    imid: Option<String>,
    inbox_id: Option<String>,
    done: bool,
}

impl Cleanup {
    async fn run(&mut self, log: &mut ProbeLog) {
        let work = delete_all(
            self.graph.clone(),
            self.sender.clone(),
            self.reader.clone(),
            self.draft_id.clone(),
            self.imid.clone(),
            self.inbox_id.clone(),
            log,
        );
        match tokio::time::timeout(CLEANUP_BUDGET, work).await {
            Ok(Some(imid)) => {
                log.line("cleanup: not in the inbox; it is looked for again 1, 3 and 7 minutes from now");
                tokio::spawn(sweep_late(self.graph.clone(), self.reader.clone(), imid));
            }
            Ok(None) => {}
            Err(_) => log.line("cleanup: timed out; probe messages may be left behind"),
        }
        self.done = true;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if self.done || self.draft_id.is_none() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let (graph, sender, reader) = (self.graph.clone(), self.sender.clone(), self.reader.clone());
        let (draft_id, imid, inbox_id) = (self.draft_id.take(), self.imid.take(), self.inbox_id.take());
        runtime.spawn(async move {
            let mut log = ProbeLog::new();
            let work = delete_all(graph.clone(), sender, reader.clone(), draft_id, imid, inbox_id, &mut log);
            let result = tokio::time::timeout(CLEANUP_BUDGET, work).await;
            tracing::debug!(finished = result.is_ok(), log = ?log.lines(), "mail_roundtrip cleanup after an interrupted run");
            if let Ok(Some(imid)) = result {
                sweep_late(graph, reader, imid).await;
            }
        });
    }
}

/// Deletes the probe message from the recipient's inbox and the sender's
/// Sent Items (found by `internetMessageId`), or the draft if it was never
/// sent. Returns the `internetMessageId` of a sent message that is not in
/// the inbox (yet).
async fn delete_all(
    graph: GraphClient,
    sender: Mailbox,
    reader: Mailbox,
    draft_id: Option<String>,
    imid: Option<String>,
    inbox_id: Option<String>,
    log: &mut ProbeLog,
) -> Option<String> {
    let Some(imid) = imid else {
        if let Some(id) = draft_id {
            sender.delete(&graph, &id, log).await;
        }
        return None;
    };
    let received: Vec<String> = match inbox_id {
        Some(id) => vec![id],
        // Not seen (yet): it may have arrived since the last look.
        None => ids(reader.find(&graph, "inbox", &imid, log).await),
    };
    let missing = received.is_empty();
    for id in received {
        reader.delete(&graph, &id, log).await;
    }
    // Exchange may give the sent copy an ID of its own, so it is looked up.
    let sent = ids(sender.find(&graph, "sentitems", &imid, log).await);
    if let (true, Some(id)) = (sent.is_empty(), draft_id) {
        sender.delete(&graph, &id, log).await;
    }
    for id in sent {
        sender.delete(&graph, &id, log).await;
    }
    missing.then_some(imid)
}

/// Looks for a message that may still arrive a few more times, and deletes
/// it once found. It runs after the probe run, outside its concurrency slot.
async fn sweep_late(graph: GraphClient, reader: Mailbox, imid: String) {
    let mut log = ProbeLog::new();
    for wait in LATE_SWEEPS {
        tokio::time::sleep(wait).await;
        // Bounded, because a request that never answers would otherwise hold
        // one of the mailbox's four slots for good.
        let look = tokio::time::timeout(SWEEP_STEP_LIMIT, reader.find(&graph, "inbox", &imid, &mut log)).await;
        let found = ids(look.unwrap_or(Err(Outcome::Failure(FailureReason::Timeout))));
        if !found.is_empty() {
            for id in found {
                let _ = tokio::time::timeout(SWEEP_STEP_LIMIT, reader.delete(&graph, &id, &mut log)).await;
            }
            tracing::debug!(log = ?log.lines(), "mail_roundtrip: deleted a probe message that arrived late");
            return;
        }
    }
}

/// How long one request of a late sweep may take.
const SWEEP_STEP_LIMIT: Duration = Duration::from_secs(60);

fn ids(found: Result<Vec<Value>, Outcome>) -> Vec<String> {
    found.unwrap_or_default().iter().filter_map(|m| m.get("id").and_then(Value::as_str).map(str::to_string)).collect()
}

/// The outcome of a refused draft or send: sign-in and permission problems
/// and throttling keep their own reasons, anything else is `send_failed`.
fn send_outcome(r: &GraphResponse) -> Outcome {
    match status_outcome(r.status, r.retry_after, Workload::Exchange) {
        Some(o @ Outcome::Throttled { .. }) => o,
        Some(Outcome::Failure(
            reason @ (FailureReason::Unauthorized | FailureReason::Forbidden | FailureReason::NotFound),
        )) => Outcome::Failure(reason),
        _ => Outcome::Failure(FailureReason::SendFailed),
    }
}

pub(super) async fn run(
    ctx: &ProbeContext<'_>,
    from: &str,
    to: &str,
    to_subscription: Option<&str>,
    log: &mut ProbeLog,
) -> (Outcome, RunDetails) {
    match round_trip(ctx, from, to, to_subscription, log).await {
        Ok(delivery) => (Outcome::Success, RunDetails { delivery: Some(delivery), ..Default::default() }),
        Err(o) => (o, RunDetails::default()),
    }
}

async fn round_trip(
    ctx: &ProbeContext<'_>,
    from: &str,
    to: &str,
    to_subscription: Option<&str>,
    log: &mut ProbeLog,
) -> Result<Duration, Outcome> {
    let started = Instant::now();
    let (reader_sub, reader_cred) = match to_subscription {
        None => (ctx.subscription, ctx.credential),
        Some(name) => {
            let sub = ctx.config.subscriptions.iter().find(|s| s.name == name);
            match sub.and_then(|s| Some((s, ctx.config.credential_of(s)?))) {
                Some(found) => found,
                None => {
                    log.line(format!("to_subscription {name} is not configured"));
                    return Err(Outcome::Failure(FailureReason::AuthFailed));
                }
            }
        }
    };
    // Both sign-ins first, so a failing one ends the run before anything is sent.
    common::token(ctx, false, log).await?;
    let sender = Mailbox::new(ctx.tokens, ctx.subscription, ctx.credential, from);
    if reader_sub.name != ctx.subscription.name {
        log.line(format!("reading {to} with the sign-in of subscription {}", reader_sub.name));
        common::token_for(ctx, reader_sub, reader_cred, false, log).await?;
    }
    let reader = Mailbox::new(ctx.tokens, reader_sub, reader_cred, to);
    let mut cleanup =
        Cleanup { graph: ctx.graph.clone(), sender, reader, draft_id: None, imid: None, inbox_id: None, done: false };
    let result = send_and_wait(ctx, to, started, &mut cleanup, log).await;
    cleanup.run(log).await;
    result
}

/// Drafts, sends and waits; records in `cleanup` what to delete.
async fn send_and_wait(
    ctx: &ProbeContext<'_>,
    to: &str,
    started: Instant,
    cleanup: &mut Cleanup,
    log: &mut ProbeLog,
) -> Result<Duration, Outcome> {
    let graph = ctx.graph;
    let probe_id = uuid::Uuid::new_v4().to_string();
    let message = json!({
        "subject": format!("{SUBJECT_PREFIX} {probe_id}"),
        "body": {
            "contentType": "Text",
            "content": format!(
                "Synthetic message from m365mon measuring mail delivery for subscription {}. \
                 It is deleted when it arrives; one still here arrived after the probe gave up and can be deleted.",
                ctx.subscription.name
            ),
        },
        "toRecipients": [{"emailAddress": {"address": to}}],
        "internetMessageHeaders": [{"name": PROBE_HEADER, "value": probe_id}],
    });
    let r = cleanup.sender.request(graph, Method::POST, "/messages", Some(&message), log).await?;
    if !r.is_success() {
        return Err(send_outcome(&r));
    }
    let draft = r.json(log).map_err(|_| Outcome::Failure(FailureReason::SendFailed))?;
    let Some(id) = draft.get("id").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
        log.line("draft: response has no \"id\"");
        return Err(Outcome::Failure(FailureReason::SendFailed));
    };
    cleanup.draft_id = Some(id.to_string());
    let Some(imid) = draft.get("internetMessageId").and_then(Value::as_str).filter(|s| !s.is_empty()) else {
        log.line("draft: response has no \"internetMessageId\"");
        return Err(Outcome::Failure(FailureReason::SendFailed));
    };
    log.line(format!("draft {id} created, internetMessageId {imid}"));

    let sent_at = Instant::now();
    let send_path = format!("/messages/{}/send", common::segment(id));
    // Known before the send: if the answer is lost (network, timeout) the
    // message may still have gone out, and cleanup must look for it.
    cleanup.imid = Some(imid.to_string());
    let r = cleanup.sender.request(graph, Method::POST, &send_path, None, log).await?;
    if !r.is_success() {
        // Refused: nothing went out; deleting the draft is enough.
        cleanup.imid = None;
        return Err(send_outcome(&r));
    }

    // Polling stops at the timeout after sending, and leaves time to clean up.
    let deadline = (sent_at + ctx.timeout).min(started + ctx.timeout + SEND_BUDGET);
    log.line(format!("sent; looking for it in {to}'s inbox every {}s", POLL_INTERVAL.as_secs()));
    let found = wait_for_delivery(graph, &cleanup.reader, imid, sent_at, deadline, log).await?;
    cleanup.inbox_id = Some(found.0);
    log.line(format!("delivered after {:.3}s", found.1.as_secs_f64()));
    Ok(found.1)
}

/// Polls until the message is in the inbox: its ID and the delivery time.
/// Errors that only a look at the same inbox a little later can settle (5xx,
/// network) keep the polling going; sign-in and permission problems end it.
async fn wait_for_delivery(
    graph: &GraphClient,
    reader: &Mailbox,
    imid: &str,
    sent_at: Instant,
    deadline: Instant,
    log: &mut ProbeLog,
) -> Result<(String, Duration), Outcome> {
    let mut next = Instant::now() + POLL_INTERVAL;
    // Set while no look at the inbox has succeeded: the reason of the last
    // failed one. An inbox that could never be read is not "not delivered".
    let mut unread: Option<FailureReason> = None;
    let mut any_read = false;
    loop {
        crate::runner::idle(tokio::time::sleep_until(next.min(deadline))).await;
        next = Instant::now() + POLL_INTERVAL;
        let throttled = match reader.find(graph, "inbox", imid, log).await {
            Ok(items) => {
                any_read = true;
                unread = None;
                if let Some(m) = items.first() {
                    let Some(id) = m.get("id").and_then(Value::as_str) else {
                        log.line("message without \"id\"");
                        return Err(Outcome::Failure(FailureReason::InvalidResponse));
                    };
                    return Ok((id.to_string(), delivery_time(m, sent_at.elapsed(), log)));
                }
                None
            }
            Err(Outcome::Throttled { retry_after, .. }) => {
                next = Instant::now() + retry_after.max(POLL_INTERVAL);
                Some(retry_after)
            }
            // Worth another look later: the service or the path to it had a blip.
            Err(Outcome::Failure(r @ (FailureReason::Http5xx | FailureReason::Network | FailureReason::Timeout))) => {
                unread = Some(r).filter(|_| !any_read);
                None
            }
            // Sign-in, permission, a refused query: looking again cannot help.
            Err(Outcome::Failure(r)) => return Err(Outcome::Failure(r)),
            Err(Outcome::Success) => None,
        };
        if Instant::now() >= deadline {
            log.line("not in the inbox by the timeout");
            // Throttled to the end: no answer either way, which is not an outage.
            return Err(match (throttled, unread) {
                (Some(retry_after), _) => Outcome::Throttled { workload: Workload::Exchange, retry_after },
                (None, Some(reason)) => {
                    log.line(format!("the recipient's inbox could not be read at all ({})", reason.as_str()));
                    Outcome::Failure(reason)
                }
                (None, None) => Outcome::Failure(FailureReason::NotDelivered),
            });
        }
    }
}

/// The delivery time: Exchange's own `receivedDateTime - sentDateTime` when
/// both are readable and consistent with what the exporter saw (at most
/// `observed`, which is late by up to one poll interval); else `observed`.
fn delivery_time(m: &Value, observed: Duration, log: &mut ProbeLog) -> Duration {
    let stamp = |k: &str| m.get(k).and_then(Value::as_str).and_then(common::parse_datetime);
    match (stamp("sentDateTime"), stamp("receivedDateTime")) {
        (Some(sent), Some(received)) if received >= sent && received - sent <= observed.as_secs_f64() + 1.0 => {
            Duration::from_secs_f64(received - sent)
        }
        _ => {
            log.line("sentDateTime/receivedDateTime missing or inconsistent; using the time seen by polling");
            observed
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_time_prefers_consistent_server_stamps() {
        let m = json!({"sentDateTime": "2025-01-10T09:00:01Z", "receivedDateTime": "2025-01-10T09:00:04Z"});
        let mut log = ProbeLog::new();
        assert_eq!(delivery_time(&m, Duration::from_secs(5), &mut log), Duration::from_secs(3));
        // Stamps claiming more than was seen (clock skew) are not trusted.
        assert_eq!(delivery_time(&m, Duration::from_secs(1), &mut log), Duration::from_secs(1));
        let backwards = json!({"sentDateTime": "2025-01-10T09:00:04Z", "receivedDateTime": "2025-01-10T09:00:01Z"});
        assert_eq!(delivery_time(&backwards, Duration::from_secs(5), &mut log), Duration::from_secs(5));
        assert_eq!(delivery_time(&json!({}), Duration::from_secs(7), &mut log), Duration::from_secs(7));
    }

    #[test]
    fn run_limit_adds_send_and_cleanup_time_for_mail_only() {
        let mail = ProbeKind::MailRoundtrip { from: "a@b.c".into(), to: "a@b.c".into(), to_subscription: None };
        assert_eq!(run_limit(&mail, Duration::from_secs(300)), Duration::from_secs(360));
        assert_eq!(run_limit(&ProbeKind::Auth, Duration::from_secs(15)), Duration::from_secs(15));
    }

    #[test]
    fn refusals_map_to_reasons() {
        let r = |status, retry_after| GraphResponse { status, retry_after, body: vec![] };
        assert_eq!(send_outcome(&r(403, None)), Outcome::Failure(FailureReason::Forbidden));
        assert_eq!(send_outcome(&r(404, None)), Outcome::Failure(FailureReason::NotFound));
        assert_eq!(send_outcome(&r(400, None)), Outcome::Failure(FailureReason::SendFailed));
        assert_eq!(send_outcome(&r(500, None)), Outcome::Failure(FailureReason::SendFailed));
        assert_eq!(
            send_outcome(&r(429, Some(Duration::from_secs(3)))),
            Outcome::Throttled { workload: Workload::Exchange, retry_after: Duration::from_secs(3) }
        );
    }
}
