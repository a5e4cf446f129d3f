//! `sharepoint`: `GET /v1.0/sites/{host}:/{path}` from the configured site URL.

use super::{FailureReason, Outcome, ProbeContext, ProbeLog, Workload, common};

/// The Graph path for a site URL: `/sites/{host}:/{path}`, or `/sites/{host}`
/// for a tenant root site.
pub fn site_path(site: &str) -> Option<String> {
    let url = url::Url::parse(site).ok()?;
    let host = url.host_str()?;
    let segments: Vec<String> = url
        .path_segments()
        .into_iter()
        .flatten()
        .filter(|s| !s.is_empty())
        .map(|s| common::segment(&common::decode(s)))
        .collect();
    if segments.is_empty() {
        Some(format!("/sites/{}", common::segment(host)))
    } else {
        Some(format!("/sites/{}:/{}", common::segment(host), segments.join("/")))
    }
}

pub(super) async fn run(ctx: &ProbeContext<'_>, site: &str, log: &mut ProbeLog) -> Outcome {
    let Some(path) = site_path(site) else {
        // Config validation rejects such URLs; this is only a guard.
        log.line(format!("site URL {site} has no host"));
        return Outcome::Failure(FailureReason::InvalidResponse);
    };
    common::get_object(ctx, &path, Workload::SharePoint, "site", log).await
}

#[cfg(test)]
mod tests {
    use super::site_path;

    #[test]
    fn site_paths() {
        assert_eq!(
            site_path("https://contoso.sharepoint.com/sites/monitoring").as_deref(),
            Some("/sites/contoso.sharepoint.com:/sites/monitoring")
        );
        assert_eq!(site_path("https://contoso.sharepoint.com/").as_deref(), Some("/sites/contoso.sharepoint.com"));
        assert_eq!(
            site_path("https://contoso.sharepoint.com/sites/My%20Site/").as_deref(),
            Some("/sites/contoso.sharepoint.com:/sites/My%20Site")
        );
        assert_eq!(site_path("not a url"), None);
    }
}
