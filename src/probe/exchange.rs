//! `exchange`: `GET /v1.0/users/{mailbox}/mailFolders/inbox`.

use super::{Outcome, ProbeContext, ProbeLog, Workload, common};

pub(super) async fn run(ctx: &ProbeContext<'_>, mailbox: &str, log: &mut ProbeLog) -> Outcome {
    let path = format!("/users/{}/mailFolders/inbox", common::segment(mailbox));
    // Shares Outlook's 4 concurrent requests per mailbox with mail round trips.
    let _slot = ctx.graph.mailbox_slot(&common::mailbox_key(ctx.subscription, ctx.credential, mailbox)).await;
    common::get_object(ctx, &path, Workload::Exchange, "inbox", log).await
}
