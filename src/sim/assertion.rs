//! Client assertions (protocol doc 1.4): certificate-signed JWTs and
//! federated (workload identity) tokens.
//!
//! Simulator simplification: a federated assertion's signature is **not**
//! checked (the simulator does not know the external issuer's keys); its
//! `iss`/`sub` must match one of the app's federated credentials, its `aud`
//! must be `api://AzureADTokenExchange`, and it must not be expired.

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use super::clock::fmt_iso;
use super::http::EstsError;
use super::jwt::{self, claim_str, claim_time};
use super::world::App;

/// The audience of federated assertions.
pub const FEDERATED_AUDIENCE: &str = "api://AzureADTokenExchange";

fn malformed(detail: &str) -> EstsError {
    EstsError::client(50_027, format!("JWT token is invalid or malformed. {detail}"))
}

fn bad_signature(app: &App, reason: &str, thumbprint: &str) -> EstsError {
    EstsError::client(
        700_027,
        format!(
            "Client assertion contains an invalid signature. [Reason - {reason}, Thumbprint of key used by client: '{thumbprint}', Please visit the Azure Portal, Graph Explorer or directly use MS Graph to see configured keys for app Id '{}'.]",
            app.client_id
        ),
    )
}

fn time_range(now: i64, nbf: Option<i64>, exp: i64) -> EstsError {
    EstsError::client(
        700_024,
        format!(
            "Client assertion is not within its valid time range. Current time: {}, assertion valid from {}, expiry time of assertion {}. Review the documentation at https://docs.microsoft.com/azure/active-directory/develop/active-directory-certificate-credentials .",
            fmt_iso(now),
            nbf.map(fmt_iso).unwrap_or_else(|| "(none)".into()),
            fmt_iso(exp)
        ),
    )
}

fn audiences(claims: &Map<String, Value>) -> Vec<String> {
    match claims.get("aud") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect(),
        _ => vec![],
    }
}

/// Checks a `client_assertion` for `app`. `token_urls` are the URLs the
/// request could have been made to (the certificate `aud`).
pub(crate) fn verify(app: &App, assertion: &str, token_urls: &[String], now: i64) -> Result<(), EstsError> {
    let jwt = jwt::split(assertion).ok_or_else(|| malformed("The client_assertion is not a compact JWT."))?;
    let iss = claim_str(&jwt.claims, "iss").unwrap_or_default().to_string();
    if let Some(fed) = app.federated_credentials.iter().find(|f| f.issuer == iss) {
        let _ = fed;
        return verify_federated(app, &jwt.claims, now);
    }
    let alg = match claim_str(&jwt.header, "alg") {
        Some("RS256") => Algorithm::RS256,
        Some("PS256") => Algorithm::PS256,
        other => {
            return Err(bad_signature(
                app,
                &format!("The signature algorithm '{}' is not supported; use RS256 or PS256.", other.unwrap_or("")),
                "",
            ));
        }
    };
    let s256 = claim_str(&jwt.header, "x5t#S256");
    let sha1 = claim_str(&jwt.header, "x5t");
    let cert = match (s256, sha1) {
        (Some(t), _) => app.certificates.iter().find(|c| c.x5t_s256 == t),
        (None, Some(t)) => app.certificates.iter().find(|c| c.x5t == t),
        (None, None) => None,
    };
    let thumb = s256.or(sha1).unwrap_or_default();
    let Some(cert) = cert else {
        return Err(bad_signature(app, "The key was not found.", thumb));
    };
    if !jwt::verify_rsa(&jwt, alg, &cert.public_key_der) {
        return Err(bad_signature(
            app,
            "The provided signature value did not match the expected signature value.",
            thumb,
        ));
    }
    let sub = claim_str(&jwt.claims, "sub").unwrap_or_default();
    if !iss.eq_ignore_ascii_case(&app.client_id) || !sub.eq_ignore_ascii_case(&app.client_id) {
        return Err(EstsError::client(
            50_048,
            format!(
                "Subject mismatches Issuer claim in the client assertion. Subject = '{sub}', Issuer = '{iss}'. Both must be the client ID '{}'.",
                app.client_id
            ),
        ));
    }
    let auds = audiences(&jwt.claims);
    let aud_ok = auds.iter().any(|a| token_urls.iter().any(|u| a.trim_end_matches('/').eq_ignore_ascii_case(u)));
    if !aud_ok {
        return Err(malformed(&format!(
            "The audience claim '{}' of the client assertion is not this token endpoint '{}'.",
            auds.join(", "),
            token_urls.first().map(String::as_str).unwrap_or_default()
        )));
    }
    if claim_str(&jwt.claims, "jti").is_none_or(str::is_empty) {
        return Err(malformed("The client assertion has no 'jti' claim."));
    }
    let exp = claim_time(&jwt.claims, "exp").ok_or_else(|| malformed("The client assertion has no 'exp' claim."))?;
    let nbf = claim_time(&jwt.claims, "nbf");
    if now > exp || nbf.is_some_and(|n| now < n) {
        return Err(time_range(now, nbf, exp));
    }
    Ok(())
}

fn verify_federated(app: &App, claims: &Map<String, Value>, now: i64) -> Result<(), EstsError> {
    let iss = claim_str(claims, "iss").unwrap_or_default();
    let sub = claim_str(claims, "sub").unwrap_or_default();
    let auds = audiences(claims);
    if !app.federated_credentials.iter().any(|f| f.issuer == iss && f.subject == sub) {
        return Err(EstsError::client(
            70_021,
            format!(
                "No matching federated identity record found for presented assertion. Assertion Issuer: '{iss}'. Assertion Subject: '{sub}'. Assertion Audience: '{}'.",
                auds.join(", ")
            ),
        ));
    }
    if !auds.iter().any(|a| a == FEDERATED_AUDIENCE) {
        return Err(EstsError::client(
            700_212,
            format!(
                "No matching federated identity record found for presented assertion audience '{}'.",
                auds.join(", ")
            ),
        ));
    }
    let exp = claim_time(claims, "exp").ok_or_else(|| malformed("The assertion has no 'exp' claim."))?;
    let nbf = claim_time(claims, "nbf");
    if now > exp || nbf.is_some_and(|n| now < n) {
        return Err(time_range(now, nbf, exp));
    }
    Ok(())
}
