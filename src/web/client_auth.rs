//! Client certificate policies (`client_auth_type`) and the
//! `client_allowed_sans` check, as rustls client certificate verifiers.

use std::sync::Arc;

use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme};

/// The toolkit's `client_auth_type` values (Go's `tls.ClientAuthType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClientAuth {
    /// No certificate is asked for.
    NoClientCert,
    /// A certificate is asked for; any (or none) is accepted without chain verification.
    RequestClientCert,
    /// A certificate is required; any is accepted without chain verification.
    RequireAnyClientCert,
    /// A certificate is optional; one that is sent must chain to the client CA.
    VerifyClientCertIfGiven,
    /// A certificate chaining to the client CA is required.
    RequireAndVerifyClientCert,
}

/// All spellings the toolkit accepts (`RequireClientCert` is its legacy alias).
pub(crate) const CLIENT_AUTH_NAMES: &[(&str, ClientAuth)] = &[
    ("NoClientCert", ClientAuth::NoClientCert),
    ("RequestClientCert", ClientAuth::RequestClientCert),
    ("RequireAnyClientCert", ClientAuth::RequireAnyClientCert),
    ("RequireClientCert", ClientAuth::RequireAnyClientCert),
    ("VerifyClientCertIfGiven", ClientAuth::VerifyClientCertIfGiven),
    ("RequireAndVerifyClientCert", ClientAuth::RequireAndVerifyClientCert),
];

impl ClientAuth {
    /// Whether client certificates are checked against the client CA.
    pub(crate) fn verifies(self) -> bool {
        matches!(self, ClientAuth::VerifyClientCertIfGiven | ClientAuth::RequireAndVerifyClientCert)
    }

    /// Whether a client certificate is always required.
    pub(crate) fn requires_cert(self) -> bool {
        matches!(self, ClientAuth::RequireAnyClientCert | ClientAuth::RequireAndVerifyClientCert)
    }
}

/// The verifier for `mode`. `roots` must be set when `mode.verifies()`; for the
/// non-verifying modes it only supplies the CA names hinted to clients.
pub(crate) fn verifier(
    mode: ClientAuth,
    roots: Option<RootCertStore>,
    allowed_sans: Option<Vec<String>>,
    provider: &Arc<CryptoProvider>,
) -> Result<Option<Arc<dyn ClientCertVerifier>>, String> {
    let algs = provider.signature_verification_algorithms;
    let base: Arc<dyn ClientCertVerifier> = match (mode, roots) {
        (ClientAuth::NoClientCert, _) => return Ok(None),
        (ClientAuth::RequestClientCert | ClientAuth::RequireAnyClientCert, roots) => Arc::new(AnyClientCert {
            mandatory: mode.requires_cert(),
            hints: roots.map(|r| r.subjects()).unwrap_or_default(),
            algs,
        }),
        (_, Some(roots)) => {
            let b = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone());
            let b = if mode.requires_cert() { b } else { b.allow_unauthenticated() };
            b.build().map_err(|e| e.to_string())?
        }
        (_, None) => return Err("a verifying client_auth_type needs a client CA".into()),
    };
    Ok(Some(match allowed_sans {
        Some(allowed) => Arc::new(AllowedSans { inner: base, allowed }),
        None => base,
    }))
}

/// Accepts any well-formed client certificate without building a chain (Go's
/// `RequestClientCert` / `RequireAnyClientCert`), while still checking that
/// the client holds its private key (the handshake signature).
#[derive(Debug)]
struct AnyClientCert {
    mandatory: bool,
    hints: Vec<DistinguishedName>,
    algs: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for AnyClientCert {
    fn client_auth_mandatory(&self) -> bool {
        self.mandatory
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        x509_parser::parse_x509_certificate(end_entity)
            .map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algs)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algs)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algs.supported_schemes()
    }
}

/// Wraps a verifier and additionally requires one of the client certificate's
/// subject alternative names (DNS, e-mail, IP or URI) to be in `allowed`.
#[derive(Debug)]
struct AllowedSans {
    inner: Arc<dyn ClientCertVerifier>,
    allowed: Vec<String>,
}

impl ClientCertVerifier for AllowedSans {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.inner.verify_client_cert(end_entity, intermediates, now)?;
        let sans =
            subject_alt_names(end_entity).ok_or(rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
        if sans.iter().any(|s| self.allowed.contains(s)) {
            Ok(verified)
        } else {
            tracing::debug!(
                client_sans = ?sans,
                "client certificate rejected: none of its SANs is in client_allowed_sans"
            );
            Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// The certificate's SANs as the toolkit compares them: DNS names, e-mail
/// addresses, IP addresses in text form and URIs. `None` if it does not parse.
fn subject_alt_names(der: &CertificateDer<'_>) -> Option<Vec<String>> {
    use x509_parser::extensions::GeneralName;
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    let Some(ext) = cert.subject_alternative_name().ok()? else {
        return Some(Vec::new());
    };
    let mut out = Vec::new();
    for name in &ext.value.general_names {
        match name {
            GeneralName::DNSName(s) | GeneralName::RFC822Name(s) | GeneralName::URI(s) => out.push((*s).to_string()),
            GeneralName::IPAddress(b) => {
                if let Ok(v4) = <[u8; 4]>::try_from(*b) {
                    out.push(std::net::Ipv4Addr::from(v4).to_string());
                } else if let Ok(v6) = <[u8; 16]>::try_from(*b) {
                    out.push(std::net::Ipv6Addr::from(v6).to_string());
                }
            }
            _ => {}
        }
    }
    Some(out)
}
