//! Config loading and validation: one fixture per invalid case with its
//! exact message, the valid fixtures, the annotated example, and redaction.

use std::path::{Path, PathBuf};
use std::time::Duration;

use m365mon::config::{
    Cloud, Config, CredentialKind, ProbeConfig, ProbeKind, SecretSource, load_file, parse_str, parse_str_with_env,
};

const FIXTURES: &str = "tests/fixtures/config";

/// The process environment as the fixtures see it: tests cannot safely set
/// variables of their own process, so the loader gets this lookup instead.
fn fake_env(name: &str) -> Option<String> {
    match name {
        "M365MON_TEST_SECRET" | "M365MON_CLIENT_SECRET" => Some("secret-from-env".to_owned()),
        "M365MON_TEST_EMPTY" => Some(String::new()),
        _ => None,
    }
}

/// Loads `dir/file` with [`fake_env`], naming it by its file name in errors.
fn load(dir: &str, file: &str) -> Result<Config, String> {
    let dir = Path::new(FIXTURES).join(dir);
    let text = std::fs::read_to_string(dir.join(file)).expect("fixture is readable");
    parse_str_with_env(&text, file, &dir, &fake_env).map_err(|e| e.to_string())
}

fn load_valid(file: &str) -> Config {
    load("valid", file).unwrap_or_else(|e| panic!("{file} should load:\n{e}"))
}

/// Each file in `invalid/` and the complete error text it must produce.
const INVALID: &[(&str, &str)] = &[
    // YAML and structure
    ("yaml-syntax", "yaml-syntax.yml:3:17: invalid YAML: illegal placement of ':' indicator"),
    ("top-level-list", "top-level-list.yml:1:1: expected a mapping, found a list"),
    ("unknown-top-key", "unknown-top-key.yml:5:1: unknown key \"subscription\"; did you mean \"subscriptions\"?"),
    (
        "duplicate-key",
        "duplicate-key.yml:3:3: global.probe_interval: duplicate key \"probe_interval\" (first set at line 2)",
    ),
    ("global-not-mapping", "global-not-mapping.yml:1:9: global: expected a mapping, found a string"),
    ("subscriptions-not-list", "subscriptions-not-list.yml:6:3: subscriptions: expected a list, found a mapping"),
    // global
    (
        "authority-relative",
        "authority-relative.yml:2:19: global.authority_host: invalid URL \"login.example.com\": relative URL without a base",
    ),
    ("cloud-typo", "cloud-typo.yml:2:10: global.cloud: unknown cloud \"usgov_dod\"; did you mean \"usgov-dod\"?"),
    (
        "cloud-unknown",
        "cloud-unknown.yml:2:10: global.cloud: unknown cloud \"mars\"; expected one of: global, usgov, usgov-dod, china",
    ),
    (
        "duration-fraction",
        "duration-fraction.yml:2:18: global.probe_timeout: invalid duration \"1.5s\": expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
    ),
    (
        "duration-no-unit",
        "duration-no-unit.yml:2:18: global.probe_timeout: invalid duration \"30\": a unit is required, e.g. 30s",
    ),
    (
        "duration-order",
        "duration-order.yml:2:19: global.probe_interval: invalid duration \"30s1m\": units must go from largest to smallest (y, w, d, h, m, s, ms), each at most once",
    ),
    (
        "duration-syntax",
        "duration-syntax.yml:2:19: global.probe_interval: invalid duration \"5 minutes\": expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
    ),
    (
        "duration-zero",
        "duration-zero.yml:2:19: global.probe_interval: invalid duration \"0s\": must be greater than zero",
    ),
    (
        "global-unknown-key",
        "global-unknown-key.yml:2:3: global: unknown key \"probe_intervall\"; did you mean \"probe_interval\"?",
    ),
    (
        "graph-endpoint-query",
        "graph-endpoint-query.yml:2:19: global.graph_endpoint: invalid URL \"https://graph.example.com/?x=1\": must not have a query (?) or fragment (#)",
    ),
    (
        "graph-endpoint-scheme",
        "graph-endpoint-scheme.yml:2:19: global.graph_endpoint: invalid URL \"ftp://graph.example.com/\": the scheme must be http or https",
    ),
    (
        "max-concurrent-type",
        "max-concurrent-type.yml:2:26: global.max_concurrent_probes: expected an integer, found a string",
    ),
    ("max-concurrent-zero", "max-concurrent-zero.yml:2:26: global.max_concurrent_probes: must be at least 1, found 0"),
    (
        "max-concurrent-huge",
        "max-concurrent-huge.yml:2:26: global.max_concurrent_probes: must be at most 10000, found 18446744073709551615",
    ),
    (
        "duration-interval-too-long",
        "duration-interval-too-long.yml:2:19: global.probe_interval: invalid duration \"584000000y\": must be at most 1y",
    ),
    (
        "duration-timeout-too-long",
        "duration-timeout-too-long.yml:2:18: global.probe_timeout: invalid duration \"2d\": must be at most 1d",
    ),
    (
        "probe-interval-too-long",
        "probe-interval-too-long.yml:11:19: subscriptions[0].probes[0].interval: invalid duration \"2y\": must be at most 1y",
    ),
    (
        "discovery-refresh-interval-too-long",
        "discovery-refresh-interval-too-long.yml:9:23: discovery[0].refresh_interval: invalid duration \"2w\": must be at most 1w",
    ),
    // credentials
    (
        "credential-bad-client-id",
        "credential-bad-client-id.yml:3:16: credentials.app.client_id: invalid client_id: expected a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx with hexadecimal digits)",
    ),
    (
        "credential-bad-name",
        "credential-bad-name.yml:2:3: credentials.My App: invalid name \"My App\": must match [a-z0-9][a-z0-9_.-]*",
    ),
    (
        "credential-cert-broken",
        "credential-cert-broken.yml:4:23: credentials.app.certificate_file: \"tests/fixtures/config/invalid/../certs/broken.crt\": invalid certificate: Parsing Error: NomError(Eof)",
    ),
    (
        "credential-cert-garbage",
        "credential-cert-garbage.yml:4:23: credentials.app.certificate_file: \"tests/fixtures/config/invalid/../certs/garbage.pem\" contains no PEM certificate (-----BEGIN CERTIFICATE-----)",
    ),
    (
        "credential-cert-not-rsa",
        "credential-cert-not-rsa.yml:4:23: credentials.app.certificate_file: \"tests/fixtures/config/invalid/../certs/ec.crt\": the certificate's key is not RSA; Entra ID needs an RSA certificate\ncredential-cert-not-rsa.yml:5:23: credentials.app.private_key_file: \"tests/fixtures/config/invalid/../certs/ec.key\" is not a valid RSA private key (PKCS#8 or PKCS#1 PEM)",
    ),
    (
        "credential-cert-without-key",
        "credential-cert-without-key.yml:3:5: credentials.app: missing required key \"private_key_file\" (needed with certificate_file)",
    ),
    (
        "credential-empty-inline-secret",
        "credential-empty-inline-secret.yml:4:20: credentials.app.client_secret: must not be empty",
    ),
    (
        "credential-federated-missing",
        "credential-federated-missing.yml:4:27: credentials.app.federated_token_file: cannot read \"tests/fixtures/config/invalid/../secrets/token-missing.jwt\": No such file or directory (os error 2)",
    ),
    (
        "credential-key-encrypted",
        "credential-key-encrypted.yml:5:23: credentials.app.private_key_file: \"tests/fixtures/config/invalid/../certs/encrypted.key\": encrypted private keys are not supported; decrypt it, e.g. with `openssl pkcs8 -nocrypt`",
    ),
    (
        "credential-key-is-certificate",
        "credential-key-is-certificate.yml:5:23: credentials.app.private_key_file: \"tests/fixtures/config/invalid/../certs/app.crt\" contains no PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)",
    ),
    (
        "credential-key-mismatch",
        "credential-key-mismatch.yml:5:23: credentials.app.private_key_file: the private key \"tests/fixtures/config/invalid/../certs/other.key\" does not belong to the certificate \"tests/fixtures/config/invalid/../certs/app.crt\"",
    ),
    (
        "credential-key-missing-file",
        "credential-key-missing-file.yml:5:23: credentials.app.private_key_file: cannot read \"tests/fixtures/config/invalid/../certs/missing.key\": No such file or directory (os error 2)",
    ),
    (
        "credential-key-truncated",
        "credential-key-truncated.yml:5:23: credentials.app.private_key_file: \"tests/fixtures/config/invalid/../certs/truncated.key\" is not a valid RSA private key (PKCS#8 or PKCS#1 PEM)",
    ),
    (
        "credential-missing-client-id",
        "credential-missing-client-id.yml:3:5: credentials.app: missing required key \"client_id\"",
    ),
    (
        "credential-no-secret",
        "credential-no-secret.yml:3:5: credentials.app: no secret given; set exactly one of: client_secret, client_secret_file, client_secret_env, certificate_file + private_key_file, federated_token_file (or delegated: true for a signed-in account)",
    ),
    (
        "credential-delegated-not-bool",
        "credential-delegated-not-bool.yml:4:16: credentials.app.delegated: expected true or false, found a string",
    ),
    (
        "credential-delegated-certificate",
        "credential-delegated-certificate.yml:5:5: credentials.app.certificate_file: not allowed with delegated: true; a delegated credential takes at most a client secret (client_secret, client_secret_file, client_secret_env)",
    ),
    (
        "credential-delegated-federated",
        "credential-delegated-federated.yml:5:5: credentials.app.federated_token_file: not allowed with delegated: true; a delegated credential takes at most a client secret (client_secret, client_secret_file, client_secret_env)",
    ),
    (
        "credential-delegated-two-secrets",
        "credential-delegated-two-secrets.yml:6:5: credentials.app: more than one kind of secret given (client_secret, client_secret_env); a delegated credential takes at most one of: client_secret, client_secret_file, client_secret_env",
    ),
    (
        "credential-secret-env-empty",
        "credential-secret-env-empty.yml:4:24: credentials.app.client_secret_env: environment variable \"M365MON_TEST_EMPTY\" is empty",
    ),
    (
        "credential-secret-env-unset",
        "credential-secret-env-unset.yml:4:24: credentials.app.client_secret_env: environment variable \"M365MON_TEST_UNSET\" is not set",
    ),
    (
        "credential-secret-file-directory",
        "credential-secret-file-directory.yml:4:25: credentials.app.client_secret_file: cannot read \"tests/fixtures/config/invalid/../secrets\": Is a directory (os error 21)",
    ),
    (
        "credential-secret-file-empty",
        "credential-secret-file-empty.yml:4:25: credentials.app.client_secret_file: \"tests/fixtures/config/invalid/../secrets/empty.txt\" is empty",
    ),
    (
        "credential-secret-env-pasted",
        "credential-secret-env-pasted.yml:4:24: credentials.app.client_secret_env: the environment variable named here is not set (the name is not shown: it does not look like a variable name; client_secret_env takes the name of a variable, not the secret)",
    ),
    (
        "credential-secret-file-pasted",
        "credential-secret-file-pasted.yml:4:25: credentials.app.client_secret_file: cannot read the file named here: No such file or directory (os error 2) (the name is not shown: it does not look like a path; this key takes the path of a file, not its contents)",
    ),
    (
        "graph-endpoint-userinfo",
        "graph-endpoint-userinfo.yml:2:19: global.graph_endpoint: invalid URL \"https://***@graph.example.com/\": must not contain a user name or password",
    ),
    (
        "credential-secret-file-missing",
        "credential-secret-file-missing.yml:4:25: credentials.app.client_secret_file: cannot read \"tests/fixtures/config/invalid/../secrets/missing.txt\": No such file or directory (os error 2)",
    ),
    (
        "credential-two-secrets",
        "credential-two-secrets.yml:5:5: credentials.app: more than one kind of secret given (client_secret, client_secret_file); set exactly one of: client_secret, client_secret_file, client_secret_env, certificate_file + private_key_file, federated_token_file",
    ),
    (
        "credential-unknown-key",
        "credential-unknown-key.yml:5:5: credentials.app: unknown key \"client_secrets_file\"; did you mean \"client_secret_file\"?",
    ),
    // subscription_defaults
    (
        "defaults-unknown-credential",
        "defaults-unknown-credential.yml:6:15: subscription_defaults.credential: unknown credential \"apps\"; did you mean \"app\"?",
    ),
    (
        "defaults-unknown-key",
        "defaults-unknown-key.yml:7:3: subscription_defaults: unknown key \"probe_timeout\"; expected one of: credential, admins, probes, probe_interval",
    ),
    // subscriptions
    (
        "subscription-admin-spaces",
        "subscription-admin-spaces.yml:9:14: subscriptions[0].admins[0]: invalid e-mail address \"alice @contoso.com\": must not contain spaces",
    ),
    (
        "subscription-admins-not-list",
        "subscription-admins-not-list.yml:9:13: subscriptions[0].admins: expected a list, found a string",
    ),
    (
        "subscription-bad-admin",
        "subscription-bad-admin.yml:9:33: subscriptions[0].admins[1]: invalid e-mail address \"bob\": must contain exactly one \"@\"",
    ),
    (
        "subscription-bad-interval",
        "subscription-bad-interval.yml:9:21: subscriptions[0].probe_interval: invalid duration \"1h-30m\": expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
    ),
    (
        "subscription-bad-name",
        "subscription-bad-name.yml:6:11: subscriptions[0].name: invalid name \"Contoso\": must match [a-z0-9][a-z0-9_.-]*",
    ),
    (
        "subscription-bad-tenant",
        "subscription-bad-tenant.yml:7:16: subscriptions[0].tenant_id: invalid tenant_id \"contoso\": expected a tenant GUID or a domain such as contoso.onmicrosoft.com",
    ),
    (
        "subscription-duplicate-name",
        "subscription-duplicate-name.yml:9:11: subscriptions[1].name: duplicate subscription name \"contoso\" (also used by subscriptions[0])",
    ),
    (
        "subscription-missing-credential",
        "subscription-missing-credential.yml:6:5: subscriptions[0]: missing required key \"credential\" (subscription_defaults sets none)",
    ),
    ("subscription-missing-name", "subscription-missing-name.yml:6:5: subscriptions[0]: missing required key \"name\""),
    (
        "subscription-no-credentials-defined",
        "subscription-no-credentials-defined.yml:4:17: subscriptions[0].credential: unknown credential \"app\"; the credentials section defines none",
    ),
    (
        "subscription-unknown-credential",
        "subscription-unknown-credential.yml:8:17: subscriptions[0].credential: unknown credential \"ap\"; did you mean \"app\"?",
    ),
    (
        "subscription-unknown-key",
        "subscription-unknown-key.yml:9:5: subscriptions[0]: unknown key \"probe_intervals\"; did you mean \"probe_interval\"?",
    ),
    // probes
    (
        "probe-bad-mailbox",
        "probe-bad-mailbox.yml:11:18: subscriptions[0].probes[0].mailbox: invalid mailbox \"monitor\": expected a user principal name (user@domain) or an object ID (GUID)",
    ),
    (
        "probe-bad-name",
        "probe-bad-name.yml:11:15: subscriptions[0].probes[0].name: invalid name \"Sign In\": must match [a-z0-9][a-z0-9_.-]*",
    ),
    (
        "probe-bad-site-scheme",
        "probe-bad-site-scheme.yml:11:15: subscriptions[0].probes[0].site: invalid URL \"http://contoso.sharepoint.com/sites/monitoring\": a SharePoint site URL must use https",
    ),
    (
        "probe-bad-site-url",
        "probe-bad-site-url.yml:11:15: subscriptions[0].probes[0].site: invalid URL \"contoso.sharepoint.com/sites/monitoring\": relative URL without a base",
    ),
    (
        "probe-bad-team-id",
        "probe-bad-team-id.yml:11:18: subscriptions[0].probes[0].team_id: invalid GUID \"monitoring-team\": expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx with hexadecimal digits",
    ),
    (
        "probe-bad-timeout",
        "probe-bad-timeout.yml:11:18: subscriptions[0].probes[0].timeout: invalid duration \"soon\": expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
    ),
    (
        "probe-bad-user-type",
        "probe-bad-user-type.yml:11:15: subscriptions[0].probes[0].user: expected a string, found a list",
    ),
    (
        "probe-duplicate-name",
        "probe-duplicate-name.yml:12:9: subscriptions[0].probes[1]: duplicate probe name \"exchange\" (also used by subscriptions[0].probes[0]); give one of them a different \"name\"",
    ),
    (
        "probe-missing-parameter",
        "probe-missing-parameter.yml:10:9: subscriptions[0].probes[0]: missing required key \"mailbox\" for a probe of type \"exchange\"",
    ),
    ("probe-missing-type", "probe-missing-type.yml:10:9: subscriptions[0].probes[0]: missing required key \"type\""),
    ("probe-not-mapping", "probe-not-mapping.yml:9:14: subscriptions[0].probes[0]: expected a mapping, found a string"),
    (
        "probe-parameter-on-wrong-type",
        "probe-parameter-on-wrong-type.yml:11:9: subscriptions[0].probes[0]: key \"mailbox\" is only allowed on probes of type \"exchange\"",
    ),
    (
        "probe-unknown-key",
        "probe-unknown-key.yml:11:9: subscriptions[0].probes[1]: missing required key \"mailbox\" for a probe of type \"exchange\"\nprobe-unknown-key.yml:12:9: subscriptions[0].probes[1]: unknown key \"mailbx\"; did you mean \"mailbox\"?",
    ),
    (
        "probe-unknown-type",
        "probe-unknown-type.yml:10:15: subscriptions[0].probes[0].type: unknown probe type \"exchnage\"; did you mean \"exchange\"?",
    ),
    (
        "probes-empty",
        "probes-empty.yml:9:13: subscriptions[0].probes: at least one probe is required; leave out \"probes\" to get auth, organization, service_health",
    ),
    ("probes-not-list", "probes-not-list.yml:9:13: subscriptions[0].probes: expected a list, found a string"),
    // mail_roundtrip
    (
        "mail-bad-to-subscription",
        "mail-bad-to-subscription.yml:13:26: subscriptions[0].probes[0].to_subscription: invalid name \"Fabrikam\": must match [a-z0-9][a-z0-9_.-]*",
    ),
    (
        "mail-default-timeout-over-interval",
        "mail-default-timeout-over-interval.yml:10:9: subscriptions[0].probes[0]: a mail_roundtrip probe waits up to its timeout (default 5m) and runs at most once per interval, but the interval is 1m (default of global.probe_interval); set \"interval\" to 5m or more, or a shorter \"timeout\"",
    ),
    (
        "mail-missing-to",
        "mail-missing-to.yml:10:9: subscriptions[0].probes[0]: missing required key \"to\" for a probe of type \"mail_roundtrip\"",
    ),
    (
        "mail-timeout-over-interval",
        "mail-timeout-over-interval.yml:14:18: subscriptions[0].probes[0].timeout: timeout 10m (set here) is longer than the interval 5m (subscriptions[0].probes[0].interval)",
    ),
    (
        "mail-to-not-an-address",
        "mail-to-not-an-address.yml:12:13: subscriptions[0].probes[0].to: invalid to \"7e7e7e7e-3333-4333-8333-000000000003\": expected the recipient's e-mail address (user@domain); mail cannot be addressed to an object ID",
    ),
    (
        "mail-to-subscription-on-wrong-type",
        "mail-to-subscription-on-wrong-type.yml:12:9: subscriptions[0].probes[0]: key \"to_subscription\" is only allowed on probes of type \"mail_roundtrip\"",
    ),
    (
        "mail-unknown-to-subscription",
        "mail-unknown-to-subscription.yml:13:26: subscriptions[0].probes[0].to_subscription: unknown subscription \"fabrikm\"; did you mean \"fabrikam\"?",
    ),
    // timeout against interval
    (
        "defaults-probe-timeout-over-interval",
        "defaults-probe-timeout-over-interval.yml:9:16: subscription_defaults.probes[0].timeout: timeout 45s (set here) is longer than the interval 30s (subscriptions[0].probe_interval)",
    ),
    (
        "timeout-over-defaults-interval",
        "timeout-over-defaults-interval.yml:7:19: subscription_defaults.probe_interval: timeout 15s (default of global.probe_timeout) is longer than the interval 10s (set here)",
    ),
    (
        "timeout-over-global-interval",
        "timeout-over-global-interval.yml:6:18: global.probe_timeout: timeout 2m (set here) is longer than the interval 1m (default of global.probe_interval)",
    ),
    (
        "timeout-over-probe-interval",
        "timeout-over-probe-interval.yml:12:18: subscriptions[0].probes[0].timeout: timeout 45s (set here) is longer than the interval 30s (subscriptions[0].probes[0].interval)",
    ),
    (
        "timeout-over-subscription-interval",
        "timeout-over-subscription-interval.yml:9:21: subscriptions[0].probe_interval: timeout 15s (default of global.probe_timeout) is longer than the interval 10s (set here)",
    ),
    // discovery
    ("discovery-not-list", "discovery-not-list.yml:6:3: discovery: expected a list, found a mapping"),
    (
        "discovery-delegated-credential",
        "discovery-delegated-credential.yml:10:17: discovery[0].credential: credential \"signed-in\" is delegated (a signed-in account); discovery reads the partner tenant as the app: use an application credential",
    ),
    (
        "discovery-delegated-template",
        "discovery-delegated-template.yml:13:7: discovery[0].subscription_template: credential \"signed-in\" is delegated (a signed-in account), which discovered subscriptions cannot log in with: use an application credential",
    ),
    (
        "discovery-template-to-subscription",
        "discovery-template-to-subscription.yml:18:28: discovery[0].subscription_template.probes[0].to_subscription: to_subscription is not supported in a subscription_template",
    ),
    (
        "discovery-unknown-key",
        "discovery-unknown-key.yml:9:5: discovery[0]: unknown key \"refresh_intervall\"; did you mean \"refresh_interval\"?",
    ),
    (
        "discovery-missing-partner",
        "discovery-missing-partner.yml:6:5: discovery[0]: missing required key \"partner_tenant_id\"",
    ),
    (
        "discovery-bad-partner",
        "discovery-bad-partner.yml:8:24: discovery[0].partner_tenant_id: invalid partner_tenant_id \"partner\": expected a tenant GUID or a domain such as contoso.onmicrosoft.com",
    ),
    (
        "discovery-bad-name-no-credential",
        "discovery-bad-name-no-credential.yml:6:5: discovery[0]: missing required key \"credential\"\ndiscovery-bad-name-no-credential.yml:6:11: discovery[0].name: invalid name \"Partner One\": must match [a-z0-9][a-z0-9_.-]*",
    ),
    (
        "discovery-unknown-credential",
        "discovery-unknown-credential.yml:7:17: discovery[0].credential: unknown credential \"partner-ap\"; did you mean \"partner-app\"?",
    ),
    (
        "discovery-duplicate-name",
        "discovery-duplicate-name.yml:9:11: discovery[1].name: duplicate discovery name \"partner\" (also used by discovery[0])",
    ),
    (
        "discovery-bad-exclude",
        "discovery-bad-exclude.yml:9:15: discovery[0].exclude[0]: invalid GUID \"fabrikam.onmicrosoft.com\": expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx with hexadecimal digits (customers are excluded by tenant GUID)",
    ),
    (
        "discovery-bad-refresh-interval",
        "discovery-bad-refresh-interval.yml:9:23: discovery[0].refresh_interval: invalid duration \"hourly\": expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m",
    ),
    (
        "discovery-template-unknown-key",
        "discovery-template-unknown-key.yml:10:7: discovery[0].subscription_template: unknown key \"name\"; expected one of: credential, admins, probes, probe_interval",
    ),
    (
        "discovery-template-unknown-credential",
        "discovery-template-unknown-credential.yml:10:19: discovery[0].subscription_template.credential: unknown credential \"customer-app\"; expected one of: partner-app",
    ),
    (
        "discovery-template-timeout-over-interval",
        "discovery-template-timeout-over-interval.yml:13:20: discovery[0].subscription_template.probes[0].timeout: timeout 45s (set here) is longer than the interval 30s (discovery[0].subscription_template.probe_interval)",
    ),
    // several problems: all reported, in file order
    (
        "many-problems",
        "many-problems.yml:3:19: global.probe_interval: invalid duration \"1 minute\": expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m\nmany-problems.yml:6:5: credentials.app: no secret given; set exactly one of: client_secret, client_secret_file, client_secret_env, certificate_file + private_key_file, federated_token_file (or delegated: true for a signed-in account)\nmany-problems.yml:13:9: subscriptions[0].probes[0]: missing required key \"site\" for a probe of type \"sharepoint\"\nmany-problems.yml:15:18: subscriptions[0].probes[1].team_id: invalid GUID \"123\": expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx with hexadecimal digits\nmany-problems.yml:16:5: subscriptions[1]: missing required key \"credential\" (subscription_defaults sets none)\nmany-problems.yml:16:11: subscriptions[1].name: duplicate subscription name \"contoso\" (also used by subscriptions[0])\nmany-problems.yml:18:5: subscriptions[1]: unknown key \"credentail\"; did you mean \"credential\"?",
    ),
];

/// Every invalid fixture fails with exactly the message in the table.
#[test]
fn invalid_fixtures_fail_with_exact_messages() {
    let mut failures = Vec::new();
    for (name, want) in INVALID {
        let file = format!("{name}.yml");
        match load("invalid", &file) {
            Ok(_) => failures.push(format!("{file}: loaded, but should fail with\n  {want}")),
            Err(got) if got != *want => failures.push(format!("{file}:\n  want: {want}\n  got:  {got}")),
            Err(_) => {}
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The table and the fixture directory list the same cases, so no fixture
/// goes untested.
#[test]
fn every_invalid_fixture_is_in_the_table() {
    let mut on_disk: Vec<String> = std::fs::read_dir(Path::new(FIXTURES).join("invalid"))
        .expect("invalid fixtures exist")
        .map(|e| e.expect("directory entry").file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    let mut in_table: Vec<String> = INVALID.iter().map(|(n, _)| format!("{n}.yml")).collect();
    in_table.sort();
    assert_eq!(on_disk, in_table);
    assert!(INVALID.len() >= 25);
}

/// The smallest file gets every default: cloud endpoints, intervals, the
/// default probe set and no admins.
#[test]
fn minimal_config_gets_defaults() {
    let config = load_valid("minimal.yml");
    let g = &config.global;
    assert_eq!(g.cloud, Cloud::Global);
    assert_eq!(g.authority_host, "https://login.microsoftonline.com");
    assert_eq!(g.graph_endpoint, "https://graph.microsoft.com");
    assert_eq!(g.probe_interval, Duration::from_secs(60));
    assert_eq!(g.probe_timeout, Duration::from_secs(15));
    assert_eq!(g.max_concurrent_probes, 64);

    let app = &config.credentials["app"];
    assert_eq!(app.name, "app");
    assert_eq!(app.client_id, "11111111-2222-3333-4444-555555555555");
    match &app.kind {
        CredentialKind::Secret(SecretSource::Inline(s)) => assert_eq!(s.expose(), "minimal-secret"),
        other => panic!("unexpected kind {other:?}"),
    }

    let [sub] = config.subscriptions.as_slice() else { panic!("one subscription expected") };
    assert_eq!(sub.name, "contoso");
    assert_eq!(sub.tenant_id, "contoso.onmicrosoft.com");
    assert_eq!(sub.credential, "app");
    assert!(sub.admins.is_empty());
    let minute = Duration::from_secs(60);
    let fifteen = Duration::from_secs(15);
    assert_eq!(
        sub.probes,
        vec![
            ProbeConfig { name: "auth".into(), kind: ProbeKind::Auth, interval: minute, timeout: fifteen },
            ProbeConfig {
                name: "organization".into(),
                kind: ProbeKind::Organization,
                interval: minute,
                timeout: fifteen
            },
            ProbeConfig {
                name: "service_health".into(),
                kind: ProbeKind::ServiceHealth,
                interval: minute,
                timeout: fifteen
            },
        ]
    );
    assert_eq!(config.credential_of(sub).map(|c| c.name.as_str()), Some("app"));
}

/// An empty file and a file whose sections are empty are valid and probe nothing.
#[test]
fn empty_files_are_valid_and_say_so() {
    for config in [
        load_valid("empty.yml"),
        parse_str("global:\ncredentials:\nsubscription_defaults:\nsubscriptions:\n", "nulls.yml", Path::new("."))
            .expect("null sections are empty sections"),
    ] {
        assert!(config.subscriptions.is_empty());
        assert!(config.credentials.is_empty());
        assert_eq!(
            config.summary().lines().next(),
            Some("0 subscriptions, 0 probes, 0 credentials"),
            "{}",
            config.summary()
        );
        assert!(config.summary().contains("no subscriptions are configured: nothing will be probed\n"));
    }
}

/// Zero subscriptions with a credential: the credential is listed as unused.
#[test]
fn no_subscriptions_summary() {
    let config = load_valid("no-subscriptions.yml");
    assert_eq!(config.global.cloud, Cloud::China);
    assert_eq!(config.global.authority_host, "https://login.partner.microsoftonline.cn");
    assert_eq!(config.global.graph_endpoint, "https://microsoftgraph.chinacloudapi.cn");
    assert_eq!(
        config.summary(),
        "0 subscriptions, 0 probes, 1 credential\n\
         global: cloud china, sign-in https://login.partner.microsoftonline.cn, \
         Graph https://microsoftgraph.chinacloudapi.cn, probes every 1m with timeout 15s by default, at most 64 at once\n\
         credentials:\n  \
         app: client secret (inline); not used by any subscription\n\
         no subscriptions are configured: nothing will be probed\n"
    );
}

/// Discovery entries: the template resolves like a subscription (defaults,
/// global, interval and timeout), the credential falls back to the
/// discovery's own, exclusions are normalised, and the summary lists them.
#[test]
fn discovery_entries_resolve_their_template() {
    let config = load_valid("discovery.yml");
    let [d, second] = config.discovery.as_slice() else { panic!("two discovery entries expected") };
    assert_eq!(d.name, "partner");
    assert_eq!(d.credential, "partner-app");
    assert_eq!(d.partner_tenant_id, "aaaaaaaa-1111-4111-8111-000000000001");
    assert_eq!(d.refresh_interval, Duration::from_secs(1800));
    assert_eq!(d.exclude, ["bbbbbbbb-2222-4222-8222-000000000002"]);
    let t = &d.template;
    assert_eq!(t.credential, "customer-app");
    assert_eq!(t.admins, ["noc@reseller.example", "ops@reseller.example"]);
    let probes: Vec<(&str, u64, u64)> =
        t.probes.iter().map(|p| (p.name.as_str(), p.interval.as_secs(), p.timeout.as_secs())).collect();
    assert_eq!(probes, [("auth", 300, 15), ("health", 600, 30)]);

    assert_eq!(second.refresh_interval, m365mon::config::DEFAULT_REFRESH_INTERVAL);
    assert_eq!(second.partner_tenant_id, "partner2.onmicrosoft.com");
    assert!(second.exclude.is_empty());
    assert_eq!(second.template.credential, "partner-app");
    assert_eq!(second.template.admins, ["noc@reseller.example"]);
    let names: Vec<&str> = second.template.probes.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["auth", "organization", "service_health"]);
    assert!(second.template.probes.iter().all(|p| p.interval == Duration::from_secs(120)));

    let summary = config.summary();
    assert!(summary.contains("  customer-app: client secret (inline); used by 1 subscription and discovery partner\n"));
    assert!(summary.contains("  partner-app: client secret (inline); used by discovery partner, second\n"));
    assert!(summary.contains(
        "discovery:\n  partner: customers of partner tenant aaaaaaaa-1111-4111-8111-000000000001 (credential partner-app), \
         refreshed every 30m, 1 tenant excluded; each gets credential customer-app, 2 admins; probes auth (5m), health (10m)\n"
    ));
}

fn probe<'a>(config: &'a Config, sub: &str, probe: &str) -> &'a ProbeConfig {
    let s = config.subscriptions.iter().find(|s| s.name == sub).expect("subscription exists");
    s.probes.iter().find(|p| p.name == probe).expect("probe exists")
}

/// The large fixture: defaults, overrides, every credential kind, every
/// probe type, YAML anchors, normalisation of GUIDs, domains and admins.
#[test]
fn big_config_resolves_everything() {
    let config = load_valid("big.yml");
    let g = &config.global;
    assert_eq!(g.cloud, Cloud::UsGov);
    assert_eq!(g.authority_host, "http://127.0.0.1:18080");
    assert_eq!(g.graph_endpoint, "http://127.0.0.1:18080/graph");
    assert_eq!(g.max_concurrent_probes, 16);
    assert_eq!(config.subscriptions.len(), 140);
    assert_eq!(config.credentials.len(), 8);
    let names: Vec<&str> = config.subscriptions.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names[0], "tenant-000");
    assert_eq!(names[139], "tenant-139");

    // Only name and tenant_id: everything else from subscription_defaults.
    let s0 = &config.subscriptions[0];
    assert_eq!(s0.credential, "reseller");
    assert_eq!(s0.admins, ["noc@reseller.example"]);
    let p0: Vec<(&str, u64, u64)> =
        s0.probes.iter().map(|p| (p.name.as_str(), p.interval.as_secs(), p.timeout.as_secs())).collect();
    assert_eq!(p0, [("auth", 300, 20), ("organization", 300, 20), ("health", 600, 20)]);

    // Every probe type with its parameter; probe settings beat the others.
    let s1 = &config.subscriptions[1];
    assert_eq!(s1.credential, "from-file");
    let kinds: Vec<ProbeKind> = s1.probes.iter().map(|p| p.kind.clone()).collect();
    assert_eq!(
        kinds,
        [
            ProbeKind::Auth,
            ProbeKind::Organization,
            ProbeKind::Exchange { mailbox: "monitor@tenant001.onmicrosoft.com".into() },
            ProbeKind::Sharepoint { site: "https://tenant001.sharepoint.com/sites/monitoring".into() },
            ProbeKind::Onedrive { user: "monitor@tenant001.onmicrosoft.com".into() },
            ProbeKind::Teams { team_id: "5e5e5e5e-2222-4222-8222-000000000001".into() },
            ProbeKind::ServiceHealth,
        ]
    );
    assert_eq!(probe(&config, "tenant-001", "auth").timeout, Duration::from_secs(5));
    assert_eq!(probe(&config, "tenant-001", "auth").interval, Duration::from_secs(300));
    assert_eq!(probe(&config, "tenant-001", "health").interval, Duration::from_secs(900));
    assert_eq!(probe(&config, "tenant-001", "health").timeout, Duration::from_secs(60));

    // A YAML anchor shares one probe list; the subscription interval applies.
    for sub in ["tenant-002", "tenant-009", "tenant-135"] {
        assert_eq!(probe(&config, sub, "mail").kind, ProbeKind::Exchange { mailbox: "monitor@contoso.com".into() });
        assert_eq!(probe(&config, sub, "auth").interval, Duration::from_secs(30));
    }

    // Tenant GUIDs and domains are lowercased; admins lowercased and deduplicated.
    assert_eq!(config.subscriptions[3].tenant_id, "7e7e7e7e-3333-4333-8333-000000000003");
    assert_eq!(config.subscriptions[4].tenant_id, "tenant004.onmicrosoft.com");
    assert_eq!(config.subscriptions[4].admins, ["bob@example.com", "carol@example.com"]);
    // An explicit empty list overrides the default admins.
    assert!(config.subscriptions[5].admins.is_empty());
    assert_eq!(probe(&config, "tenant-006", "auth").interval, Duration::from_secs(3600));
    // The default health interval (10m) beats the subscription's 1h: probe settings win.
    assert_eq!(probe(&config, "tenant-006", "health").interval, Duration::from_secs(600));

    let fixtures = Path::new(FIXTURES).join("valid");
    match &config.credentials["from-file"].kind {
        CredentialKind::Secret(SecretSource::File(p)) => {
            assert_eq!(p, &fixtures.join("../secrets/client-secret.txt"));
        }
        other => panic!("unexpected kind {other:?}"),
    }
    match &config.credentials["from-env"].kind {
        CredentialKind::Secret(SecretSource::Env(v)) => assert_eq!(v, "M365MON_TEST_SECRET"),
        other => panic!("unexpected kind {other:?}"),
    }
    match &config.credentials["workload"].kind {
        CredentialKind::FederatedTokenFile(p) => assert_eq!(p, &fixtures.join("../secrets/federated-token.jwt")),
        other => panic!("unexpected kind {other:?}"),
    }
    assert_eq!(config.credentials["cert-pkcs8"].client_id, "0a0a0a0a-1111-4111-8111-000000000004");
}

/// `mail_roundtrip` gets its own 5m default timeout (not global.probe_timeout),
/// `to` is lowercased, `to_subscription` may name a later subscription, and
/// `message_center` takes no parameters.
#[test]
fn mail_and_message_center_probes() {
    let config = load_valid("mail.yml");
    let mail = probe(&config, "contoso", "mail_roundtrip");
    assert_eq!(
        mail.kind,
        ProbeKind::MailRoundtrip {
            from: "monitor@contoso.com".into(),
            to: "monitor@contoso.com".into(),
            to_subscription: None
        }
    );
    assert_eq!((mail.interval, mail.timeout), (Duration::from_secs(300), Duration::from_secs(300)));
    let cross = probe(&config, "contoso", "to-fabrikam");
    assert_eq!(
        cross.kind,
        ProbeKind::MailRoundtrip {
            from: "7e7e7e7e-3333-4333-8333-000000000003".into(),
            to: "monitor@fabrikam.com".into(),
            to_subscription: Some("fabrikam".into()),
        }
    );
    assert_eq!((cross.interval, cross.timeout), (Duration::from_secs(900), Duration::from_secs(600)));
    let mc = probe(&config, "contoso", "message_center");
    assert_eq!((mc.kind.clone(), mc.timeout), (ProbeKind::MessageCenter, Duration::from_secs(15)));
    // The redacted rendering shows the mail parameters and reloads.
    let rendered = config.render_redacted(&config.subscriptions[0]);
    assert!(rendered.contains("        to_subscription: fabrikam\n"), "{rendered}");
    assert!(rendered.contains("        from: monitor@contoso.com\n        to: monitor@contoso.com\n"), "{rendered}");
}

fn certificate(config: &Config, name: &str) -> m365mon::config::CertificateCredential {
    match &config.credentials[name].kind {
        CredentialKind::Certificate(c) => c.clone(),
        other => panic!("{name}: unexpected kind {other:?}"),
    }
}

/// Certificates are parsed at load: DER, expiry, and only the key block of
/// the key file is kept, whether PKCS#8, PKCS#1 or bundled with the certificate.
#[test]
fn certificate_credentials_are_loaded() {
    let config = load_valid("big.yml");
    let pkcs8 = certificate(&config, "cert-pkcs8");
    let pkcs1 = certificate(&config, "cert-pkcs1");
    let bundle = certificate(&config, "cert-bundle");
    // notAfter of certs/app.crt (see certs/README.md): 2126-11-10T15:00:57Z.
    assert_eq!(pkcs8.not_after_unix, 4_949_996_457);
    assert_eq!(pkcs8.certificate_der[0], 0x30, "DER starts with a SEQUENCE");
    assert_eq!(pkcs1.certificate_der, pkcs8.certificate_der);
    assert_eq!(bundle.certificate_der, pkcs8.certificate_der);
    let app_key = std::fs::read_to_string(Path::new(FIXTURES).join("certs/app.key")).expect("key fixture");
    assert_eq!(pkcs8.private_key_pem.expose(), app_key);
    assert_eq!(bundle.private_key_pem.expose(), app_key, "the certificate block is not part of the key");
    assert!(pkcs1.private_key_pem.expose().starts_with("-----BEGIN RSA PRIVATE KEY-----\n"));
    for c in [&pkcs8, &pkcs1, &bundle] {
        jsonwebtoken::EncodingKey::from_rsa_pem(c.private_key_pem.expose().as_bytes()).expect("usable key");
    }
    assert_eq!(pkcs8.certificate_file, Path::new(FIXTURES).join("valid/../certs/app.crt"));
}

/// The summary: counts, each credential's kind and users, one line per subscription.
#[test]
fn big_config_summary() {
    let config = load_valid("big.yml");
    let summary = config.summary();
    let lines: Vec<&str> = summary.lines().collect();
    assert_eq!(lines[0], "140 subscriptions, 480 probes, 8 credentials");
    let dir = "tests/fixtures/config/valid/..";
    let expected_credentials = [
        "credentials:".to_owned(),
        format!("  cert-bundle: certificate {dir}/certs/bundle.pem (expires 2126-11-10); used by 20 subscriptions"),
        format!("  cert-pkcs1: certificate {dir}/certs/app.crt (expires 2126-11-10); used by 20 subscriptions"),
        format!("  cert-pkcs8: certificate {dir}/certs/app.crt (expires 2126-11-10); used by 20 subscriptions"),
        "  from-env: client secret from environment variable M365MON_TEST_SECRET; used by 20 subscriptions".to_owned(),
        format!("  from-file: client secret from file {dir}/secrets/client-secret.txt; used by 20 subscriptions"),
        "  reseller: client secret (inline); used by 20 subscriptions".to_owned(),
        "  spare: client secret (inline); not used by any subscription".to_owned(),
        format!("  workload: federated token file {dir}/secrets/federated-token.jwt; used by 20 subscriptions"),
        "subscriptions:".to_owned(),
    ];
    assert_eq!(lines[2..12], expected_credentials);
    assert_eq!(
        lines[12],
        "  tenant-000: tenant tenant000.onmicrosoft.com, credential reseller, 1 admin; \
         probes auth (5m), organization (5m), health (10m)"
    );
    assert_eq!(
        lines[13],
        "  tenant-001: tenant tenant001.onmicrosoft.com, credential from-file, 2 admins; probes auth (5m), \
         organization (5m), exchange (5m), sharepoint (5m), onedrive (5m), teams (5m), health (15m)"
    );
    assert_eq!(lines.len(), 12 + 140);
}

/// The redacted rendering is a config file for just this subscription, all
/// defaults filled in, the secret replaced.
#[test]
fn render_redacted_shows_effective_settings() {
    let config = load_valid("minimal.yml");
    let rendered = config.render_redacted(&config.subscriptions[0]);
    assert_eq!(
        rendered,
        "global:
  cloud: global
  authority_host: https://login.microsoftonline.com
  graph_endpoint: https://graph.microsoft.com
credentials:
  app:
    client_id: 11111111-2222-3333-4444-555555555555
    client_secret: <secret>
subscriptions:
  - name: contoso
    tenant_id: contoso.onmicrosoft.com
    credential: app
    admins: []
    probes:
      - type: auth
        name: auth
        interval: 1m
        timeout: 15s
      - type: organization
        name: organization
        interval: 1m
        timeout: 15s
      - type: service_health
        name: service_health
        interval: 1m
        timeout: 15s
"
    );
    // The rendering is itself a valid config that resolves to the same subscription.
    let again = parse_str(&rendered.replace("<secret>", "x"), "rendered.yml", Path::new(".")).expect("reloads");
    assert_eq!(again.subscriptions, config.subscriptions);
}

/// Other credential kinds render their file or variable names, never contents.
#[test]
fn render_redacted_names_files_and_variables() {
    let config = load_valid("big.yml");
    let dir = "tests/fixtures/config/valid/..";
    let cases = [
        ("tenant-001", format!("    client_secret_file: {dir}/secrets/client-secret.txt\n")),
        ("tenant-002", "    client_secret_env: M365MON_TEST_SECRET\n".to_owned()),
        (
            "tenant-003",
            format!(
                "    certificate_file: {dir}/certs/app.crt # expires 2126-11-10\n    \
                 private_key_file: {dir}/certs/app.key\n"
            ),
        ),
        ("tenant-006", format!("    federated_token_file: {dir}/secrets/federated-token.jwt\n")),
    ];
    for (name, want) in cases {
        let sub = config.subscriptions.iter().find(|s| s.name == name).expect("subscription exists");
        let rendered = config.render_redacted(sub);
        assert!(rendered.contains(&want), "{name}: {want:?} not in\n{rendered}");
        // Paths are printed resolved, so the rendering reloads from anywhere.
        let again = parse_str_with_env(&rendered, "rendered.yml", Path::new("."), &fake_env)
            .unwrap_or_else(|e| panic!("{name}: rendering does not reload:\n{e}"));
        assert_eq!(again.subscriptions.as_slice(), std::slice::from_ref(sub));
        assert_eq!(again.credentials[&sub.credential], config.credentials[&sub.credential]);
    }
    let sub = config.subscriptions.iter().find(|s| s.name == "tenant-001").expect("subscription exists");
    let rendered = config.render_redacted(sub);
    assert!(rendered.contains("        site: https://tenant001.sharepoint.com/sites/monitoring\n"), "{rendered}");
    assert!(rendered.contains("        team_id: 5e5e5e5e-2222-4222-8222-000000000001\n"), "{rendered}");
    assert!(!rendered.contains("file-secret-value"));
}

/// The annotated example loads (its env credential needs M365MON_CLIENT_SECRET)
/// and uses every credential kind and every probe type.
#[test]
fn example_config_loads_and_covers_everything() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/m365mon.yml");
    let text = std::fs::read_to_string(&path).expect("example exists");
    let config = parse_str_with_env(&text, "examples/m365mon.yml", path.parent().expect("has a directory"), &fake_env)
        .unwrap_or_else(|e| panic!("example should load:\n{e}"));
    assert_eq!(config.subscriptions.len(), 6);
    assert_eq!(config.discovery.len(), 1);

    let mut kinds: Vec<&str> = config
        .credentials
        .values()
        .map(|c| match &c.kind {
            CredentialKind::Secret(SecretSource::Inline(_)) => "inline",
            CredentialKind::Secret(SecretSource::File(_)) => "file",
            CredentialKind::Secret(SecretSource::Env(_)) => "env",
            CredentialKind::Certificate(_) => "certificate",
            CredentialKind::FederatedTokenFile(_) => "federated",
            CredentialKind::Delegated(_) => "delegated",
        })
        .collect();
    kinds.sort_unstable();
    assert_eq!(kinds, ["certificate", "delegated", "env", "federated", "file", "inline"]);

    let mut types: Vec<&str> =
        config.subscriptions.iter().flat_map(|s| s.probes.iter().map(|p| p.kind.type_name())).collect();
    types.sort_unstable();
    types.dedup();
    assert_eq!(
        types,
        [
            "auth",
            "exchange",
            "mail_roundtrip",
            "message_center",
            "onedrive",
            "organization",
            "service_health",
            "sharepoint",
            "teams"
        ]
    );

    // Without the variable the example names exactly what is missing.
    let err = parse_str_with_env(&text, "examples/m365mon.yml", path.parent().expect("dir"), &|_| None)
        .expect_err("needs the variable");
    assert_eq!(
        err.to_string(),
        "examples/m365mon.yml:52:24: credentials.from-env.client_secret_env: \
         environment variable \"M365MON_CLIENT_SECRET\" is not set"
    );
}

/// `load_file` names the file in errors and resolves paths against its directory.
#[test]
fn load_file_resolves_relative_paths() {
    let path = Path::new(FIXTURES).join("valid/relative-paths.yml");
    let config = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    match &config.credentials["app"].kind {
        CredentialKind::Secret(SecretSource::File(p)) => {
            assert_eq!(p, &Path::new(FIXTURES).join("valid/../secrets/client-secret.txt"));
        }
        other => panic!("unexpected kind {other:?}"),
    }
    assert_eq!(certificate(&config, "cert").not_after_unix, 4_949_996_457);

    let missing = Path::new(FIXTURES).join("valid/does-not-exist.yml");
    assert_eq!(
        load_file(&missing).expect_err("missing file").to_string(),
        "tests/fixtures/config/valid/does-not-exist.yml: cannot read config file: No such file or directory (os error 2)"
    );
    let bad = load_file(&Path::new(FIXTURES).join("invalid/subscription-bad-tenant.yml")).expect_err("invalid");
    assert_eq!(bad.0.len(), 1);
    assert_eq!(bad.0[0].origin, "tests/fixtures/config/invalid/subscription-bad-tenant.yml");
    assert_eq!((bad.0[0].line, bad.0[0].column), (Some(7), Some(16)));
    assert_eq!(bad.0[0].key_path, "subscriptions[0].tenant_id");
}

/// A file that is not UTF-8 is refused with the line of the first bad byte.
#[test]
fn load_file_refuses_invalid_utf8() {
    let dir = std::env::temp_dir().join(format!("m365mon-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path: PathBuf = dir.join("latin1.yml");
    std::fs::write(&path, b"global:\n  cloud: caf\xe9\n").expect("write temp file");
    let err = load_file(&path).expect_err("not UTF-8");
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(err.to_string(), format!("{}:2: the file is not valid UTF-8", path.display()));
}

/// A canary secret and the private key never appear in Debug output, the
/// summary, the redacted rendering or error messages.
#[test]
fn secrets_never_leak() {
    const CANARY: &str = "CANARY-9f8e7d6c-secret-value";
    let key = std::fs::read_to_string(Path::new(FIXTURES).join("certs/app.key")).expect("key fixture");
    // A line from the middle of the key: any printed part of it would show.
    let key_line = key.lines().nth(5).expect("key has lines").to_owned();
    let text = format!(
        "credentials:
  canary:
    client_id: 11111111-2222-3333-4444-555555555555
    client_secret: {CANARY}
  cert:
    client_id: 11111111-2222-3333-4444-555555555556
    certificate_file: ../certs/app.crt
    private_key_file: ../certs/app.key
subscriptions:
  - name: a
    tenant_id: a.onmicrosoft.com
    credential: canary
  - name: b
    tenant_id: b.onmicrosoft.com
    credential: cert
"
    );
    let dir = Path::new(FIXTURES).join("valid");
    let config = parse_str(&text, "canary.yml", &dir).expect("canary config loads");
    let mut outputs = vec![format!("{config:?}"), format!("{config:#?}"), config.summary()];
    outputs.extend(config.subscriptions.iter().map(|s| config.render_redacted(s)));
    for out in &outputs {
        assert!(!out.contains(CANARY), "canary leaked:\n{out}");
        assert!(!out.contains(&key_line), "key leaked:\n{out}");
        assert!(!out.contains("PRIVATE KEY-----"), "key leaked:\n{out}");
    }
    assert!(outputs[0].contains("<secret>"));

    // Errors neither: not when the secret is mistyped, misplaced or beside other mistakes.
    for (case, body) in [
        ("secret in client_id", format!("    client_id: {CANARY}\n    client_secret: {CANARY}\n")),
        ("two kinds", format!("    client_id: 0a\n    client_secret: {CANARY}\n    client_secret_env: X\n")),
        ("secret as list", format!("    client_id: 0a\n    client_secret: [{CANARY}]\n")),
        ("typo in key", format!("    client_id: 0a\n    client_secrt: {CANARY}\n")),
        ("repeated key", format!("    client_secret: {CANARY}\n    client_secret: {CANARY}\n")),
        ("bad YAML after", format!("    client_secret: \"{CANARY}\"\n    client_id: [\n")),
        ("bad YAML in", format!("    client_secret: \"{CANARY}\n")),
    ] {
        let broken = format!(
            "credentials:\n  canary:\n{body}subscriptions:\n  - name: A\n    tenant_id: x\n    credential: canary\n"
        );
        let err = parse_str(&broken, "broken.yml", &dir).expect_err(case);
        let shown = format!("{err}\n{err:?}");
        assert!(!shown.contains(CANARY), "{case}: canary leaked:\n{shown}");
        assert!(shown.contains("broken.yml:"), "{case}: {shown}");
    }
}

/// Thousands of tenants sharing one probe list through a YAML anchor load
/// (the parser's default limits for untrusted input would refuse this).
#[test]
fn five_thousand_subscriptions_with_a_shared_anchor_load() {
    let mut text = String::from(
        "credentials:
  app:
    client_id: 11111111-2222-3333-4444-555555555555
    client_secret: s
subscriptions:
  - name: t0
    tenant_id: t0.onmicrosoft.com
    credential: app
    probes: &all
      - type: auth
      - type: organization
      - type: exchange
        mailbox: m@contoso.com
      - type: sharepoint
        site: https://contoso.sharepoint.com/sites/m
      - type: onedrive
        user: m@contoso.com
      - type: teams
        team_id: 5e5e5e5e-2222-4222-8222-000000000001
      - type: service_health
",
    );
    for i in 1..5000 {
        text.push_str(&format!(
            "  - name: t{i}\n    tenant_id: t{i}.onmicrosoft.com\n    credential: app\n    probes: *all\n"
        ));
    }
    let config = parse_str(&text, "many.yml", Path::new(".")).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.subscriptions.len(), 5000);
    assert!(config.subscriptions.iter().all(|s| s.probes.len() == 7));
}

/// Truncated and mangled versions of the example never panic the loader:
/// each either loads or yields located errors.
#[test]
fn mangled_input_never_panics() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/m365mon.yml");
    let text = std::fs::read_to_string(&path).expect("example exists");
    let dir = path.parent().expect("has a directory");
    let cut_points: Vec<usize> = (0..text.len()).step_by(7).filter(|&i| text.is_char_boundary(i)).collect();
    for i in cut_points {
        let mangled = [&text[..i], &text[..i].replace(": ", ":\t- ").replace("  ", " ")];
        for t in mangled {
            if let Err(e) = parse_str_with_env(t, "mangled.yml", dir, &fake_env) {
                assert!(!e.0.is_empty());
                assert!(e.0.iter().all(|e| e.origin == "mangled.yml" && !e.message.is_empty()));
            }
        }
    }
}

/// `delegated: true` makes a delegated credential, with or without a client
/// secret; `delegated: false` is an ordinary app-only credential. The
/// redacted rendering keeps the flag and hides the secret.
#[test]
fn delegated_credentials_load() {
    let config = load_valid("delegated.yml");
    assert_eq!(config.credentials["public"].kind, CredentialKind::Delegated(None));
    assert_eq!(
        config.credentials["confidential"].kind,
        CredentialKind::Delegated(Some(SecretSource::Env("M365MON_TEST_SECRET".into())))
    );
    assert!(matches!(config.credentials["app-only"].kind, CredentialKind::Secret(SecretSource::Inline(_))));
    let rendered = config.render_redacted(&config.subscriptions[0]);
    assert!(rendered.contains("delegated: true"), "{rendered}");
    assert!(config.summary().contains("delegated sign-in (public client)"), "{}", config.summary());
}
