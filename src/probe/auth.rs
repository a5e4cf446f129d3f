//! `auth`: a fresh token (never from the cache), for sign-in availability and latency.

use super::{Outcome, ProbeContext, ProbeLog, common};

pub(super) async fn run(ctx: &ProbeContext<'_>, log: &mut ProbeLog) -> Outcome {
    match common::token(ctx, true, log).await {
        Ok(_) => Outcome::Success,
        Err(outcome) => outcome,
    }
}
