//! Loading a certificate credential: the PEM certificate (DER, notAfter,
//! public key) and its RSA private key, checked to belong together.

use std::path::Path;

use aws_lc_rs::signature::{KeyPair, RsaKeyPair};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use x509_parser::pem::Pem;
use x509_parser::public_key::PublicKey;

use super::Secret;

/// The parts of a certificate the exporter needs.
pub(super) struct LoadedCertificate {
    pub der: Vec<u8>,
    pub not_after_unix: i64,
    /// DER `RSAPublicKey` (PKCS#1) from the certificate.
    pub rsa_public_key: Vec<u8>,
}

/// A private key that jsonwebtoken can sign with.
pub(super) struct LoadedKey {
    /// Only the key block of the file, as PEM.
    pub pem: Secret,
    /// DER `RSAPublicKey` (PKCS#1) derived from the private key.
    pub rsa_public_key: Vec<u8>,
}

/// Reads a file, naming it in the error unless the name may be a secret
/// pasted in place of a path (see [`super::values::looks_like_path`]).
pub(super) fn read_file(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|e| {
        if super::values::looks_like_path(path) {
            format!("cannot read \"{}\": {e}", path.display())
        } else {
            format!(
                "cannot read the file named here: {e} (the name is not shown: it does not look like a path; \
                 this key takes the path of a file, not its contents)"
            )
        }
    })
}

/// Reads the first certificate of a PEM file.
pub(super) fn load_certificate(path: &Path) -> Result<LoadedCertificate, String> {
    let data = read_file(path)?;
    let shown = path.display();
    let pem = first_block(&data, &["CERTIFICATE"])
        .map_err(|e| format!("\"{shown}\": cannot read PEM data: {e}"))?
        .ok_or_else(|| format!("\"{shown}\" contains no PEM certificate (-----BEGIN CERTIFICATE-----)"))?;
    let cert = pem.parse_x509().map_err(|e| format!("\"{shown}\": invalid certificate: {e}"))?;
    let not_after_unix = cert.validity().not_after.timestamp();
    let rsa_public_key = match cert.public_key().parsed() {
        Ok(PublicKey::RSA(_)) => cert.public_key().subject_public_key.data.to_vec(),
        _ => return Err(format!("\"{shown}\": the certificate's key is not RSA; Entra ID needs an RSA certificate")),
    };
    Ok(LoadedCertificate { der: pem.contents.clone(), not_after_unix, rsa_public_key })
}

/// Reads an unencrypted RSA private key (PKCS#8 `PRIVATE KEY` or PKCS#1
/// `RSA PRIVATE KEY`) and proves it can sign a JWT.
pub(super) fn load_private_key(path: &Path) -> Result<LoadedKey, String> {
    let data = read_file(path)?;
    let shown = path.display();
    // Never include key bytes or parser details that could echo them.
    let invalid = || format!("\"{shown}\" is not a valid RSA private key (PKCS#8 or PKCS#1 PEM)");
    let labels = ["PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"];
    let pem = first_block(&data, &labels).map_err(|_| invalid())?.ok_or_else(|| {
        format!(
            "\"{shown}\" contains no PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)"
        )
    })?;
    let pair = match pem.label.as_str() {
        "PRIVATE KEY" => RsaKeyPair::from_pkcs8(&pem.contents),
        "RSA PRIVATE KEY" => RsaKeyPair::from_der(&pem.contents),
        _ => {
            return Err(format!(
                "\"{shown}\": encrypted private keys are not supported; decrypt it, e.g. with `openssl pkcs8 -nocrypt`"
            ));
        }
    }
    .map_err(|_| invalid())?;
    let text = std::str::from_utf8(&data).map_err(|_| invalid())?;
    let block = pem_block_text(text, &pem.label).ok_or_else(invalid)?;
    let key = EncodingKey::from_rsa_pem(block.as_bytes()).map_err(|_| invalid())?;
    // A test signature catches keys that parse but that jsonwebtoken cannot use.
    jsonwebtoken::encode(&Header::new(Algorithm::RS256), &serde_json::json!({}), &key).map_err(|_| invalid())?;
    Ok(LoadedKey { pem: Secret::new(block), rsa_public_key: pair.public_key().as_ref().to_vec() })
}

/// The first PEM block with one of `labels`; other blocks are skipped.
fn first_block(data: &[u8], labels: &[&str]) -> Result<Option<Pem>, x509_parser::error::PEMError> {
    for block in Pem::iter_from_buffer(data) {
        let block = block?;
        if labels.contains(&block.label.as_str()) {
            return Ok(Some(block));
        }
    }
    Ok(None)
}

/// The text of the first `label` block, BEGIN to END line, newline-terminated.
fn pem_block_text(text: &str, label: &str) -> Option<String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = text.find(&begin)?;
    let stop = start + text[start..].find(&end)? + end.len();
    Some(format!("{}\n", &text[start..stop]))
}
