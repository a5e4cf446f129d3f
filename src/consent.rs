//! Onboarding a tenant: the admin consent URL (protocol doc 1.11) and the
//! Graph permissions the configured probes need.

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::config::{Config, Credential, CredentialKind, ProbeKind, Subscription};

/// The Microsoft Graph application permissions a probe kind needs, least
/// privileged first (README "Probes and the Graph permissions they need");
/// empty for probes that only sign in.
pub fn permissions(kind: &ProbeKind) -> &'static [&'static str] {
    match kind {
        ProbeKind::Auth => &[],
        ProbeKind::Organization => &["Organization.Read.All"],
        ProbeKind::Exchange { .. } => &["Mail.ReadBasic.All"],
        ProbeKind::Sharepoint { .. } => &["Sites.Read.All"],
        ProbeKind::Onedrive { .. } => &["Files.Read.All"],
        ProbeKind::Teams { .. } => &["Team.ReadBasic.All"],
        ProbeKind::ServiceHealth => &["ServiceHealth.Read.All"],
        // The sender's tenant; with to_subscription the recipient's tenant
        // needs Mail.ReadWrite too (to find and delete the message).
        ProbeKind::MailRoundtrip { .. } => &["Mail.ReadWrite", "Mail.Send"],
        ProbeKind::MessageCenter => &["ServiceMessage.Read.All"],
    }
}

/// `<authority>/<tenant>/adminconsent?client_id=<app>`: opened by an admin
/// of the tenant, it grants the permissions configured on the app
/// registration in that tenant.
pub fn admin_consent_url(authority_host: &str, tenant: &str, client_id: &str) -> String {
    let query: String =
        url::form_urlencoded::Serializer::new(String::new()).append_pair("client_id", client_id).finish();
    let tenant: String = url::form_urlencoded::byte_serialize(tenant.as_bytes()).collect();
    format!("{}/{tenant}/adminconsent?{query}", authority_host.trim_end_matches('/'))
}

/// What `m365mon consent-url` prints for (credential, tenant), with the
/// permissions of `subscriptions`' probes (all probe types when empty).
pub fn report(config: &Config, credential: &Credential, tenant: &str, subscriptions: &[&Subscription]) -> String {
    let mut out = String::new();
    let names: Vec<&str> = subscriptions.iter().map(|s| s.name.as_str()).collect();
    let _ = writeln!(
        out,
        "Admin consent for tenant {tenant}, app {} (credential {}){}:\n\n  {}\n",
        credential.client_id,
        credential.name,
        if names.is_empty() { String::new() } else { format!(", subscription {}", names.join(", ")) },
        admin_consent_url(&config.global.authority_host, tenant, &credential.client_id)
    );
    out.push_str(
        "Open it signed in as an administrator of that tenant (Global Administrator or Privileged Role\n\
         Administrator). It grants the permissions configured on the app registration, so add these\n\
         Microsoft Graph application permissions to the app first:\n\n",
    );
    let mut needed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut sign_in_only = Vec::new();
    let probes: Vec<(String, ProbeKind)> = if subscriptions.is_empty() {
        all_kinds().into_iter().map(|k| (k.type_name().to_string(), k)).collect()
    } else {
        subscriptions
            .iter()
            .flat_map(|s| s.probes.iter().map(move |p| (label(s, &p.name, subscriptions.len()), p.kind.clone())))
            .collect()
    };
    // A mail round trip of another subscription that reads its recipient's
    // mailbox with this subscription's sign-in needs Mail.ReadWrite here too.
    for other in &config.subscriptions {
        for p in &other.probes {
            if let ProbeKind::MailRoundtrip { to_subscription: Some(to), .. } = &p.kind
                && subscriptions.iter().any(|s| &s.name == to && s.name != other.name)
            {
                needed.entry("Mail.ReadWrite").or_default().push(format!("{}/{} (reads here)", other.name, p.name));
            }
        }
    }
    for (name, kind) in probes {
        let perms = permissions(&kind);
        if perms.is_empty() {
            sign_in_only.push(name.clone());
        }
        for p in perms {
            needed.entry(p).or_default().push(name.clone());
        }
    }
    let width = needed.keys().map(|p| p.len()).max().unwrap_or(0);
    for (perm, probes) in &needed {
        let _ = writeln!(out, "  {perm:<width$}  probes: {}", probes.join(", "));
    }
    if needed.is_empty() {
        out.push_str("  (none)\n");
    }
    if !sign_in_only.is_empty() {
        let _ = writeln!(out, "\nNo permission is needed by: {} (sign-in only).", sign_in_only.join(", "));
    }
    if matches!(credential.kind, CredentialKind::Delegated(_)) {
        let _ = writeln!(
            out,
            "\nCredential {} is delegated: the probes act as the account that runs `m365mon login`, with the\n\
             delegated permissions of the same names; admin consent spares that account the consent prompt.",
            credential.name
        );
    }
    out
}

fn label(s: &Subscription, probe: &str, subscriptions: usize) -> String {
    if subscriptions > 1 { format!("{}/{probe}", s.name) } else { probe.to_string() }
}

/// One of each probe type, for a tenant no subscription uses yet.
fn all_kinds() -> Vec<ProbeKind> {
    vec![
        ProbeKind::Auth,
        ProbeKind::Organization,
        ProbeKind::Exchange { mailbox: String::new() },
        ProbeKind::Sharepoint { site: String::new() },
        ProbeKind::Onedrive { user: String::new() },
        ProbeKind::Teams { team_id: String::new() },
        ProbeKind::ServiceHealth,
        ProbeKind::MailRoundtrip { from: String::new(), to: String::new(), to_subscription: None },
        ProbeKind::MessageCenter,
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consent_url_per_authority() {
        assert_eq!(
            admin_consent_url(
                "https://login.microsoftonline.us/",
                "contoso.onmicrosoft.us",
                "0e5b0a52-8f1a-4d5e-9d3c-6b7f3c2a9e01"
            ),
            "https://login.microsoftonline.us/contoso.onmicrosoft.us/adminconsent?client_id=0e5b0a52-8f1a-4d5e-9d3c-6b7f3c2a9e01"
        );
    }

    #[test]
    fn the_reading_tenant_of_a_cross_subscription_round_trip_needs_mail_readwrite() {
        let text = r#"credentials:
  app:
    client_id: 11111111-2222-3333-4444-555555555555
    client_secret: x
subscriptions:
  - name: contoso
    tenant_id: contoso.onmicrosoft.com
    credential: app
    probes:
      - type: mail_roundtrip
        from: monitor@contoso.com
        to: monitor@fabrikam.com
        to_subscription: fabrikam
        interval: 10m
  - name: fabrikam
    tenant_id: fabrikam.onmicrosoft.com
    credential: app
    probes: [{type: auth}]
"#;
        let config = crate::config::parse_str(text, "cc.yml", std::path::Path::new(".")).expect("valid");
        let fabrikam = config.subscriptions.iter().find(|s| s.name == "fabrikam").expect("configured");
        let credential = &config.credentials["app"];
        let out = report(&config, credential, "fabrikam.onmicrosoft.com", &[fabrikam]);
        assert!(out.contains("  Mail.ReadWrite  probes: contoso/mail_roundtrip (reads here)\n"), "{out}");
    }
}
