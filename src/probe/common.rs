//! Pieces shared by the Graph probes.

use serde_json::Value;

use super::{FailureReason, Outcome, ProbeContext, ProbeLog, Workload};
use crate::auth::TokenProvider;
use crate::config::{Credential, Secret, Subscription};

/// A token for the probe's subscription, or the outcome a sign-in failure means.
pub(super) async fn token(ctx: &ProbeContext<'_>, fresh: bool, log: &mut ProbeLog) -> Result<Secret, Outcome> {
    token_for(ctx, ctx.subscription, ctx.credential, fresh, log).await
}

/// A token for another subscription (sign-in is counted under its name).
pub(super) async fn token_for(
    ctx: &ProbeContext<'_>,
    sub: &Subscription,
    credential: &Credential,
    fresh: bool,
    log: &mut ProbeLog,
) -> Result<Secret, Outcome> {
    ctx.tokens.token(&sub.name, credential, &sub.tenant_id, fresh, log).await.map_err(|e| match e.reason {
        FailureReason::Throttled => Outcome::Throttled {
            workload: Workload::Identity,
            retry_after: e.retry_after.unwrap_or(std::time::Duration::from_secs(60)),
        },
        r => Outcome::Failure(r),
    })
}

/// What Outlook counts concurrent requests by: (app, tenant, mailbox), for
/// [`crate::graph::GraphClient::mailbox_slot`].
pub(super) fn mailbox_key(sub: &Subscription, credential: &Credential, user: &str) -> String {
    format!("{}|{}|{}", credential.client_id, sub.tenant_id, user)
}

/// Signs in (from the cache) and GETs one Graph path.
pub(super) async fn get(
    ctx: &ProbeContext<'_>,
    path: &str,
    workload: Workload,
    log: &mut ProbeLog,
) -> Result<Value, Outcome> {
    let token = token(ctx, false, log).await?;
    let r = ctx.graph.get_json(&ctx.graph.url(path), &token, workload, log).await;
    if let Err(o) = &r {
        on_unauthorized(ctx.tokens, ctx.subscription, ctx.credential, &token, o, log).await;
    }
    r
}

/// After Graph answered 401 to `token`, drops it from the cache so the next
/// run signs in again instead of failing until the token's renewal is due.
pub(super) async fn on_unauthorized(
    tokens: &TokenProvider,
    sub: &Subscription,
    credential: &Credential,
    token: &Secret,
    outcome: &Outcome,
    log: &mut ProbeLog,
) {
    if *outcome == Outcome::Failure(FailureReason::Unauthorized) {
        log.line("token: Graph rejected it; dropped from the cache");
        tokens.invalidate(credential, &sub.tenant_id, token).await;
    }
}

/// Succeeds when the body is an object with a non-empty string `id`.
pub(super) fn expect_id(body: &Value, what: &str, log: &mut ProbeLog) -> Outcome {
    match body.get("id").and_then(Value::as_str) {
        Some(id) if !id.is_empty() => {
            log.line(format!("{what} found (id {id})"));
            Outcome::Success
        }
        _ => {
            log.line(format!("{what}: response has no \"id\""));
            Outcome::Failure(FailureReason::InvalidResponse)
        }
    }
}

/// Percent-encodes one path segment (RFC 3986 pchar; '@' and ':' stay).
pub(super) fn segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'.'
            | b'_'
            | b'~'
            | b'@'
            | b':'
            | b'!'
            | b'$'
            | b'&'
            | b'('
            | b')'
            | b'*'
            | b'+'
            | b','
            | b';'
            | b'=' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Percent-encodes a query value: everything but RFC 3986 unreserved
/// characters, so `<`, `>`, `@`, `'`, `&`, `+` and spaces are safe.
pub(super) fn query_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An OData string literal: single quotes, with quotes inside doubled.
pub(super) fn odata_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// Seconds since the Unix epoch of a Graph `DateTimeOffset` such as
/// `2025-01-10T09:12:31.39Z` or `2025-01-10T10:12:31+01:00`; `None` when it
/// is not one.
pub(super) fn parse_datetime(s: &str) -> Option<f64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't') || b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num =
        |r: std::ops::Range<usize>| s.get(r).filter(|x| x.bytes().all(|c| c.is_ascii_digit()))?.parse::<i64>().ok();
    let (y, mo, d, h, mi, sec) = (num(0..4)?, num(5..7)?, num(8..10)?, num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut frac = 0.0;
    if let Some(r) = rest.strip_prefix('.') {
        let digits = r.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        frac = format!("0.{}", &r[..digits]).parse().ok()?;
        rest = &r[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first() {
                Some(b'+') => 1,
                Some(b'-') => -1,
                _ => return None,
            };
            let (oh, om) = rest[1..].split_once(':')?;
            if oh.len() != 2 || om.len() != 2 {
                return None;
            }
            let (oh, om) = (oh.parse::<i64>().ok()?, om.parse::<i64>().ok()?);
            sign * (oh * 3600 + om * 60)
        }
    };
    // Days from civil (Howard Hinnant's algorithm).
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60 + sec - offset) as f64 + frac)
}

/// Undoes percent-encoding (invalid escapes are kept as they are).
pub(super) fn decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%' && i + 2 < b.len() && s.is_char_boundary(i + 3))
            .then(|| u8::from_str_radix(&s[i + 1..i + 3], 16).ok())
            .flatten();
        if let Some(v) = escaped {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Runs a GET probe whose success is "an object with an id".
pub(super) async fn get_object(
    ctx: &ProbeContext<'_>,
    path: &str,
    workload: Workload,
    what: &str,
    log: &mut ProbeLog,
) -> Outcome {
    match get(ctx, path, workload, log).await {
        Ok(body) => expect_id(&body, what, log),
        Err(outcome) => outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::segment;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(segment("monitor@contoso.com"), "monitor@contoso.com");
        assert_eq!(segment("a b/c?d#e'f"), "a%20b%2Fc%3Fd%23e%27f");
        assert_eq!(segment("Ünï"), "%C3%9Cn%C3%AF");
        assert_eq!(super::decode("My%20Site%2"), "My Site%2");
        assert_eq!(super::decode("%zz%C3%9C"), "%zzÜ");
        assert_eq!(
            super::query_value("internetMessageId eq '<a+b@x>'"),
            "internetMessageId%20eq%20%27%3Ca%2Bb%40x%3E%27"
        );
        assert_eq!(super::odata_string("<o'brien@x>"), "'<o''brien@x>'");
    }

    #[test]
    fn datetimes_parse() {
        use super::parse_datetime as p;
        assert_eq!(p("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(p("2025-01-10T09:00:05Z"), Some(1_736_499_605.0));
        assert_eq!(p("2025-01-10T10:00:05+01:00"), Some(1_736_499_605.0));
        assert_eq!(p("2025-01-10T09:00:05.5Z"), Some(1_736_499_605.5));
        assert_eq!(p("2024-02-29T00:00:00Z"), Some(1_709_164_800.0));
        for bad in [
            "",
            "2025-01-10",
            "2025-13-10T09:00:05Z",
            "2025-01-10T09:00:05",
            "2025-01-10T09:00:05.Z",
            "x025-01-10T09:00:05Z",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}
