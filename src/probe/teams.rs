//! `teams`: `GET /v1.0/teams/{team_id}`.

use super::{Outcome, ProbeContext, ProbeLog, Workload, common};

pub(super) async fn run(ctx: &ProbeContext<'_>, team_id: &str, log: &mut ProbeLog) -> Outcome {
    let path = format!("/teams/{}", common::segment(team_id));
    common::get_object(ctx, &path, Workload::Teams, "team", log).await
}
