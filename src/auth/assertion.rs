//! Certificate client assertions (protocol doc 1.4): a PS256 JWT with the
//! certificate's SHA-256 thumbprint in `x5t#S256`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::config::CertificateCredential;

/// Lifetime of an assertion; Microsoft suggests 5 to 10 minutes.
const LIFETIME_SECS: u64 = 600;

#[derive(Serialize)]
struct Claims<'a> {
    aud: &'a str,
    iss: &'a str,
    sub: &'a str,
    jti: String,
    nbf: u64,
    iat: u64,
    exp: u64,
}

/// base64url(SHA-256(DER)), the `x5t#S256` header value.
pub fn thumbprint_s256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
}

/// Signs a fresh assertion for `token_url`. The error text names the key
/// file, never its contents.
pub fn sign(cert: &CertificateCredential, client_id: &str, token_url: &str, now_unix: u64) -> Result<String, String> {
    let key = EncodingKey::from_rsa_pem(cert.private_key_pem.expose().as_bytes())
        .map_err(|e| format!("private key {}: {e}", cert.private_key_file.display()))?;
    let mut header = Header::new(Algorithm::PS256);
    header.typ = Some("JWT".into());
    header.x5t_s256 = Some(thumbprint_s256(&cert.certificate_der));
    let claims = Claims {
        aud: token_url,
        iss: client_id,
        sub: client_id,
        jti: uuid::Uuid::new_v4().to_string(),
        nbf: now_unix,
        iat: now_unix,
        exp: now_unix + LIFETIME_SECS,
    };
    jsonwebtoken::encode(&header, &claims, &key).map_err(|e| format!("signing the client assertion failed: {e}"))
}
