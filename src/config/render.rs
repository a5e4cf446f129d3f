//! Text views of a loaded config: the `check-config` summary and the
//! redacted effective settings of one subscription. Neither ever shows a
//! secret value; file paths and variable names are shown.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;
use serde_saphyr::Commented;

use super::values::format_duration;
use super::{Config, Credential, CredentialKind, ProbeConfig, ProbeKind, SecretSource, Subscription};

/// What a redacted secret looks like.
const REDACTED: &str = "<secret>";

impl Config {
    /// The short summary that `m365mon check-config` prints.
    pub fn summary(&self) -> String {
        let probes: usize = self.subscriptions.iter().map(|s| s.probes.len()).sum();
        let mut out = format!(
            "{}, {}, {}\n",
            plural(self.subscriptions.len(), "subscription"),
            plural(probes, "probe"),
            plural(self.credentials.len(), "credential")
        );
        let g = &self.global;
        let _ = writeln!(
            out,
            "global: cloud {}, sign-in {}, Graph {}, probes every {} with timeout {} by default, at most {} at once",
            g.cloud.as_str(),
            g.authority_host,
            g.graph_endpoint,
            format_duration(g.probe_interval),
            format_duration(g.probe_timeout),
            g.max_concurrent_probes
        );
        if !self.credentials.is_empty() {
            out.push_str("credentials:\n");
        }
        for c in self.credentials.values() {
            let users = self.subscriptions.iter().filter(|s| s.credential == c.name).count();
            let discoveries: Vec<&str> = self
                .discovery
                .iter()
                .filter(|d| d.credential == c.name || d.template.credential == c.name)
                .map(|d| d.name.as_str())
                .collect();
            let used = match (users, discoveries.is_empty()) {
                (0, true) => "not used by any subscription".to_owned(),
                (0, false) => format!("used by discovery {}", discoveries.join(", ")),
                (n, true) => format!("used by {}", plural(n, "subscription")),
                (n, false) => format!("used by {} and discovery {}", plural(n, "subscription"), discoveries.join(", ")),
            };
            let _ = writeln!(out, "  {}: {}; {used}", c.name, describe_kind(&c.kind));
        }
        if !self.discovery.is_empty() {
            out.push_str("discovery:\n");
        }
        for d in &self.discovery {
            let probes: Vec<String> =
                d.template.probes.iter().map(|p| format!("{} ({})", p.name, format_duration(p.interval))).collect();
            let _ = writeln!(
                out,
                "  {}: customers of partner tenant {} (credential {}), refreshed every {}, {} excluded; \
                 each gets credential {}, {}; probes {}",
                d.name,
                d.partner_tenant_id,
                d.credential,
                format_duration(d.refresh_interval),
                plural(d.exclude.len(), "tenant"),
                d.template.credential,
                plural(d.template.admins.len(), "admin"),
                probes.join(", ")
            );
        }
        if self.subscriptions.is_empty() && self.discovery.is_empty() {
            out.push_str("no subscriptions are configured: nothing will be probed\n");
        } else if self.subscriptions.is_empty() {
            out.push_str("no subscriptions are configured; discovery adds them\n");
        } else {
            out.push_str("subscriptions:\n");
        }
        for s in &self.subscriptions {
            let probes: Vec<String> =
                s.probes.iter().map(|p| format!("{} ({})", p.name, format_duration(p.interval))).collect();
            let _ = writeln!(
                out,
                "  {}: tenant {}, credential {}, {}; probes {}",
                s.name,
                s.tenant_id,
                s.credential,
                plural(s.admins.len(), "admin"),
                probes.join(", ")
            );
        }
        out
    }

    /// The effective settings of one subscription as YAML, secrets shown as
    /// `<secret>` (for `/probe?debug=true`). The output is a config file
    /// holding just this subscription, with every default filled in.
    pub fn render_redacted(&self, sub: &Subscription) -> String {
        let credentials: BTreeMap<&str, CredentialOut<'_>> =
            self.credential_of(sub).map(|c| (c.name.as_str(), CredentialOut::new(c))).into_iter().collect();
        let doc = DocOut {
            global: GlobalOut {
                cloud: self.global.cloud.as_str(),
                authority_host: &self.global.authority_host,
                graph_endpoint: &self.global.graph_endpoint,
            },
            credentials,
            subscriptions: [SubscriptionOut {
                name: &sub.name,
                tenant_id: &sub.tenant_id,
                credential: &sub.credential,
                admins: &sub.admins,
                probes: sub.probes.iter().map(ProbeOut::new).collect(),
            }],
        };
        // Indented list items, as in the example config and CONFIGURATION.md.
        let mut options = serde_saphyr::SerializerOptions::default();
        options.compact_list_indent = false;
        serde_saphyr::to_string_with_options(&doc, options)
            .unwrap_or_else(|e| format!("# cannot render the configuration: {e}\n"))
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("1 {word}") } else { format!("{n} {word}s") }
}

fn describe_kind(kind: &CredentialKind) -> String {
    match kind {
        CredentialKind::Secret(SecretSource::Inline(_)) => "client secret (inline)".to_owned(),
        CredentialKind::Secret(SecretSource::File(p)) => format!("client secret from file {}", p.display()),
        CredentialKind::Secret(SecretSource::Env(v)) => format!("client secret from environment variable {v}"),
        CredentialKind::Certificate(c) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
            let verb = if c.not_after_unix < now { "EXPIRED" } else { "expires" };
            format!("certificate {} ({verb} {})", c.certificate_file.display(), utc_date(c.not_after_unix))
        }
        CredentialKind::FederatedTokenFile(p) => format!("federated token file {}", p.display()),
        CredentialKind::Delegated(None) => "delegated sign-in (public client)".to_owned(),
        CredentialKind::Delegated(Some(src)) => {
            format!("delegated sign-in with {}", describe_kind(&CredentialKind::Secret(src.clone())))
        }
    }
}

/// `YYYY-MM-DD` (UTC) of a Unix time, by Howard Hinnant's civil-from-days.
pub(super) fn utc_date(unix: i64) -> String {
    let days = unix.div_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

#[derive(Serialize)]
struct DocOut<'a> {
    global: GlobalOut<'a>,
    credentials: BTreeMap<&'a str, CredentialOut<'a>>,
    subscriptions: [SubscriptionOut<'a>; 1],
}

#[derive(Serialize)]
struct GlobalOut<'a> {
    cloud: &'a str,
    authority_host: &'a str,
    graph_endpoint: &'a str,
}

#[derive(Serialize, Default)]
struct CredentialOut<'a> {
    client_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_secret_env: Option<&'a str>,
    /// The path, with the certificate's expiry as a YAML comment.
    #[serde(skip_serializing_if = "Option::is_none")]
    certificate_file: Option<Commented<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    private_key_file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    federated_token_file: Option<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    delegated: bool,
}

impl<'a> CredentialOut<'a> {
    fn new(c: &'a Credential) -> Self {
        let base = CredentialOut { client_id: &c.client_id, ..Default::default() };
        match &c.kind {
            CredentialKind::Secret(src) => Self::secret(base, src),
            CredentialKind::Certificate(cert) => CredentialOut {
                certificate_file: Some(Commented(
                    cert.certificate_file.display().to_string(),
                    format!("expires {}", utc_date(cert.not_after_unix)),
                )),
                private_key_file: Some(cert.private_key_file.display().to_string()),
                ..base
            },
            CredentialKind::FederatedTokenFile(p) => {
                CredentialOut { federated_token_file: Some(p.display().to_string()), ..base }
            }
            CredentialKind::Delegated(None) => CredentialOut { delegated: true, ..base },
            CredentialKind::Delegated(Some(src)) => CredentialOut { delegated: true, ..Self::secret(base, src) },
        }
    }

    fn secret(base: Self, src: &'a SecretSource) -> Self {
        match src {
            SecretSource::Inline(_) => CredentialOut { client_secret: Some(REDACTED), ..base },
            SecretSource::File(p) => CredentialOut { client_secret_file: Some(p.display().to_string()), ..base },
            SecretSource::Env(v) => CredentialOut { client_secret_env: Some(v), ..base },
        }
    }
}

#[derive(Serialize)]
struct SubscriptionOut<'a> {
    name: &'a str,
    tenant_id: &'a str,
    credential: &'a str,
    admins: &'a [String],
    probes: Vec<ProbeOut<'a>>,
}

#[derive(Serialize)]
struct ProbeOut<'a> {
    #[serde(rename = "type")]
    type_name: &'static str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    mailbox: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    site: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    team_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    from: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    to_subscription: Option<&'a str>,
    interval: String,
    timeout: String,
}

impl<'a> ProbeOut<'a> {
    fn new(p: &'a ProbeConfig) -> Self {
        let mut out = ProbeOut {
            type_name: p.kind.type_name(),
            name: &p.name,
            mailbox: None,
            site: None,
            user: None,
            team_id: None,
            from: None,
            to: None,
            to_subscription: None,
            interval: format_duration(p.interval),
            timeout: format_duration(p.timeout),
        };
        match &p.kind {
            ProbeKind::Exchange { mailbox } => out.mailbox = Some(mailbox),
            ProbeKind::Sharepoint { site } => out.site = Some(site),
            ProbeKind::Onedrive { user } => out.user = Some(user),
            ProbeKind::Teams { team_id } => out.team_id = Some(team_id),
            ProbeKind::MailRoundtrip { from, to, to_subscription } => {
                out.from = Some(from);
                out.to = Some(to);
                out.to_subscription = to_subscription.as_deref();
            }
            ProbeKind::Auth | ProbeKind::Organization | ProbeKind::ServiceHealth | ProbeKind::MessageCenter => {}
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::utc_date;

    #[test]
    fn dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_767_225_599), "2025-12-31");
        assert_eq!(utc_date(-86_400), "1969-12-31");
    }
}
