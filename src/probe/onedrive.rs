//! `onedrive`: `GET /v1.0/users/{user}/drive`.

use super::{Outcome, ProbeContext, ProbeLog, Workload, common};

pub(super) async fn run(ctx: &ProbeContext<'_>, user: &str, log: &mut ProbeLog) -> Outcome {
    let path = format!("/users/{}/drive", common::segment(user));
    common::get_object(ctx, &path, Workload::SharePoint, "drive", log).await
}
