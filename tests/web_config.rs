//! The exporter-toolkit web config end to end: fixture files checked by the
//! real promtool, exact error messages, and live servers on 127.0.0.1:0
//! exercised over HTTPS, mTLS and basic auth.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use m365mon::web::{Handler, ServeError, WebConfig, serve, text};
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls")
}

fn config(name: &str) -> PathBuf {
    fixtures().join("configs").join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).expect("fixture readable")
}

/// A server running `serve` on 127.0.0.1:0; stops when dropped.
struct Server {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), ServeError>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

impl Server {
    fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}/metrics", self.addr)
    }
}

fn ok_handler() -> Handler {
    Arc::new(|_req| Box::pin(async { text(hyper::StatusCode::OK, "ok\n") }))
}

async fn start(web_config: Option<PathBuf>) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(serve(listener, web_config, ok_handler(), async {
        let _ = stopped.await;
    }));
    Server { addr, stop: Some(stop), task }
}

/// An HTTPS client trusting only the test CA, optionally presenting a client
/// certificate; it never reuses connections, so each request sees a fresh
/// handshake and the current web config.
fn client(identity: Option<&str>) -> reqwest::Client {
    let ca = reqwest::Certificate::from_pem(&read("ca.pem")).expect("CA parses");
    let mut b =
        reqwest::Client::builder().tls_certs_only([ca]).pool_max_idle_per_host(0).timeout(Duration::from_secs(20));
    if let Some(id) = identity {
        b = b.identity(reqwest::Identity::from_pem(&read(id)).expect("identity parses"));
    }
    b.build().expect("client builds")
}

async fn status(client: &reqwest::Client, url: &str) -> Result<u16, reqwest::Error> {
    Ok(client.get(url).send().await?.status().as_u16())
}

#[test]
fn fixture_configs_pass_promtool_and_load() {
    let dir = fixtures().join("configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("configs dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yml"))
        .collect();
    files.sort();
    assert!(files.len() >= 8, "fixture configs missing: {files:?}");
    let out = match std::process::Command::new("promtool").arg("check").arg("web-config").args(&files).output() {
        Ok(o) => o,
        Err(e) => {
            panic!("cannot run promtool ({e}); install it with: apt-get install -y prometheus")
        }
    };
    assert!(
        out.status.success(),
        "promtool rejected a fixture:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    for f in files.iter().chain(
        std::fs::read_dir(dir.join("newer-toolkit"))
            .expect("newer-toolkit dir")
            .map(|e| e.expect("entry").path())
            .collect::<Vec<_>>()
            .iter(),
    ) {
        if let Err(e) = WebConfig::load(f) {
            panic!("{} does not load: {e}", f.display());
        }
    }
}

/// One file per error, with the exact message after `PATH:`.
const INVALID: &[(&str, &str)] = &[
    (
        "allowed-sans-optional-cert.yml",
        ":6:24: tls_server_config.client_allowed_sans: client_allowed_sans requires client_auth_type to be one of RequireAnyClientCert or RequireAndVerifyClientCert",
    ),
    (
        "ca-file-without-certs.yml",
        ":5:19: tls_server_config.client_ca_file: file {dir}/../ca.key contains no PEM certificate (BEGIN CERTIFICATE)",
    ),
    (
        "ca-without-client-auth.yml",
        ":4:19: tls_server_config.client_ca_file: a client CA is set but client_auth_type is NoClientCert, so it would never be used; set client_auth_type: RequireAndVerifyClientCert",
    ),
    (
        "cbc-cipher.yml",
        ":6:7: tls_server_config.cipher_suites: TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA cannot be used: rustls implements only ECDHE key exchange with AES-GCM or ChaCha20-Poly1305 (no RSA key exchange, no CBC); remove it or use e.g. TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "cert-not-pem.yml",
        ":2:14: tls_server_config.cert_file: file {dir}/../README.md contains no PEM certificate (BEGIN CERTIFICATE)",
    ),
    (
        "curve-p521.yml",
        ":4:31: tls_server_config.curve_preferences: CurveP521 cannot be used: rustls does not implement P-521; use X25519, CurveP256 or CurveP384",
    ),
    (
        "header-bad-value.yml",
        ":3:22: http_server_config.headers.X-Frame-Options: invalid value \"allow-from example.com\"; expected one of: deny, sameorigin",
    ),
    (
        "header-not-allowed.yml",
        ":3:19: http_server_config.headers.X-Powered-By: this header cannot be configured; allowed headers: Strict-Transport-Security, X-Content-Type-Options, X-Frame-Options, X-XSS-Protection, Content-Security-Policy",
    ),
    ("http2-not-bool.yml", ":2:10: invalid boolean"),
    (
        "key-is-a-cert.yml",
        ":3:13: tls_server_config.key_file: file {dir}/../server.pem contains no PEM private key (BEGIN PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)",
    ),
    (
        "key-mismatch.yml",
        ":3:13: tls_server_config.key_file: the private key does not match the certificate (file {dir}/../server.pem)",
    ),
    ("min-above-max.yml", ":5:16: tls_server_config: min_version TLS13 is above max_version TLS12"),
    (
        "missing-key.yml",
        ": tls_server_config: missing key_file (or an inline key); TLS needs both a certificate and its key",
    ),
    (
        "misspelled-key.yml",
        ":3:3: unknown field `keyfile`, expected one of cert_file, cert, key_file, key, client_auth_type, client_ca_file, client_ca, client_allowed_sans, min_version, max_version, cipher_suites, prefer_server_cipher_suites, curve_preferences",
    ),
    ("not-a-mapping.yml", ":1:1: expected mapping start"),
    (
        "not-bcrypt.yml",
        ":2:15: basic_auth_users.prometheus: the value is not a bcrypt hash; make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n'",
    ),
    (
        "rsa-ciphers-ecdsa-key.yml",
        ":5:19: tls_server_config.cipher_suites: none of the listed TLS 1.2 cipher suites can be used with the certificate's ECDSA key",
    ),
    (
        "tls10.yml",
        ":4:16: tls_server_config.min_version: TLS10 cannot be used: rustls implements only TLS 1.2 and 1.3; use TLS12 or TLS13",
    ),
    (
        "unknown-cipher.yml",
        ":4:19: tls_server_config.cipher_suites: unknown cipher suite \"TLS_ECDHE_RSA_WITH_RC4_128_SHA\"; use Go's names, e.g. TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
    ),
    (
        "unknown-client-auth.yml",
        ":4:21: tls_server_config.client_auth_type: unknown value \"RequireValidCert\"; expected one of NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert",
    ),
    (
        "unknown-curve.yml",
        ":4:23: tls_server_config.curve_preferences: unknown curve \"Curve25519\"; expected one of CurveP256, CurveP384, CurveP521, X25519",
    ),
    (
        "unknown-key.yml",
        ":4:1: unknown field `rate_limit`, expected one of tls_server_config, http_server_config, basic_auth_users",
    ),
    (
        "unknown-version.yml",
        ":4:16: tls_server_config.max_version: unknown TLS version \"TLS14\"; expected one of TLS10, TLS11, TLS12, TLS13",
    ),
    (
        "unreadable-cert.yml",
        ":2:14: tls_server_config.cert_file: cannot read {dir}/../does-not-exist.pem: No such file or directory (os error 2)",
    ),
    (
        "verify-without-ca.yml",
        ":4:21: tls_server_config.client_auth_type: RequireAndVerifyClientCert checks client certificates against client_ca_file (or client_ca), but neither is set; m365mon does not use the system CA store for client certificates",
    ),
    ("yaml-syntax.yml", ":3:2: while parsing a block mapping, did not find expected key"),
];

#[test]
fn invalid_configs_give_exact_errors() {
    let dir = fixtures().join("invalid");
    let on_disk = std::fs::read_dir(&dir).expect("invalid dir").count();
    assert_eq!(on_disk, INVALID.len(), "every invalid fixture needs an expected message");
    for (file, expected) in INVALID {
        let path = dir.join(file);
        let expected = format!("{}{}", path.display(), expected.replace("{dir}", &dir.display().to_string()));
        match WebConfig::load(&path) {
            Ok(c) => panic!("{file} loaded: {c:?}"),
            Err(e) => assert_eq!(e.to_string(), expected, "{file}"),
        }
    }
}

#[tokio::test]
async fn startup_fails_with_the_config_error() {
    let path = fixtures().join("invalid/tls10.yml");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let res = serve(listener, Some(path.clone()), ok_handler(), std::future::pending()).await;
    match res {
        Err(ServeError::WebConfig(msg)) => assert_eq!(
            msg,
            format!(
                "{}:4:16: tls_server_config.min_version: TLS10 cannot be used: rustls implements only TLS 1.2 and 1.3; use TLS12 or TLS13",
                path.display()
            )
        ),
        other => panic!("expected a web config error, got {other:?}"),
    }
}

#[tokio::test]
async fn https_with_the_trusted_ca_gets_200() {
    for name in ["tls.yml", "tls-settings.yml", "tls-http1.yml"] {
        let s = start(Some(config(name))).await;
        assert_eq!(status(&client(None), &s.url("https")).await.expect(name), 200, "{name}");
    }
}

#[tokio::test]
async fn https_fails_for_a_client_that_does_not_trust_the_ca() {
    let s = start(Some(config("tls.yml"))).await;
    let other = reqwest::Certificate::from_pem(&read("other-ca.pem")).expect("CA parses");
    let c = reqwest::Client::builder().tls_certs_only([other]).build().expect("client");
    assert!(status(&c, &s.url("https")).await.is_err());
}

#[tokio::test]
async fn plain_http_to_a_tls_port_fails() {
    let s = start(Some(config("tls.yml"))).await;
    assert!(status(&client(None), &s.url("http")).await.is_err());
    // The server is still fine afterwards.
    assert_eq!(status(&client(None), &s.url("https")).await.expect("https"), 200);
}

#[tokio::test]
async fn mtls_required_needs_a_cert_from_the_client_ca() {
    let s = start(Some(config("mtls.yml"))).await;
    let url = s.url("https");
    assert!(status(&client(None), &url).await.is_err(), "no cert");
    assert_eq!(status(&client(Some("client-identity.pem")), &url).await.expect("right cert"), 200);
    assert!(status(&client(Some("other-client-identity.pem")), &url).await.is_err(), "other CA");
}

#[tokio::test]
async fn mtls_optional_rejects_only_a_cert_from_another_ca() {
    let s = start(Some(config("mtls-optional.yml"))).await;
    let url = s.url("https");
    assert_eq!(status(&client(None), &url).await.expect("no cert"), 200);
    assert_eq!(status(&client(Some("client-identity.pem")), &url).await.expect("right cert"), 200);
    assert!(status(&client(Some("other-client-identity.pem")), &url).await.is_err(), "other CA");
}

#[tokio::test]
async fn require_any_cert_needs_a_cert_but_does_not_verify_it() {
    let s = start(Some(config("require-any-cert.yml"))).await;
    let url = s.url("https");
    assert!(status(&client(None), &url).await.is_err(), "no cert");
    assert_eq!(status(&client(Some("other-client-identity.pem")), &url).await.expect("any cert"), 200);
}

#[tokio::test]
async fn request_client_cert_accepts_none_or_any() {
    let dir = TempDir::new();
    let path = dir.write(
        "web.yml",
        "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n  client_auth_type: RequestClientCert\n",
    );
    let s = start(Some(path)).await;
    let url = s.url("https");
    assert_eq!(status(&client(None), &url).await.expect("no cert"), 200);
    assert_eq!(status(&client(Some("other-client-identity.pem")), &url).await.expect("any cert"), 200);
}

#[tokio::test]
async fn shutdown_ends_serve_with_a_tls_connection_open() {
    let mut s = start(Some(config("tls.yml"))).await;
    let c = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&read("ca.pem")).expect("CA")])
        .build()
        .expect("client");
    assert_eq!(status(&c, &s.url("https")).await.expect("https"), 200);
    if let Some(stop) = s.stop.take() {
        let _ = stop.send(());
    }
    let done = tokio::time::timeout(Duration::from_secs(15), &mut s.task).await;
    assert!(matches!(done, Ok(Ok(Ok(())))), "{done:?}");
}

#[tokio::test]
async fn client_allowed_sans_are_checked() {
    let allowed = start(Some(config("newer-toolkit/mtls-allowed-san.yml"))).await;
    let id = Some("client-identity.pem");
    assert_eq!(status(&client(id), &allowed.url("https")).await.expect("allowed SAN"), 200);
    let other = start(Some(config("newer-toolkit/mtls-other-san.yml"))).await;
    assert!(status(&client(id), &other.url("https")).await.is_err(), "SAN not allowed");
}

#[tokio::test]
async fn inline_cert_key_and_client_ca_work() {
    let s = start(Some(config("newer-toolkit/inline.yml"))).await;
    let url = s.url("https");
    assert_eq!(status(&client(Some("client-identity.pem")), &url).await.expect("cert"), 200);
    assert!(status(&client(None), &url).await.is_err(), "no cert");
}

async fn basic_auth_cases(s: &Server, scheme: &str) {
    let c = client(None);
    let url = s.url(scheme);
    let ok = c.get(&url).basic_auth("prometheus", Some("s3cret-scrape")).send().await.expect("right password");
    assert_eq!(ok.status().as_u16(), 200);
    let wrong = c.get(&url).basic_auth("prometheus", Some("guess")).send().await.expect("wrong password");
    assert_eq!(wrong.status().as_u16(), 401);
    let missing = c.get(&url).send().await.expect("no credentials");
    assert_eq!(missing.status().as_u16(), 401);
    assert_eq!(
        missing.headers().get("www-authenticate").and_then(|v| v.to_str().ok()),
        Some("Basic realm=\"m365mon\"")
    );
}

#[tokio::test]
async fn basic_auth_over_http_and_https() {
    let plain = start(Some(config("basic-auth.yml"))).await;
    basic_auth_cases(&plain, "http").await;
    let tls = start(Some(config("tls-basic-auth.yml"))).await;
    basic_auth_cases(&tls, "https").await;
}

#[tokio::test]
async fn configured_headers_are_on_every_response() {
    let s = start(Some(config("headers.yml"))).await;
    let resp = client(None).get(s.url("http")).send().await.expect("request");
    let h = resp.headers();
    for (name, value) in [
        ("content-security-policy", "default-src 'self'"),
        ("x-frame-options", "deny"),
        ("x-content-type-options", "nosniff"),
        ("x-xss-protection", "1; mode=block"),
        ("strict-transport-security", "max-age=31536000; includeSubDomains"),
    ] {
        assert_eq!(h.get(name).and_then(|v| v.to_str().ok()), Some(value), "{name}");
    }
    // Also on a 401 from basic auth.
    let auth = start(Some(config("basic-auth.yml"))).await;
    let resp = client(None).get(auth.url("http")).send().await.expect("request");
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.headers().get("x-content-type-options").and_then(|v| v.to_str().ok()), Some("nosniff"));
}

async fn tls_connect(addr: SocketAddr) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&read("ca.pem")) {
        roots.add(c.expect("CA pem")).expect("CA added");
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.expect("handshake")
}

#[tokio::test]
async fn http2_is_negotiated_unless_turned_off() {
    let s = start(Some(config("tls.yml"))).await;
    let mut tls = tls_connect(s.addr).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    // Speak HTTP/2: the server's first frame is SETTINGS (type 4).
    tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0").await.expect("preface");
    let mut frame = [0u8; 9];
    tls.read_exact(&mut frame).await.expect("server frame");
    assert_eq!(frame[3], 4, "first frame type");

    let s = start(Some(config("tls-http1.yml"))).await;
    let tls = tls_connect(s.addr).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
}

/// A scratch directory with copies of fixture files, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let d = std::env::temp_dir().join(format!("m365mon-web-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&d).expect("temp dir");
        for f in ["server.pem", "server.key", "ca.pem"] {
            std::fs::copy(fixtures().join(f), d.join(f)).expect("copy fixture");
        }
        TempDir(d)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.0.join(name);
        std::fs::write(&p, text).expect("write");
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

const PROMETHEUS: &str =
    "basic_auth_users:\n  prometheus: $2y$04$81BnkMDCUmlEXJZkH1UVfu98amuLPccg1ilUrC7ExYgxOUUo6AOe2\n";
const GRAFANA: &str = "basic_auth_users:\n  grafana: $2y$04$cy46I99b2k3dlsFh53xQsuupp2jcEye1uC.sAS37ZG6uQ7ZfttDFi\n";

async fn auth_status(s: &Server, user: &str, password: &str) -> u16 {
    client(None).get(s.url("http")).basic_auth(user, Some(password)).send().await.expect("request").status().as_u16()
}

#[tokio::test]
async fn basic_auth_users_hot_reload_and_a_broken_file_keeps_the_last_good() {
    let dir = TempDir::new();
    let path = dir.write("web.yml", PROMETHEUS);
    let s = start(Some(path)).await;
    assert_eq!(auth_status(&s, "prometheus", "s3cret-scrape").await, 200);

    dir.write("web.yml", GRAFANA);
    assert_eq!(auth_status(&s, "prometheus", "s3cret-scrape").await, 401);
    assert_eq!(auth_status(&s, "grafana", "dashb0ard").await, 200);

    dir.write("web.yml", "basic_auth_users: [not, a, map]\n");
    assert_eq!(auth_status(&s, "grafana", "dashb0ard").await, 200);
}

#[tokio::test]
async fn tls_settings_hot_reload() {
    let dir = TempDir::new();
    let tls = "tls_server_config:\n  cert_file: server.pem\n  key_file: server.key\n";
    let path = dir.write("web.yml", tls);
    let s = start(Some(path)).await;
    let url = s.url("https");
    assert_eq!(status(&client(None), &url).await.expect("tls"), 200);

    let mtls = format!("{tls}  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: ca.pem\n");
    dir.write("web.yml", &mtls);
    assert!(status(&client(None), &url).await.is_err(), "now needs a cert");
    assert_eq!(status(&client(Some("client-identity.pem")), &url).await.expect("cert"), 200);

    // Switching to plain HTTP needs a restart: TLS stays on.
    dir.write("web.yml", PROMETHEUS);
    assert_eq!(status(&client(Some("client-identity.pem")), &url).await.expect("cert"), 200);
}

#[tokio::test(start_paused = true)]
async fn a_stalled_tls_handshake_is_dropped_after_10s() {
    let s = start(Some(config("tls.yml"))).await;
    let mut tcp = TcpStream::connect(s.addr).await.expect("connect");
    let started = tokio::time::Instant::now();
    let mut buf = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(60), tcp.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "server kept the stalled connection open: {read:?}");
    let waited = started.elapsed();
    assert!((Duration::from_secs(10)..Duration::from_secs(11)).contains(&waited), "closed after {waited:?}");
}

async fn tls_connect_with(
    addr: SocketAddr,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::client::TlsStream<TcpStream> {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_slice_iter(&read("ca.pem")) {
        roots.add(c.expect("CA pem")).expect("CA added");
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_protocol_versions(versions)
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    tokio_rustls::TlsConnector::from(Arc::new(cfg)).connect(name, tcp).await.expect("handshake")
}

#[tokio::test]
async fn cipher_suites_server_order_and_curves_are_honoured() {
    let s = start(Some(config("tls-settings.yml"))).await;
    // The client's order is AES-256, AES-128, ChaCha20; the server's own wins.
    let tls12 = tls_connect_with(s.addr, &[&rustls::version::TLS12]).await;
    let suite = tls12.get_ref().1.negotiated_cipher_suite().expect("suite");
    assert_eq!(suite.suite(), rustls::CipherSuite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256);
    // The client's default first choice (X25519MLKEM768) is not listed.
    let tls13 = tls_connect_with(s.addr, &[&rustls::version::TLS13]).await;
    let group = tls13.get_ref().1.negotiated_key_exchange_group().expect("group");
    assert_eq!(group.name(), rustls::NamedGroup::X25519);
}
