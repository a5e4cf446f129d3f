//! Checks and conversions for single values: durations, GUIDs, names,
//! domains, e-mail addresses and URLs. Each error is a complete message.

use std::time::Duration;

/// Units of the Prometheus duration syntax, largest first, in milliseconds.
const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Longest probe interval (`probe_interval`, `interval`). A year leaves room
/// for setups that only use `/probe` and want scheduled runs out of the way.
pub const MAX_PROBE_INTERVAL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Longest probe timeout (`probe_timeout`, `timeout`).
pub const MAX_PROBE_TIMEOUT: Duration = Duration::from_secs(24 * 3600);
/// Longest discovery `refresh_interval`.
pub const MAX_REFRESH_INTERVAL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Parses a Prometheus duration such as `30s`, `1h30m` or `500ms`: units
/// from largest to smallest, each at most once. Zero is refused.
pub(super) fn parse_duration(s: &str) -> Result<Duration, String> {
    let bad = |why: &str| format!("invalid duration \"{s}\": {why}");
    let syntax = "expected a number and a unit (ms, s, m, h, d, w, y), e.g. 30s or 1h30m";
    if s == "0" {
        return Err(bad("must be greater than zero"));
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(&format!("a unit is required, e.g. {s}s")));
    }
    let mut rest = s;
    let mut total: u64 = 0;
    // Index into UNITS of the next unit allowed; enforces order and uniqueness.
    let mut next_unit = 0;
    if rest.is_empty() {
        return Err(bad(syntax));
    }
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad(syntax));
        }
        let (num, after) = rest.split_at(digits);
        let n: u64 = num.parse().map_err(|_| bad("the number is too large"))?;
        // `ms` before `m`, so that `500ms` is not read as 500 minutes and "s".
        let found =
            UNITS.iter().enumerate().filter(|(_, (u, _))| after.starts_with(u)).max_by_key(|(_, (u, _))| u.len());
        let Some((i, (unit, ms))) = found else {
            return Err(bad(syntax));
        };
        if i < next_unit {
            return Err(bad("units must go from largest to smallest (y, w, d, h, m, s, ms), each at most once"));
        }
        next_unit = i + 1;
        total = n.checked_mul(*ms).and_then(|v| total.checked_add(v)).ok_or_else(|| bad("too large"))?;
        rest = &after[unit.len()..];
    }
    if total == 0 {
        return Err(bad("must be greater than zero"));
    }
    Ok(Duration::from_millis(total))
}

/// Prints a duration the way Prometheus does: `1h30m`, `500ms`, `1w`.
pub fn format_duration(d: Duration) -> String {
    let mut ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, size) in UNITS {
        if ms >= size {
            out.push_str(&format!("{}{unit}", ms / size));
            ms %= size;
        }
    }
    out
}

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx` in hexadecimal, either case.
pub(super) fn is_guid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| if matches!(i, 8 | 13 | 18 | 23) { c == '-' } else { c.is_ascii_hexdigit() })
}

pub(super) const GUID_FORM: &str = "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx with hexadecimal digits";

/// A GUID, lowercased.
pub(super) fn check_guid(s: &str) -> Result<String, String> {
    if is_guid(s) { Ok(s.to_ascii_lowercase()) } else { Err(format!("invalid GUID \"{s}\": expected {GUID_FORM}")) }
}

pub(super) const NAME_PATTERN: &str = "[a-z0-9][a-z0-9_.-]*";

/// Subscription, credential and probe names: `[a-z0-9][a-z0-9_.-]*`.
pub(super) fn check_name(s: &str) -> Result<(), String> {
    let mut chars = s.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    if first_ok && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-')) {
        Ok(())
    } else {
        Err(format!("invalid name \"{s}\": must match {NAME_PATTERN}"))
    }
}

/// A DNS name with at least two labels, such as `contoso.onmicrosoft.com`.
pub(super) fn is_domain(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    s.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
        && labels.last().is_some_and(|tld| tld.chars().any(|c| c.is_ascii_alphabetic()))
}

/// A tenant GUID or domain, lowercased.
pub(super) fn check_tenant(s: &str) -> Result<String, String> {
    if is_guid(s) || is_domain(s) {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(format!("invalid tenant_id \"{s}\": expected a tenant GUID or a domain such as contoso.onmicrosoft.com"))
    }
}

/// An admin's e-mail address, lowercased.
pub(super) fn check_email(s: &str) -> Result<String, String> {
    let bad = |why: &str| format!("invalid e-mail address \"{s}\": {why}");
    if s.chars().any(char::is_whitespace) {
        return Err(bad("must not contain spaces"));
    }
    match s.split_once('@') {
        Some((local, domain)) if !domain.contains('@') => {
            if local.is_empty() || domain.is_empty() {
                Err(bad("expected name@domain"))
            } else {
                Ok(s.to_lowercase())
            }
        }
        _ => Err(bad("must contain exactly one \"@\"")),
    }
}

/// A mailbox or drive owner: a user principal name or an object ID.
pub(super) fn check_user(what: &str, s: &str) -> Result<String, String> {
    let upn = s.split('@').count() == 2
        && !s.starts_with('@')
        && !s.ends_with('@')
        && !s.chars().any(|c| c.is_whitespace() || matches!(c, '/' | '\\' | '?'));
    if is_guid(s) || upn {
        Ok(s.to_owned())
    } else {
        Err(format!("invalid {what} \"{s}\": expected a user principal name (user@domain) or an object ID (GUID)"))
    }
}

/// Whether `s` may be shown as the name of an environment variable:
/// `[A-Za-z_][A-Za-z0-9_]*`, at most 64 characters, and not mixed case.
/// Anything else may be a secret pasted in place of the name.
pub(super) fn looks_like_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let mixed_case = s.chars().any(|c| c.is_ascii_uppercase()) && s.chars().any(|c| c.is_ascii_lowercase());
    first_ok && s.len() <= 64 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_') && !mixed_case && !looks_random(s)
}

/// Whether `s` has a run of 16 or more letters and digits with both in it,
/// as generated secrets (and hex tokens) do and names rarely do.
fn looks_random(s: &str) -> bool {
    s.split(|c: char| !c.is_ascii_alphanumeric()).any(|run| {
        run.len() >= 16 && run.chars().any(|c| c.is_ascii_digit()) && run.chars().any(|c| c.is_ascii_alphabetic())
    })
}

/// Whether `path` may be shown in a message: every component at most 64
/// characters of `[A-Za-z0-9._ -]` (plus a Windows drive), and none that
/// looks random (16 or more letters and digits in a row, both mixed in).
/// Anything else may be a secret pasted in place of the file name.
pub(super) fn looks_like_path(path: &std::path::Path) -> bool {
    let Some(s) = path.to_str() else { return false };
    let component_ok = |c: &str| {
        let plain = c.chars().all(|ch| ch.is_ascii_alphanumeric() || matches!(ch, '.' | '_' | ' ' | '-'));
        c.len() <= 64 && plain && !looks_random(c)
    };
    let s = match s.as_bytes() {
        [d, b':', ..] if d.is_ascii_alphabetic() => &s[2..],
        _ => s,
    };
    !s.is_empty() && s.split(['/', '\\']).all(component_ok)
}

/// `s` with any user name and password (before `@` in the authority) replaced by `***`.
pub(super) fn without_userinfo(s: &str) -> String {
    let start = s.find("://").map_or(0, |i| i + 3);
    let end = s[start..].find(['/', '?', '#']).map_or(s.len(), |i| start + i);
    match s[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &s[..start], &s[start + at..]),
        None => s.to_owned(),
    }
}

/// `authority_host` and `graph_endpoint`: an absolute http(s) URL without
/// query or fragment, returned without trailing slashes.
pub(super) fn check_endpoint(s: &str) -> Result<String, String> {
    let url = parse_url(s)?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("invalid URL \"{}\": the scheme must be http or https", without_userinfo(s)));
    }
    Ok(s.trim_end_matches('/').to_owned())
}

/// A SharePoint site: an https URL with a host.
pub(super) fn check_site(s: &str) -> Result<String, String> {
    let url = parse_url(s)?;
    if url.scheme() != "https" {
        return Err(format!("invalid URL \"{}\": a SharePoint site URL must use https", without_userinfo(s)));
    }
    Ok(s.to_owned())
}

fn parse_url(s: &str) -> Result<url::Url, String> {
    let bad = |why: &str| format!("invalid URL \"{}\": {why}", without_userinfo(s));
    if s.chars().any(char::is_whitespace) {
        return Err(bad("must not contain spaces"));
    }
    let url = url::Url::parse(s).map_err(|e| bad(&e.to_string()))?;
    if url.host_str().is_none_or(str::is_empty) {
        return Err(bad("a host is required"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("must not contain a user name or password"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("must not have a query (?) or fragment (#)"));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_may_be_secrets_are_not_shown() {
        for s in ["M365MON_CLIENT_SECRET", "_x", "secret_file", "A1"] {
            assert!(looks_like_env_name(s), "{s}");
        }
        for s in [
            "",
            "1A",
            "abc8Q~xyzABCdefGHI.jkl-MNO_pqr",
            "MySecret",
            "A B",
            "a=b",
            &"A".repeat(65),
            "xk29fj38dk2jdkwq0slw",
        ] {
            assert!(!looks_like_env_name(s), "{s}");
        }
        for s in ["secret.txt", "/run/secrets/client_secret", "../secrets/app secret.txt", "C:\\m365mon\\secret.txt"] {
            assert!(looks_like_path(std::path::Path::new(s)), "{s}");
        }
        for s in [
            "abc8Q~xyzABCdefGHI.jkl-MNO_pqr",
            "Aa1bB2cC3+dD4/eE5=",
            "dir/Aa1bB2cC3dD4eE5fF6gG7",
            "canary-9f86d081884c7d659a2feaa0c55ad015",
        ] {
            assert!(!looks_like_path(std::path::Path::new(s)), "{s}");
        }
        assert_eq!(without_userinfo("https://user:pa55@graph.example.com/x@y"), "https://***@graph.example.com/x@y");
        assert_eq!(without_userinfo("user:pa55@graph.example.com"), "***@graph.example.com");
        assert_eq!(without_userinfo("https://graph.example.com/a@b"), "https://graph.example.com/a@b");
    }

    #[test]
    fn durations_follow_prometheus() {
        let ok = [
            ("500ms", 500),
            ("30s", 30_000),
            ("1m", 60_000),
            ("1h30m", 5_400_000),
            ("1d", 86_400_000),
            ("1w", 604_800_000),
            ("1y", 31_536_000_000),
            ("1m500ms", 60_500),
            ("0s1ms", 1),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for s in ["", "0", "0s", "30", "1.5s", "-1s", "1m1h", "1s1s", "5 m", "m", "1x", "99999999999999999999s"] {
            assert!(parse_duration(s).is_err(), "{s} should be rejected");
        }
    }

    #[test]
    fn durations_print_like_prometheus() {
        for s in ["500ms", "30s", "1m", "1h30m", "1d", "1w", "1y", "1m500ms", "2w3d4h5m6s7ms"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
        assert_eq!(format_duration(Duration::from_secs(90)), "1m30s");
    }

    #[test]
    fn names_guids_domains() {
        assert!(check_name("contoso-eu.prod_1").is_ok());
        assert!(check_name("Contoso").is_err());
        assert!(check_name("-x").is_err());
        assert!(check_name("").is_err());
        assert!(is_guid("0f4b5d5e-1234-4abc-9def-0123456789AB"));
        assert!(!is_guid("0f4b5d5e12344abc9def0123456789ab"));
        assert!(is_domain("contoso.onmicrosoft.com"));
        assert!(!is_domain("contoso"));
        assert!(!is_domain("contoso..com"));
        assert!(!is_domain("-a.com"));
    }

    #[test]
    fn emails_and_users() {
        assert_eq!(check_email("Alice@Contoso.com"), Ok("alice@contoso.com".to_owned()));
        assert!(check_email("a@b@c").is_err());
        assert!(check_email("a b@c").is_err());
        assert!(check_email("@c").is_err());
        assert!(check_user("mailbox", "user_ext#EXT#@contoso.onmicrosoft.com").is_ok());
        assert!(check_user("mailbox", "0f4b5d5e-1234-4abc-9def-0123456789ab").is_ok());
        assert!(check_user("mailbox", "monitor").is_err());
        assert!(check_user("mailbox", "a/b@c").is_err());
    }

    #[test]
    fn urls() {
        assert_eq!(check_endpoint("http://127.0.0.1:8080/"), Ok("http://127.0.0.1:8080".to_owned()));
        assert_eq!(check_endpoint("https://graph.example/base//"), Ok("https://graph.example/base".to_owned()));
        assert!(check_endpoint("ftp://x.example").is_err());
        assert!(check_endpoint("/relative").is_err());
        assert!(check_endpoint("https://x.example/?a=b").is_err());
        assert!(check_site("https://contoso.sharepoint.com/sites/x").is_ok());
        assert!(check_site("http://contoso.sharepoint.com/sites/x").is_err());
    }
}
