//! `tls_server_config`: reading the certificate, key and CA, and turning the
//! toolkit's settings into a rustls server config (or a plain error when
//! rustls cannot do what the file asks).

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::{SupportedKxGroup, aws_lc_rs};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, RootCertStore, ServerConfig, SupportedCipherSuite, SupportedProtocolVersion};
use serde_saphyr::{Location, Spanned};

use super::client_auth::{self, CLIENT_AUTH_NAMES, ClientAuth};
use super::config::{ErrorSite, RawTls, WebConfigError};

/// Bytes of one PEM input, from a file or inline in the web config.
pub(crate) struct Material {
    /// The YAML key it came from, e.g. `tls_server_config.cert_file`.
    key: &'static str,
    /// `file PATH` or `inline value`, for messages.
    origin: String,
    loc: Location,
    bytes: Vec<u8>,
}

/// Everything outside the web config file that TLS needs.
pub(crate) struct TlsSources {
    cert: Material,
    key: Material,
    ca: Option<Material>,
}

impl TlsSources {
    pub(crate) fn hash_into(&self, update: &mut dyn FnMut(&[u8])) {
        update(&self.cert.bytes);
        update(&self.key.bytes);
        match &self.ca {
            Some(ca) => update(&ca.bytes),
            None => update(b"no client CA"),
        }
    }
}

fn set(v: &Option<Spanned<String>>) -> Option<&Spanned<String>> {
    v.as_ref().filter(|s| !s.value.is_empty())
}

/// Reads the certificate, key and client CA the section names. `Ok(None)`
/// when the section enables nothing (the toolkit then serves plain HTTP).
pub(crate) fn read_sources(
    t: &RawTls,
    base_dir: &Path,
    at: &ErrorSite<'_>,
) -> Result<Option<TlsSources>, WebConfigError> {
    let enabled = [&t.cert_file, &t.cert, &t.key_file, &t.key, &t.client_ca_file, &t.client_ca, &t.client_auth_type]
        .iter()
        .any(|v| set(v).is_some());
    if !enabled {
        return Ok(None);
    }
    let pick = |file: &'static str,
                inline: &'static str,
                file_v: &Option<Spanned<String>>,
                inline_v: &Option<Spanned<String>>|
     -> Result<Option<Material>, WebConfigError> {
        // As in the toolkit, a file wins over an inline value.
        if let Some(f) = set(file_v) {
            let full = base_dir.join(&f.value);
            let bytes = std::fs::read(&full).map_err(|e| {
                at.at(f, &format!("tls_server_config.{file}"), format!("cannot read {}: {e}", full.display()))
            })?;
            return Ok(Some(Material {
                key: file,
                origin: format!("file {}", full.display()),
                loc: f.referenced,
                bytes,
            }));
        }
        Ok(set(inline_v).map(|v| Material {
            key: inline,
            origin: format!("inline {inline}"),
            loc: v.referenced,
            bytes: v.value.as_bytes().to_vec(),
        }))
    };
    let missing = |what: &str| {
        at.err(
            None,
            "tls_server_config",
            format!("missing {what}_file (or an inline {what}); TLS needs both a certificate and its key"),
        )
    };
    let cert = pick("cert_file", "cert", &t.cert_file, &t.cert)?.ok_or_else(|| missing("cert"))?;
    let key = pick("key_file", "key", &t.key_file, &t.key)?.ok_or_else(|| missing("key"))?;
    let ca = pick("client_ca_file", "client_ca", &t.client_ca_file, &t.client_ca)?;
    Ok(Some(TlsSources { cert, key, ca }))
}

fn err_at(at: &ErrorSite<'_>, m: &Material, message: impl Into<String>) -> WebConfigError {
    at.err(Some(m.loc), &format!("tls_server_config.{}", m.key), message)
}

fn parse_certs(m: &Material, at: &ErrorSite<'_>) -> Result<Vec<CertificateDer<'static>>, WebConfigError> {
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&m.bytes).collect();
    match certs {
        Ok(c) if !c.is_empty() => Ok(c),
        Ok(_) => Err(err_at(at, m, format!("{} contains no PEM certificate (BEGIN CERTIFICATE)", m.origin))),
        Err(e) => Err(err_at(at, m, format!("{} is not valid PEM: {e}", m.origin))),
    }
}

fn parse_key(m: &Material, at: &ErrorSite<'_>) -> Result<PrivateKeyDer<'static>, WebConfigError> {
    // The PEM error text is left out: it could quote bytes of the key.
    PrivateKeyDer::from_pem_slice(&m.bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => err_at(
            at,
            m,
            format!("{} contains no PEM private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)", m.origin),
        ),
        _ => err_at(at, m, format!("{} is not a valid PEM private key", m.origin)),
    })
}

fn tls_version(v: &Spanned<String>, key: &str, at: &ErrorSite<'_>) -> Result<u8, WebConfigError> {
    match v.value.as_str() {
        "TLS13" => Ok(13),
        "TLS12" => Ok(12),
        "TLS10" | "TLS11" => Err(at.at(
            v,
            key,
            format!("{} cannot be used: rustls implements only TLS 1.2 and 1.3; use TLS12 or TLS13", v.value),
        )),
        other => {
            Err(at.at(v, key, format!("unknown TLS version {other:?}; expected one of TLS10, TLS11, TLS12, TLS13")))
        }
    }
}

/// Go's names for the cipher suites it accepts in `cipher_suites`, mapped to
/// rustls suites; `None` marks suites rustls does not implement.
fn cipher_suite(name: &str) -> Option<Option<SupportedCipherSuite>> {
    use aws_lc_rs::cipher_suite as cs;
    Some(Some(match name {
        "TLS_AES_128_GCM_SHA256" => cs::TLS13_AES_128_GCM_SHA256,
        "TLS_AES_256_GCM_SHA384" => cs::TLS13_AES_256_GCM_SHA384,
        "TLS_CHACHA20_POLY1305_SHA256" => cs::TLS13_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        "TLS_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_RSA_WITH_AES_256_CBC_SHA"
        | "TLS_RSA_WITH_AES_128_GCM_SHA256"
        | "TLS_RSA_WITH_AES_256_GCM_SHA384"
        | "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA"
        | "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA" => return Some(None),
        _ => return None,
    }))
}

fn cipher_suites(names: &[Spanned<String>], at: &ErrorSite<'_>) -> Result<Vec<SupportedCipherSuite>, WebConfigError> {
    let key = "tls_server_config.cipher_suites";
    let mut out: Vec<SupportedCipherSuite> = Vec::new();
    for n in names {
        match cipher_suite(&n.value) {
            Some(Some(s)) => {
                if !out.iter().any(|o| o.suite() == s.suite()) {
                    out.push(s)
                }
            }
            Some(None) => {
                return Err(at.at(
                    n,
                    key,
                    format!(
                        "{} cannot be used: rustls implements only ECDHE key exchange with AES-GCM or \
                         ChaCha20-Poly1305 (no RSA key exchange, no CBC); remove it or use e.g. \
                         TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
                        n.value
                    ),
                ));
            }
            None => {
                return Err(at.at(
                    n,
                    key,
                    format!(
                        "unknown cipher suite {:?}; use Go's names, e.g. TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
                        n.value
                    ),
                ));
            }
        }
    }
    Ok(out)
}

fn curves(names: &[Spanned<String>], at: &ErrorSite<'_>) -> Result<Vec<&'static dyn SupportedKxGroup>, WebConfigError> {
    use aws_lc_rs::kx_group;
    let key = "tls_server_config.curve_preferences";
    let mut out: Vec<&'static dyn SupportedKxGroup> = Vec::new();
    for n in names {
        let g: &'static dyn SupportedKxGroup = match n.value.as_str() {
            "X25519" => kx_group::X25519,
            "CurveP256" => kx_group::SECP256R1,
            "CurveP384" => kx_group::SECP384R1,
            "CurveP521" => {
                return Err(at.at(
                    n,
                    key,
                    "CurveP521 cannot be used: rustls does not implement P-521; use X25519, CurveP256 or CurveP384",
                ));
            }
            other => {
                return Err(at.at(
                    n,
                    key,
                    format!("unknown curve {other:?}; expected one of CurveP256, CurveP384, CurveP521, X25519"),
                ));
            }
        };
        if !out.iter().any(|o| o.name() == g.name()) {
            out.push(g);
        }
    }
    Ok(out)
}

/// Builds the rustls server config; every check the toolkit does at load
/// time, plus those for settings rustls cannot honour.
pub(crate) fn build(
    t: &RawTls,
    src: TlsSources,
    http2: bool,
    at: &ErrorSite<'_>,
) -> Result<ServerConfig, WebConfigError> {
    let mut provider = aws_lc_rs::default_provider();

    let chain = parse_certs(&src.cert, at)?;
    let key = parse_key(&src.key, at)?;
    let signing_key = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| err_at(at, &src.key, format!("rustls cannot use this private key: {e}")))?;
    let key_alg = signing_key.algorithm();
    match CertifiedKey::new(chain.clone(), signing_key).keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
            return Err(err_at(
                at,
                &src.key,
                format!("the private key does not match the certificate ({})", src.cert.origin),
            ));
        }
        Err(e) => {
            return Err(err_at(
                at,
                &src.cert,
                format!("the first certificate in {} is not a valid X.509 certificate: {e}", src.cert.origin),
            ));
        }
    }

    let mode = match set(&t.client_auth_type) {
        None => ClientAuth::NoClientCert,
        Some(v) => match CLIENT_AUTH_NAMES.iter().find(|(n, _)| *n == v.value) {
            Some((_, m)) => *m,
            None => {
                return Err(at.at(
                    v,
                    "tls_server_config.client_auth_type",
                    format!(
                        "unknown value {:?}; expected one of NoClientCert, RequestClientCert, \
                         RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert",
                        v.value
                    ),
                ));
            }
        },
    };
    let roots = match &src.ca {
        None => None,
        Some(ca) => {
            if mode == ClientAuth::NoClientCert {
                return Err(err_at(
                    at,
                    ca,
                    "a client CA is set but client_auth_type is NoClientCert, so it would never be \
                     used; set client_auth_type: RequireAndVerifyClientCert",
                ));
            }
            let mut roots = RootCertStore::empty();
            for (i, c) in parse_certs(ca, at)?.into_iter().enumerate() {
                roots.add(c).map_err(|e| {
                    err_at(at, ca, format!("certificate #{} in {} cannot be used as a CA: {e}", i + 1, ca.origin))
                })?;
            }
            Some(roots)
        }
    };
    if mode.verifies()
        && roots.is_none()
        && let Some(v) = &t.client_auth_type
    {
        return Err(at.at(
            v,
            "tls_server_config.client_auth_type",
            format!(
                "{} checks client certificates against client_ca_file (or client_ca), but neither is \
                 set; m365mon does not use the system CA store for client certificates",
                v.value
            ),
        ));
    }
    let allowed_sans = match &t.client_allowed_sans {
        Some(s) if !mode.requires_cert() => {
            return Err(at.at(
                s,
                "tls_server_config.client_allowed_sans",
                "client_allowed_sans requires client_auth_type to be one of RequireAnyClientCert or \
                 RequireAndVerifyClientCert",
            ));
        }
        Some(s) => Some(s.value.clone()),
        None => None,
    };

    let min = match &t.min_version {
        Some(v) => tls_version(v, "tls_server_config.min_version", at)?,
        None => 12,
    };
    let max = match &t.max_version {
        Some(v) => tls_version(v, "tls_server_config.max_version", at)?,
        None => 13,
    };
    if min > max
        && let Some(v) = t.max_version.as_ref().or(t.min_version.as_ref())
    {
        return Err(at.at(v, "tls_server_config", format!("min_version TLS{min} is above max_version TLS{max}")));
    }
    let versions: Vec<&'static SupportedProtocolVersion> =
        [(13, &rustls::version::TLS13), (12, &rustls::version::TLS12)]
            .into_iter()
            .filter(|(v, _)| (min..=max).contains(v))
            .map(|(_, p)| p)
            .collect();

    let listed = cipher_suites(t.cipher_suites.as_deref().unwrap_or_default(), at)?;
    let listed_13: Vec<_> = listed.iter().copied().filter(|s| s.tls13().is_some()).collect();
    let listed_12: Vec<_> = listed.iter().copied().filter(|s| s.tls13().is_none()).collect();
    if min <= 12 && !listed_12.is_empty() && !listed_12.iter().any(|s| s.usable_for_signature_algorithm(key_alg)) {
        let first = t.cipher_suites.as_deref().and_then(|c| c.first());
        return Err(at.err(
            first.map(|f| f.referenced),
            "tls_server_config.cipher_suites",
            format!("none of the listed TLS 1.2 cipher suites can be used with the certificate's {key_alg:?} key"),
        ));
    }
    // Suites of a TLS version the list does not mention keep rustls' defaults
    // (Go likewise always enables all TLS 1.3 suites).
    let defaults = provider.cipher_suites.clone();
    let pick = |listed: Vec<SupportedCipherSuite>, tls13: bool| {
        if listed.is_empty() {
            defaults.iter().copied().filter(|s| s.tls13().is_some() == tls13).collect()
        } else {
            listed
        }
    };
    let mut suites = pick(listed_13, true);
    suites.extend(pick(listed_12, false));
    provider.cipher_suites = suites;
    let groups = curves(t.curve_preferences.as_deref().unwrap_or_default(), at)?;
    if !groups.is_empty() {
        provider.kx_groups = groups;
    }
    let provider = Arc::new(provider);

    let verifier = client_auth::verifier(mode, roots, allowed_sans, &provider)
        .map_err(|e| at.err(None, "tls_server_config", e))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .map_err(|e| at.err(None, "tls_server_config", format!("rustls rejects these TLS settings: {e}")))?;
    let builder = match verifier {
        Some(v) => builder.with_client_cert_verifier(v),
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder
        .with_single_cert(chain, key)
        .map_err(|e| err_at(at, &src.key, format!("rustls cannot use this certificate and key: {e}")))?;
    cfg.ignore_client_order = t.prefer_server_cipher_suites.unwrap_or(true);
    cfg.alpn_protocols = if http2 { vec![b"h2".to_vec(), b"http/1.1".to_vec()] } else { vec![b"http/1.1".to_vec()] };
    Ok(cfg)
}
