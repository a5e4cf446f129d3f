//! `exchange`: `GET /v1.0/users/{mailbox}/mailFolders/inbox`.

use super::{Outcome, ProbeContext, ProbeLog, Workload, common};

pub(super) async fn run(ctx: &ProbeContext<'_>, mailbox: &str, log: &mut ProbeLog) -> Outcome {
    let path = format!("/users/{}/mailFolders/inbox", common::segment(mailbox));
    common::get_object(ctx, &path, Workload::Exchange, "inbox", log).await
}
