//! Identifiers: GUIDs, derived IDs, random opaque strings, thumbprints.

use aws_lc_rs::digest;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// A new random lowercase GUID.
pub(crate) fn new_guid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A stable GUID (version-4 shaped) derived from `seed`, so the same world
/// always has the same object IDs.
pub(crate) fn derived_guid(seed: &str) -> String {
    let d = digest::digest(&digest::SHA256, seed.as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&d.as_ref()[..16]);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    uuid::Uuid::from_bytes(b).to_string()
}

/// `{hostname},{siteCollectionGuid},{webGuid}` for a site URL.
pub(crate) fn site_id(url: &str) -> String {
    let host = url
        .split_once("://")
        .map(|(_, rest)| rest)
        .unwrap_or(url)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let key = url.to_ascii_lowercase();
    format!("{host},{},{}", derived_guid(&format!("site:{key}")), derived_guid(&format!("web:{key}")))
}

/// Whether `s` is a GUID in 8-4-4-4-12 hex form.
pub(crate) fn is_guid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// `n` random bytes, base64url without padding.
pub(crate) fn random_token(n: usize) -> String {
    let mut buf = vec![0u8; n];
    // SystemRandom only fails when the OS has no entropy source; fall back to a GUID's randomness.
    if aws_lc_rs::rand::fill(&mut buf).is_err() {
        for (i, byte) in uuid::Uuid::new_v4().as_bytes().iter().cycle().take(n).enumerate() {
            buf[i] = *byte;
        }
    }
    URL_SAFE_NO_PAD.encode(buf)
}

/// A 9-character uppercase alphanumeric device user code.
pub(crate) fn user_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut buf = [0u8; 9];
    let _ = aws_lc_rs::rand::fill(&mut buf);
    buf.iter().map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char).collect()
}

/// base64url(SHA-1(der)): the `x5t` thumbprint.
pub(crate) fn x5t(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, der))
}

/// base64url(SHA-256(der)): the `x5t#S256` thumbprint.
pub(crate) fn x5t_s256(der: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(digest::digest(&digest::SHA256, der))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_guids_are_stable_and_well_formed() {
        let a = derived_guid("user:x");
        assert_eq!(a, derived_guid("user:x"));
        assert_ne!(a, derived_guid("user:y"));
        assert!(is_guid(&a));
        assert_eq!(&a[14..15], "4");
    }

    #[test]
    fn site_ids_start_with_the_host() {
        let id = site_id("https://Contoso.sharepoint.com/sites/ops");
        assert!(id.starts_with("contoso.sharepoint.com,"));
        assert_eq!(id.split(',').count(), 3);
    }

    #[test]
    fn guid_check() {
        assert!(is_guid("11111111-1111-4111-8111-111111111111"));
        assert!(!is_guid("11111111-1111-4111-8111-11111111111"));
        assert!(!is_guid("contoso.onmicrosoft.com"));
    }

    #[test]
    fn user_codes_have_nine_characters() {
        let c = user_code();
        assert_eq!(c.len(), 9);
        assert!(c.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()));
    }
}
