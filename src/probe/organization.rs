//! `organization`: `GET /v1.0/organization`, a cheap "Graph reachable and token accepted" check.

use serde_json::Value;

use super::{FailureReason, Outcome, ProbeContext, ProbeLog, Workload, common};

pub(super) async fn run(ctx: &ProbeContext<'_>, log: &mut ProbeLog) -> Outcome {
    let body = match common::get(ctx, "/organization?$select=id", Workload::Directory, log).await {
        Ok(b) => b,
        Err(o) => return o,
    };
    // The collection holds exactly the signed-in tenant.
    match body.get("value").and_then(Value::as_array).and_then(|v| v.first()) {
        Some(org) => common::expect_id(org, "organization", log),
        None => {
            log.line("organization: response has no \"value\" entry");
            Outcome::Failure(FailureReason::InvalidResponse)
        }
    }
}
