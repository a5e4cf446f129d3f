//! Pieces shared by the Graph probes.

use serde_json::Value;

use super::{FailureReason, Outcome, ProbeContext, ProbeLog, Workload};
use crate::config::Secret;

/// A token for the probe's subscription, or the outcome a sign-in failure means.
pub(super) async fn token(ctx: &ProbeContext<'_>, fresh: bool, log: &mut ProbeLog) -> Result<Secret, Outcome> {
    ctx.tokens.token(&ctx.subscription.name, ctx.credential, &ctx.subscription.tenant_id, fresh, log).await.map_err(
        |e| match e.reason {
            FailureReason::Throttled => Outcome::Throttled {
                workload: Workload::Identity,
                retry_after: e.retry_after.unwrap_or(std::time::Duration::from_secs(60)),
            },
            r => Outcome::Failure(r),
        },
    )
}

/// Signs in (from the cache) and GETs one Graph path.
pub(super) async fn get(
    ctx: &ProbeContext<'_>,
    path: &str,
    workload: Workload,
    log: &mut ProbeLog,
) -> Result<Value, Outcome> {
    let token = token(ctx, false, log).await?;
    ctx.graph.get_json(&ctx.graph.url(path), &token, workload, log).await
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
    }
}
