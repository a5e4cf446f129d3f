//! Integration tests of the Entra ID / Graph simulator over real HTTP.
//!
//! Each test starts its own simulator on 127.0.0.1:0 with
//! `tests/fixtures/sim/world.yml` (or the demo world) and talks to it with reqwest.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use m365mon::sim::{self, Fault, IssueSpec, Scenario, SimHandle, Target, World};
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use tokio::net::TcpListener;

const WORLD: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sim/world.yml");
const CERTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/certs");

const ALPHA: &str = "10000000-0000-4000-8000-000000000001";
const BETA: &str = "20000000-0000-4000-8000-000000000002";
const SECRET_APP: &str = "a0000000-0000-4000-8000-000000000001";
const CERT_APP: &str = "a0000000-0000-4000-8000-000000000002";
const FED_APP: &str = "a0000000-0000-4000-8000-000000000003";
const DEVICE_APP: &str = "a0000000-0000-4000-8000-000000000004";
const NOROLES_APP: &str = "a0000000-0000-4000-8000-000000000005";
const LONELY_APP: &str = "a0000000-0000-4000-8000-000000000006";
const SECRET: &str = "s3cr3t~value+/=";
const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

async fn start_with(world: World) -> (SimHandle, Client) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    (sim::start(listener, world).await, Client::new())
}

async fn start() -> (SimHandle, Client) {
    start_with(World::from_yaml_file(Path::new(WORLD)).unwrap()).await
}

fn token_url(h: &SimHandle, tenant: &str) -> String {
    format!("{}/{tenant}/oauth2/v2.0/token", h.authority_host())
}

fn scope(h: &SimHandle) -> String {
    format!("{}/.default", h.graph_endpoint())
}

async fn post_form(c: &Client, url: &str, form: &[(&str, &str)]) -> reqwest::Response {
    c.post(url).form(form).send().await.unwrap()
}

async fn secret_token_resp(
    h: &SimHandle,
    c: &Client,
    tenant: &str,
    client_id: &str,
    secret: &str,
) -> reqwest::Response {
    let s = scope(h);
    let form =
        [("client_id", client_id), ("client_secret", secret), ("scope", &s), ("grant_type", "client_credentials")];
    post_form(c, &token_url(h, tenant), &form).await
}

/// An app-only access token for the secret app in `tenant`.
async fn app_token(h: &SimHandle, c: &Client, tenant: &str) -> String {
    let r = secret_token_resp(h, c, tenant, SECRET_APP, SECRET).await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    v["access_token"].as_str().unwrap().to_string()
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

/// Asserts an ESTS error (status, `error`, AADSTS code) and returns the body.
async fn ests_error(r: reqwest::Response, status: u16, error: &str, code: u32) -> Value {
    assert_eq!(r.status().as_u16(), status);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], error, "{v}");
    assert_eq!(v["error_codes"], json!([code]), "{v}");
    let desc = v["error_description"].as_str().unwrap();
    assert!(desc.starts_with(&format!("AADSTS{code}: ")), "{desc}");
    v
}

async fn graph_get(h: &SimHandle, c: &Client, token: &str, path: &str) -> reqwest::Response {
    c.get(format!("{}/v1.0{path}", h.graph_endpoint())).bearer_auth(token).send().await.unwrap()
}

async fn graph_error(r: reqwest::Response, status: u16, code: &str) -> Value {
    assert_eq!(r.status().as_u16(), status);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], code, "{v}");
    v
}

mod token {
    use super::*;

    /// A secret in the body yields the 1.3 body and the 1.1 headers, and the
    /// token carries the consented roles.
    #[tokio::test]
    async fn client_secret_in_body_succeeds() {
        let (h, c) = start().await;
        let r = secret_token_resp(&h, &c, "alpha.onmicrosoft.com", SECRET_APP, SECRET).await;
        assert_eq!(r.status(), StatusCode::OK);
        let hd = r.headers().clone();
        assert_eq!(hd["content-type"], "application/json; charset=utf-8");
        assert_eq!(hd["cache-control"], "no-store, no-cache");
        assert_eq!(hd["pragma"], "no-cache");
        assert_eq!(hd["expires"], "-1");
        assert_eq!(hd["x-content-type-options"], "nosniff");
        assert!(hd["x-ms-ests-server"].to_str().unwrap().ends_with("ProdSlices"));
        assert!(hd.contains_key("x-ms-request-id"));
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["token_type"], "Bearer");
        assert_eq!(v["expires_in"], json!(3599));
        assert_eq!(v["ext_expires_in"], json!(3599));
        assert!(v.get("refresh_token").is_none());
        let cl = claims(v["access_token"].as_str().unwrap());
        assert_eq!(cl["tid"], ALPHA);
        assert_eq!(cl["appid"], SECRET_APP);
        assert_eq!(cl["aud"], h.graph_endpoint());
        assert_eq!(cl["idtyp"], "app");
        assert_eq!(cl["iss"], format!("https://sts.windows.net/{ALPHA}/"));
        assert!(cl["roles"].as_array().unwrap().contains(&json!("ServiceHealth.Read.All")));
        assert_eq!(cl["exp"].as_i64().unwrap() - cl["iat"].as_i64().unwrap(), 3599);
    }

    /// The tenant may be a GUID or a domain; both count for the same tenant.
    #[tokio::test]
    async fn token_requests_are_counted_per_tenant() {
        let (h, c) = start().await;
        app_token(&h, &c, ALPHA).await;
        app_token(&h, &c, "alpha.example").await;
        let _ = secret_token_resp(&h, &c, "beta.onmicrosoft.com", SECRET_APP, "wrong").await;
        assert_eq!(h.token_requests("alpha.onmicrosoft.com"), 2);
        assert_eq!(h.token_requests(BETA), 1);
        assert_eq!(h.token_requests("nowhere.example"), 0);
    }

    /// The public Graph scope is accepted too and becomes the audience.
    #[tokio::test]
    async fn public_graph_scope_is_accepted() {
        let (h, c) = start().await;
        let form = [
            ("client_id", SECRET_APP),
            ("client_secret", SECRET),
            ("scope", "https://graph.microsoft.com/.default"),
            ("grant_type", "client_credentials"),
        ];
        let r = post_form(&c, &token_url(&h, ALPHA), &form).await;
        let v: Value = r.json().await.unwrap();
        let token = v["access_token"].as_str().unwrap();
        assert_eq!(claims(token)["aud"], "https://graph.microsoft.com");
        assert_eq!(graph_get(&h, &c, token, "/organization").await.status(), StatusCode::OK);
    }

    /// HTTP Basic carries the URL-encoded id and secret (RFC 6749 2.3.1).
    #[tokio::test]
    async fn client_secret_basic_succeeds() {
        let (h, c) = start().await;
        let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let basic = STANDARD.encode(format!("{}:{}", enc(SECRET_APP), enc(SECRET)));
        let s = scope(&h);
        let r = c
            .post(token_url(&h, ALPHA))
            .header("authorization", format!("Basic {basic}"))
            .form(&[("scope", s.as_str()), ("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }

    /// The 1.8 error body: description lines, timestamp format, correlation
    /// ID = client-request-id, trace ID = x-ms-request-id.
    #[tokio::test]
    async fn wrong_secret_is_7000215_with_the_full_error_body() {
        let (h, c) = start().await;
        let s = scope(&h);
        let corr = "5fc87507-4086-4e77-b415-cee677eb232e";
        let r = c
            .post(token_url(&h, ALPHA))
            .header("client-request-id", corr)
            .form(&[
                ("client_id", SECRET_APP),
                ("client_secret", "nope"),
                ("scope", &s),
                ("grant_type", "client_credentials"),
            ])
            .send()
            .await
            .unwrap();
        let request_id = r.headers()["x-ms-request-id"].to_str().unwrap().to_string();
        let v = ests_error(r, 401, "invalid_client", 7_000_215).await;
        let ts = v["timestamp"].as_str().unwrap();
        let b = ts.as_bytes();
        assert_eq!(ts.len(), 20, "{ts}");
        assert!(b[4] == b'-' && b[10] == b' ' && b[13] == b':' && ts.ends_with('Z'), "{ts}");
        assert_eq!(v["correlation_id"], corr);
        assert_eq!(v["trace_id"], request_id.as_str());
        let desc = v["error_description"].as_str().unwrap();
        let expected_tail = format!("\r\nTrace ID: {request_id}\r\nCorrelation ID: {corr}\r\nTimestamp: {ts}");
        assert!(desc.ends_with(&expected_tail), "{desc:?}");
        assert!(desc.contains(&format!("for a secret added to app '{SECRET_APP}'")));
        assert!(v["error_uri"].as_str().unwrap().ends_with("/error?code=7000215"));
    }

    #[tokio::test]
    async fn expired_secret_is_7000222() {
        let (h, c) = start().await;
        let r = secret_token_resp(&h, &c, ALPHA, SECRET_APP, "old-secret").await;
        ests_error(r, 401, "invalid_client", 7_000_222).await;
    }

    #[tokio::test]
    async fn missing_or_double_credentials_are_rejected() {
        let (h, c) = start().await;
        let s = scope(&h);
        let r = post_form(
            &c,
            &token_url(&h, ALPHA),
            &[("client_id", SECRET_APP), ("scope", &s), ("grant_type", "client_credentials")],
        )
        .await;
        ests_error(r, 401, "invalid_client", 7_000_218).await;
        let basic = STANDARD.encode(format!("{SECRET_APP}:x"));
        let r = c
            .post(token_url(&h, ALPHA))
            .header("authorization", format!("Basic {basic}"))
            .form(&[("client_secret", SECRET), ("scope", &s), ("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        ests_error(r, 400, "invalid_request", 9_002_313).await;
    }

    #[tokio::test]
    async fn app_absent_from_tenant_is_700016() {
        let (h, c) = start().await;
        let r = secret_token_resp(&h, &c, ALPHA, LONELY_APP, "lonely-secret").await;
        let v = ests_error(r, 400, "unauthorized_client", 700_016).await;
        assert!(
            v["error_description"]
                .as_str()
                .unwrap()
                .contains(&format!("Application with identifier '{LONELY_APP}' was not found"))
        );
        let r = secret_token_resp(&h, &c, ALPHA, "99999999-0000-4000-8000-000000000000", "x").await;
        ests_error(r, 400, "unauthorized_client", 700_016).await;
    }

    #[tokio::test]
    async fn tenant_errors() {
        let (h, c) = start().await;
        let r = secret_token_resp(&h, &c, "nowhere.onmicrosoft.com", SECRET_APP, SECRET).await;
        let v = ests_error(r, 400, "invalid_tenant", 90_002).await;
        assert!(v["error_description"].as_str().unwrap().contains("Tenant 'nowhere.onmicrosoft.com' not found"));
        for alias in ["common", "consumers", "organizations"] {
            let r = secret_token_resp(&h, &c, alias, SECRET_APP, SECRET).await;
            ests_error(r, 400, "invalid_request", 9_001_023).await;
        }
    }

    #[tokio::test]
    async fn request_errors() {
        let (h, c) = start().await;
        let url = token_url(&h, ALPHA);
        let base = [("client_id", SECRET_APP), ("client_secret", SECRET), ("grant_type", "client_credentials")];
        let with_scope = |s: &'static str| {
            let mut f = base.to_vec();
            f.push(("scope", s));
            f
        };
        let r = post_form(&c, &url, &with_scope("https://management.azure.com/.default")).await;
        ests_error(r, 400, "invalid_scope", 70_011).await;
        let r = post_form(&c, &url, &with_scope("https://graph.microsoft.com/User.Read")).await;
        ests_error(r, 400, "invalid_scope", 1_002_012).await;
        let r = post_form(&c, &url, &base).await;
        let v = ests_error(r, 400, "invalid_request", 900_144).await;
        assert!(v["error_description"].as_str().unwrap().contains("'scope'"));
        let s = scope(&h);
        let r = post_form(&c, &url, &[("client_id", SECRET_APP), ("scope", &s), ("grant_type", "password")]).await;
        ests_error(r, 400, "unsupported_grant_type", 70_003).await;
        let r = post_form(&c, &url, &[("client_id", SECRET_APP), ("scope", &s)]).await;
        ests_error(r, 400, "invalid_request", 900_144).await;
        let r = c.get(&url).send().await.unwrap();
        ests_error(r, 400, "invalid_request", 900_561).await;
    }

    /// Consented without roles: a token without `roles`; Graph then answers 403.
    #[tokio::test]
    async fn consent_without_roles_gives_a_roleless_token_and_graph_403() {
        let (h, c) = start().await;
        let r = secret_token_resp(&h, &c, ALPHA, NOROLES_APP, "noroles-secret").await;
        let v: Value = r.json().await.unwrap();
        let token = v["access_token"].as_str().unwrap();
        assert!(claims(token).get("roles").is_none());
        let r = graph_get(&h, &c, token, "/organization").await;
        graph_error(r, 403, "Authorization_RequestDenied").await;
    }
}

mod certificate {
    use super::*;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    fn der(name: &str) -> Vec<u8> {
        let pem = std::fs::read(format!("{CERTS}/{name}.crt.pem")).unwrap();
        let (_, p) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
        p.contents
    }

    fn key(name: &str) -> EncodingKey {
        EncodingKey::from_rsa_pem(&std::fs::read(format!("{CERTS}/{name}.key.pem")).unwrap()).unwrap()
    }

    fn s256(der: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
    }

    fn sha1(der: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA1_FOR_LEGACY_USE_ONLY, der))
    }

    fn now() -> i64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
    }

    struct Assertion {
        alg: Algorithm,
        x5t_s256: Option<String>,
        x5t: Option<String>,
        key: EncodingKey,
        claims: Value,
    }

    impl Assertion {
        /// A valid RS256 assertion for the cert app against `aud`.
        fn valid(aud: &str) -> Self {
            let n = now();
            Assertion {
                alg: Algorithm::RS256,
                x5t_s256: Some(s256(&der("app"))),
                x5t: None,
                key: key("app"),
                claims: json!({"aud": aud, "iss": CERT_APP, "sub": CERT_APP, "jti": "6e3f1a52-0000-4000-8000-000000000001", "nbf": n, "exp": n + 600}),
            }
        }

        fn sign(&self) -> String {
            let mut hd = Header::new(self.alg);
            hd.x5t_s256 = self.x5t_s256.clone();
            hd.x5t = self.x5t.clone();
            jsonwebtoken::encode(&hd, &self.claims, &self.key).unwrap()
        }
    }

    async fn send(h: &SimHandle, c: &Client, a: &Assertion) -> reqwest::Response {
        let s = scope(h);
        let jwt = a.sign();
        let form = [
            ("client_id", CERT_APP),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", jwt.as_str()),
            ("scope", s.as_str()),
            ("grant_type", "client_credentials"),
        ];
        post_form(c, &token_url(h, "alpha.onmicrosoft.com"), &form).await
    }

    #[tokio::test]
    async fn rs256_with_x5t_s256_and_ps256_with_x5t_succeed() {
        let (h, c) = start().await;
        let aud = token_url(&h, "alpha.onmicrosoft.com");
        let r = send(&h, &c, &Assertion::valid(&aud)).await;
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        assert_eq!(claims(v["access_token"].as_str().unwrap())["appid"], CERT_APP);
        let mut a = Assertion::valid(&aud);
        a.alg = Algorithm::PS256;
        a.x5t_s256 = None;
        a.x5t = Some(sha1(&der("app")));
        assert_eq!(send(&h, &c, &a).await.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn unknown_thumbprint_or_wrong_key_is_700027() {
        let (h, c) = start().await;
        let aud = token_url(&h, "alpha.onmicrosoft.com");
        let mut a = Assertion::valid(&aud);
        a.x5t_s256 = Some(s256(&der("other")));
        a.key = key("other");
        let v = ests_error(send(&h, &c, &a).await, 401, "invalid_client", 700_027).await;
        assert!(v["error_description"].as_str().unwrap().contains("The key was not found."));
        let mut a = Assertion::valid(&aud);
        a.key = key("other");
        let v = ests_error(send(&h, &c, &a).await, 401, "invalid_client", 700_027).await;
        assert!(v["error_description"].as_str().unwrap().contains("did not match the expected signature value"));
    }

    #[tokio::test]
    async fn claim_errors() {
        let (h, c) = start().await;
        let aud = token_url(&h, "alpha.onmicrosoft.com");
        let mut a = Assertion::valid(&aud);
        a.claims["exp"] = json!(now() - 60);
        a.claims["nbf"] = json!(now() - 660);
        ests_error(send(&h, &c, &a).await, 401, "invalid_client", 700_024).await;
        let mut a = Assertion::valid(&aud);
        a.claims["nbf"] = json!(now() + 300);
        ests_error(send(&h, &c, &a).await, 401, "invalid_client", 700_024).await;
        let mut a = Assertion::valid("https://login.microsoftonline.com/alpha.onmicrosoft.com/oauth2/v2.0/token");
        a.claims["jti"] = json!("x");
        ests_error(send(&h, &c, &a).await, 401, "invalid_client", 50_027).await;
        let mut a = Assertion::valid(&aud);
        a.claims["sub"] = json!(SECRET_APP);
        ests_error(send(&h, &c, &a).await, 401, "invalid_client", 50_048).await;
        let mut a = Assertion::valid(&aud);
        a.claims.as_object_mut().unwrap().remove("jti");
        ests_error(send(&h, &c, &a).await, 401, "invalid_client", 50_027).await;
    }

    /// The assertion window is checked on the simulator's clock.
    #[tokio::test]
    async fn advancing_the_clock_expires_an_assertion() {
        let (h, c) = start().await;
        let a = Assertion::valid(&token_url(&h, "alpha.onmicrosoft.com"));
        h.advance_clock(Duration::from_secs(3600));
        ests_error(send(&h, &c, &a).await, 401, "invalid_client", 700_024).await;
    }
}

mod federated {
    use super::*;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};

    fn assertion(sub: &str, aud: &str, exp_in: i64) -> String {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
        let claims = json!({"iss": "https://token.actions.githubusercontent.com", "sub": sub, "aud": aud, "exp": now + exp_in, "nbf": now - 5});
        // Any key: the simulator does not check federated signatures.
        let key = EncodingKey::from_rsa_pem(&std::fs::read(format!("{CERTS}/other.key.pem")).unwrap()).unwrap();
        jsonwebtoken::encode(&Header::new(Algorithm::RS256), &claims, &key).unwrap()
    }

    async fn send(h: &SimHandle, c: &Client, jwt: &str) -> reqwest::Response {
        let s = scope(h);
        let form = [
            ("client_id", FED_APP),
            ("client_assertion_type", JWT_BEARER),
            ("client_assertion", jwt),
            ("scope", s.as_str()),
            ("grant_type", "client_credentials"),
        ];
        post_form(c, &token_url(h, ALPHA), &form).await
    }

    #[tokio::test]
    async fn matching_credential_succeeds_and_mismatches_fail() {
        let (h, c) = start().await;
        let good_sub = "repo:example/m365mon:ref:refs/heads/main";
        let r = send(&h, &c, &assertion(good_sub, "api://AzureADTokenExchange", 300)).await;
        assert_eq!(r.status(), StatusCode::OK);
        let r = send(&h, &c, &assertion("repo:evil/x:ref:refs/heads/main", "api://AzureADTokenExchange", 300)).await;
        ests_error(r, 401, "invalid_client", 70_021).await;
        let r = send(&h, &c, &assertion(good_sub, "api://other", 300)).await;
        ests_error(r, 401, "invalid_client", 700_212).await;
        let r = send(&h, &c, &assertion(good_sub, "api://AzureADTokenExchange", -60)).await;
        ests_error(r, 401, "invalid_client", 700_024).await;
    }
}

mod delegated {
    use super::*;

    const DEVICE_SCOPE: &str = "https://graph.microsoft.com/.default offline_access openid profile";

    async fn devicecode(h: &SimHandle, c: &Client, tenant: &str) -> Value {
        let url = format!("{}/{tenant}/oauth2/v2.0/devicecode", h.authority_host());
        let r = post_form(c, &url, &[("client_id", DEVICE_APP), ("scope", DEVICE_SCOPE)]).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.json().await.unwrap()
    }

    async fn poll(h: &SimHandle, c: &Client, tenant: &str, device_code: &str) -> reqwest::Response {
        let form = [
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", DEVICE_APP),
            ("device_code", device_code),
        ];
        post_form(c, &token_url(h, tenant), &form).await
    }

    async fn refresh(h: &SimHandle, c: &Client, tenant: &str, rt: &str) -> reqwest::Response {
        let form = [("grant_type", "refresh_token"), ("client_id", DEVICE_APP), ("refresh_token", rt)];
        post_form(c, &token_url(h, tenant), &form).await
    }

    /// Signs in through the device flow (approves after one pending poll) and returns the token body.
    async fn sign_in(h: &SimHandle, c: &Client, tenant: &str) -> Value {
        let d = devicecode(h, c, tenant).await;
        let code = d["device_code"].as_str().unwrap();
        loop {
            let r = poll(h, c, tenant, code).await;
            if r.status() == StatusCode::OK {
                return r.json().await.unwrap();
            }
            ests_error(r, 400, "authorization_pending", 70_016).await;
        }
    }

    #[tokio::test]
    async fn device_flow_pending_then_tokens_then_already_used() {
        let (h, c) = start().await;
        let d = devicecode(&h, &c, "alpha.onmicrosoft.com").await;
        let user_code = d["user_code"].as_str().unwrap();
        assert_eq!(user_code.len(), 9);
        assert_eq!(d["verification_uri"], "https://microsoft.com/devicelogin");
        assert_eq!(d["expires_in"], json!(900));
        assert_eq!(d["interval"], json!(5));
        assert_eq!(
            d["message"],
            format!(
                "To sign in, use a web browser to open the page https://microsoft.com/devicelogin and enter the code {user_code} to authenticate."
            )
        );
        assert!(d.get("verification_uri_complete").is_none());
        let code = d["device_code"].as_str().unwrap();
        ests_error(poll(&h, &c, ALPHA, code).await, 400, "authorization_pending", 70_016).await;
        let r = poll(&h, &c, ALPHA, code).await;
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        assert!(v["refresh_token"].is_string() && v["id_token"].is_string());
        assert!(v["scope"].as_str().unwrap().contains("https://graph.microsoft.com/Organization.Read.All"));
        let access = v["access_token"].as_str().unwrap();
        let cl = claims(access);
        assert_eq!(cl["scp"], "Organization.Read.All Mail.Read");
        assert_eq!(cl["upn"], "monitor@alpha.example");
        assert!(cl.get("roles").is_none());
        assert_eq!(graph_get(&h, &c, access, "/organization").await.status(), StatusCode::OK);
        ests_error(poll(&h, &c, ALPHA, code).await, 400, "invalid_grant", 90_120).await;
        ests_error(poll(&h, &c, ALPHA, "DAQAB-unknown").await, 400, "bad_verification_code", 70_000).await;
    }

    #[tokio::test]
    async fn device_flow_decline_slow_down_expiry_and_control() {
        let (h, c) = start().await;
        // Delta declines after one pending poll.
        let d = devicecode(&h, &c, "delta.onmicrosoft.com").await;
        let code = d["device_code"].as_str().unwrap();
        ests_error(poll(&h, &c, "delta.onmicrosoft.com", code).await, 400, "authorization_pending", 70_016).await;
        ests_error(poll(&h, &c, "delta.onmicrosoft.com", code).await, 400, "authorization_declined", 70_000).await;
        // Gamma stays pending and enforces the interval.
        let g = "gamma.onmicrosoft.com";
        let d = devicecode(&h, &c, g).await;
        let code = d["device_code"].as_str().unwrap();
        ests_error(poll(&h, &c, g, code).await, 400, "authorization_pending", 70_016).await;
        let r = poll(&h, &c, g, code).await;
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"], "slow_down");
        h.advance_clock(Duration::from_secs(6));
        assert!(h.approve_device_code(d["user_code"].as_str().unwrap()));
        assert_eq!(poll(&h, &c, g, code).await.status(), StatusCode::OK);
        // A code past expires_in (600 s in gamma) has expired.
        let d = devicecode(&h, &c, g).await;
        h.advance_clock(Duration::from_secs(601));
        ests_error(poll(&h, &c, g, d["device_code"].as_str().unwrap()).await, 400, "expired_token", 70_020).await;
        // Declining through the control API.
        let d = devicecode(&h, &c, g).await;
        let r = c
            .post(format!("http://{}/_sim/device/decline", h.addr()))
            .json(&json!({"user_code": d["user_code"]}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        h.advance_clock(Duration::from_secs(6));
        ests_error(poll(&h, &c, g, d["device_code"].as_str().unwrap()).await, 400, "authorization_declined", 70_000)
            .await;
    }

    /// Refresh always rotates; by default the old token keeps working.
    #[tokio::test]
    async fn refresh_rotates_and_old_token_stays_valid_by_default() {
        let (h, c) = start().await;
        let first = sign_in(&h, &c, ALPHA).await;
        let rt1 = first["refresh_token"].as_str().unwrap();
        let r = refresh(&h, &c, ALPHA, rt1).await;
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        let rt2 = v["refresh_token"].as_str().unwrap();
        assert_ne!(rt1, rt2);
        assert!(claims(v["access_token"].as_str().unwrap())["scp"].is_string());
        assert_eq!(refresh(&h, &c, ALPHA, rt1).await.status(), StatusCode::OK);
        assert_eq!(refresh(&h, &c, "organizations", rt2).await.status(), StatusCode::OK);
    }

    /// With strict rotation a used refresh token fails (70008).
    #[tokio::test]
    async fn strict_rotation_invalidates_the_old_token() {
        let (h, c) = start().await;
        let first = sign_in(&h, &c, BETA).await;
        let rt1 = first["refresh_token"].as_str().unwrap();
        let v: Value = refresh(&h, &c, BETA, rt1).await.json().await.unwrap();
        ests_error(refresh(&h, &c, BETA, rt1).await, 400, "invalid_grant", 70_008).await;
        assert_eq!(refresh(&h, &c, BETA, v["refresh_token"].as_str().unwrap()).await.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn refresh_faults() {
        let (h, c) = start().await;
        let first = sign_in(&h, &c, ALPHA).await;
        let rt = first["refresh_token"].as_str().unwrap();
        h.set_fault(ALPHA, Target::Token, Fault::RefreshExpired);
        let v = ests_error(refresh(&h, &c, ALPHA, rt).await, 400, "invalid_grant", 700_082).await;
        assert_eq!(v["suberror"], "bad_token");
        h.set_fault(ALPHA, Target::Token, Fault::RefreshRevoked);
        ests_error(refresh(&h, &c, ALPHA, rt).await, 400, "invalid_grant", 50_173).await;
        h.set_fault(ALPHA, Target::Token, Fault::ConsentRevoked);
        let v = ests_error(refresh(&h, &c, ALPHA, rt).await, 400, "invalid_grant", 65_001).await;
        assert_eq!(v["suberror"], "consent_required");
        h.clear_fault(ALPHA, Target::Token);
        assert_eq!(refresh(&h, &c, ALPHA, rt).await.status(), StatusCode::OK);
        // Ninety days without use.
        h.advance_clock(Duration::from_secs(91 * 24 * 3600));
        ests_error(refresh(&h, &c, ALPHA, rt).await, 400, "invalid_grant", 700_082).await;
    }
}

mod graph {
    use super::*;

    #[tokio::test]
    async fn organization_with_graph_headers_and_client_request_id_echo() {
        let (h, c) = start().await;
        let t = app_token(&h, &c, ALPHA).await;
        let r = c
            .get(format!("{}/v1.0/organization", h.graph_endpoint()))
            .bearer_auth(&t)
            .header("client-request-id", "b04ace1e-13a0-4940-b489-f86dcca10985")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let hd = r.headers().clone();
        assert_eq!(hd["client-request-id"], "b04ace1e-13a0-4940-b489-f86dcca10985");
        assert!(hd["content-type"].to_str().unwrap().starts_with("application/json;odata.metadata=minimal"));
        assert_eq!(hd["odata-version"], "4.0");
        assert_eq!(hd["cache-control"], "no-cache");
        assert!(hd.contains_key("request-id") && hd.contains_key("x-ms-ags-diagnostic") && hd.contains_key("date"));
        let v: Value = r.json().await.unwrap();
        let org = &v["value"][0];
        assert_eq!(org["id"], ALPHA);
        assert_eq!(org["displayName"], "Alpha");
        assert_eq!(org["verifiedDomains"][0]["name"], "alpha.onmicrosoft.com");
        assert_eq!(org["verifiedDomains"][0]["isInitial"], true);
        // Without client-request-id, it echoes request-id.
        let r = graph_get(&h, &c, &t, "/organization").await;
        assert_eq!(r.headers()["client-request-id"], r.headers()["request-id"]);
        let rec = h.requests();
        let last = rec.iter().rev().find(|r| r.path.ends_with("/organization")).unwrap();
        assert_eq!(last.tenant.as_deref(), Some(ALPHA));
        assert_eq!(last.status, Some(200));
        assert!(rec.iter().any(|r| r.client_request_id.as_deref() == Some("b04ace1e-13a0-4940-b489-f86dcca10985")));
    }

    #[tokio::test]
    async fn unauthorized_answers() {
        let (h, c) = start().await;
        let r = c.get(format!("{}/v1.0/organization", h.graph_endpoint())).send().await.unwrap();
        let www = r.headers()["www-authenticate"].to_str().unwrap().to_string();
        assert!(www.starts_with("Bearer realm=\"\", authorization_uri=\""), "{www}");
        assert!(www.ends_with("client_id=\"00000003-0000-0000-c000-000000000000\""), "{www}");
        let v = graph_error(r, 401, "InvalidAuthenticationToken").await;
        assert_eq!(v["error"]["message"], "Access token is empty.");
        assert!(v["error"]["innerError"]["request-id"].is_string());
        let v =
            graph_error(graph_get(&h, &c, "garbage", "/organization").await, 401, "InvalidAuthenticationToken").await;
        assert!(v["error"]["message"].as_str().unwrap().starts_with("CompactToken parsing failed"));
        // A token from another simulator instance has a foreign signature.
        let (other, _) = start().await;
        let foreign = app_token(&other, &c, ALPHA).await;
        graph_error(graph_get(&h, &c, &foreign, "/organization").await, 401, "InvalidAuthenticationToken").await;
        let t = app_token(&h, &c, ALPHA).await;
        h.advance_clock(Duration::from_secs(3600));
        let v = graph_error(graph_get(&h, &c, &t, "/organization").await, 401, "InvalidAuthenticationToken").await;
        assert_eq!(v["error"]["message"], "Access token has expired or is not yet valid.");
    }

    #[tokio::test]
    async fn mailbox_site_drive_and_team() {
        let (h, c) = start().await;
        let t = app_token(&h, &c, ALPHA).await;
        let v: Value =
            graph_get(&h, &c, &t, "/users/monitor@alpha.example/mailFolders/inbox").await.json().await.unwrap();
        assert_eq!(v["displayName"], "Inbox");
        assert!(v["totalItemCount"].is_number());
        graph_error(
            graph_get(&h, &c, &t, "/users/nobody@alpha.example/mailFolders/inbox").await,
            404,
            "ErrorInvalidUser",
        )
        .await;
        graph_error(
            graph_get(&h, &c, &t, "/users/guest@alpha.example/mailFolders/inbox").await,
            404,
            "MailboxNotEnabledForRESTAPI",
        )
        .await;
        let r = graph_get(&h, &c, &t, "/sites/alpha.sharepoint.com:/sites/monitoring").await;
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        assert!(v["id"].as_str().unwrap().starts_with("alpha.sharepoint.com,"));
        assert_eq!(v["webUrl"], "https://alpha.sharepoint.com/sites/monitoring");
        graph_error(graph_get(&h, &c, &t, "/sites/alpha.sharepoint.com:/sites/nothing").await, 404, "itemNotFound")
            .await;
        assert_eq!(graph_get(&h, &c, &t, "/sites/root").await.status(), StatusCode::OK);
        let v: Value = graph_get(&h, &c, &t, "/users/monitor@alpha.example/drive").await.json().await.unwrap();
        assert_eq!(v["driveType"], "business");
        assert_eq!(v["quota"]["state"], "normal");
        graph_error(graph_get(&h, &c, &t, "/users/guest@alpha.example/drive").await, 404, "ResourceNotFound").await;
        let v: Value = graph_get(&h, &c, &t, "/teams/b0000000-0000-4000-8000-000000000001").await.json().await.unwrap();
        assert_eq!(v["displayName"], "Alpha Ops");
        assert_eq!(v["isArchived"], false);
        graph_error(graph_get(&h, &c, &t, "/teams/b0000000-0000-4000-8000-00000000000f").await, 404, "NotFound").await;
    }

    /// Roles are checked per endpoint (beta's app holds Organization.Read.All only).
    #[tokio::test]
    async fn missing_roles_give_the_workload_403() {
        let (h, c) = start().await;
        let t = app_token(&h, &c, BETA).await;
        assert_eq!(graph_get(&h, &c, &t, "/organization").await.status(), StatusCode::OK);
        graph_error(
            graph_get(&h, &c, &t, "/users/monitor@beta.example/mailFolders/inbox").await,
            403,
            "ErrorAccessDenied",
        )
        .await;
        graph_error(graph_get(&h, &c, &t, "/sites/root").await, 403, "accessDenied").await;
        graph_error(graph_get(&h, &c, &t, "/teams/b0000000-0000-4000-8000-000000000001").await, 403, "Forbidden").await;
        graph_error(graph_get(&h, &c, &t, "/admin/serviceAnnouncement/healthOverviews").await, 403, "Forbidden").await;
    }

    #[tokio::test]
    async fn unknown_paths_and_methods() {
        let (h, c) = start().await;
        let t = app_token(&h, &c, ALPHA).await;
        let v = graph_error(graph_get(&h, &c, &t, "/nonsense").await, 400, "BadRequest").await;
        assert_eq!(v["error"]["message"], "Resource not found for the segment 'nonsense'.");
        let r = c.delete(format!("{}/v1.0/organization", h.graph_endpoint())).bearer_auth(&t).send().await.unwrap();
        graph_error(r, 405, "Request_BadRequest").await;
        let r = c.get(format!("http://{}/elsewhere", h.addr())).send().await.unwrap();
        graph_error(r, 404, "NotFound").await;
    }

    #[tokio::test]
    async fn health_overviews_default_services_and_status_changes() {
        let (h, c) = start().await;
        let t = app_token(&h, &c, ALPHA).await;
        let v: Value = graph_get(&h, &c, &t, "/admin/serviceAnnouncement/healthOverviews").await.json().await.unwrap();
        let names: Vec<&str> = v["value"].as_array().unwrap().iter().map(|s| s["service"].as_str().unwrap()).collect();
        for n in [
            "Exchange Online",
            "Microsoft Entra",
            "SharePoint Online",
            "OneDrive for Business",
            "Microsoft Teams",
            "Microsoft 365 suite",
        ] {
            assert!(names.contains(&n), "{n} missing from {names:?}");
        }
        assert!(v["value"].as_array().unwrap().iter().all(|s| s["status"] == "serviceOperational"));
        h.set_service_status("alpha.example", "Exchange Online", "serviceDegradation");
        let v: Value =
            graph_get(&h, &c, &t, "/admin/serviceAnnouncement/healthOverviews?$filter=status ne 'serviceOperational'")
                .await
                .json()
                .await
                .unwrap();
        assert_eq!(
            v["value"],
            json!([{"service": "Exchange Online", "status": "serviceDegradation", "id": "Exchange"}])
        );
        let v: Value = graph_get(&h, &c, &t, "/admin/serviceAnnouncement/healthOverviews/Exchange%20Online")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["status"], "serviceDegradation");
    }

    async fn issue_ids(h: &SimHandle, c: &Client, t: &str, query: &str) -> Vec<String> {
        let r = graph_get(h, c, t, &format!("/admin/serviceAnnouncement/issues{query}")).await;
        assert_eq!(r.status(), StatusCode::OK, "{query}");
        let v: Value = r.json().await.unwrap();
        v["value"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap().to_string()).collect()
    }

    #[tokio::test]
    async fn issues_filter_and_order() {
        let (h, c) = start().await;
        let t = app_token(&h, &c, ALPHA).await;
        assert_eq!(issue_ids(&h, &c, &t, "?$filter=isResolved eq false").await, ["EX000101", "SP000103", "TM000104"]);
        assert_eq!(
            issue_ids(&h, &c, &t, "?$filter=service eq 'Exchange Online' and isResolved eq false").await,
            ["EX000101"]
        );
        assert_eq!(issue_ids(&h, &c, &t, "?$filter=classification eq 'advisory'").await, ["SP000103"]);
        assert_eq!(issue_ids(&h, &c, &t, "?$filter=status eq 'serviceRestored'").await, ["EX000102"]);
        assert_eq!(
            issue_ids(
                &h,
                &c,
                &t,
                "?$filter=startDateTime ge 2025-01-10T00:00:00Z and startDateTime le 2025-01-11T12:00:00Z"
            )
            .await,
            ["EX000101", "SP000103"]
        );
        assert_eq!(issue_ids(&h, &c, &t, "?$filter=lastModifiedDateTime ge 2025-01-12T00:00:00Z").await, ["TM000104"]);
        assert_eq!(
            issue_ids(&h, &c, &t, "?$filter=isResolved eq false&$orderby=startDateTime desc").await,
            ["TM000104", "SP000103", "EX000101"]
        );
        let v = graph_error(
            graph_get(&h, &c, &t, "/admin/serviceAnnouncement/issues?$filter=isResolved eq").await,
            400,
            "BadRequest",
        )
        .await;
        assert!(v["error"]["message"].as_str().unwrap().starts_with("Invalid filter clause"));
        let v = graph_error(
            graph_get(&h, &c, &t, "/admin/serviceAnnouncement/issues?$filter=colour eq 'red'").await,
            400,
            "BadRequest",
        )
        .await;
        assert!(v["error"]["message"].as_str().unwrap().contains("'colour'"));
        graph_error(
            graph_get(&h, &c, &t, "/admin/serviceAnnouncement/issues?$filter=details eq 'x'").await,
            400,
            "BadRequest",
        )
        .await;
        let v: Value = graph_get(&h, &c, &t, "/admin/serviceAnnouncement/issues/EX000101").await.json().await.unwrap();
        assert_eq!(v["title"], "Mail delays");
        assert_eq!(v["endDateTime"], Value::Null);
    }

    /// `Prefer: odata.maxpagesize` and `$top` page with absolute nextLinks that are followed unchanged.
    #[tokio::test]
    async fn issues_paging() {
        let (h, c) = start().await;
        let t = app_token(&h, &c, ALPHA).await;
        let mut url =
            format!("{}/v1.0/admin/serviceAnnouncement/issues?$filter=service ne 'Nothing'", h.graph_endpoint());
        let mut pages = vec![];
        loop {
            let r = c.get(&url).bearer_auth(&t).header("Prefer", "odata.maxpagesize=2").send().await.unwrap();
            assert_eq!(r.status(), StatusCode::OK);
            assert_eq!(r.headers()["preference-applied"], "odata.maxpagesize=2");
            let v: Value = r.json().await.unwrap();
            pages.push(v["value"].as_array().unwrap().len());
            match v["@odata.nextLink"].as_str() {
                Some(next) => {
                    assert!(
                        next.starts_with(&format!("{}/v1.0/admin/serviceAnnouncement/issues?", h.graph_endpoint())),
                        "{next}"
                    );
                    url = next.to_string();
                }
                None => break,
            }
        }
        assert_eq!(pages, [2, 2, 1]);
        // $top=3 with pages of 2: 2 then 1, then no link.
        let first: Value = c
            .get(format!("{}/v1.0/admin/serviceAnnouncement/issues?$top=3", h.graph_endpoint()))
            .bearer_auth(&t)
            .header("Prefer", "odata.maxpagesize=2")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(first["value"].as_array().unwrap().len(), 2);
        let next = first["@odata.nextLink"].as_str().unwrap();
        let second: Value = c
            .get(next)
            .bearer_auth(&t)
            .header("Prefer", "odata.maxpagesize=2")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(second["value"].as_array().unwrap().len(), 1);
        assert!(second.get("@odata.nextLink").is_none());
        assert_eq!(issue_ids(&h, &c, &t, "?$top=2").await.len(), 2);
    }

    #[tokio::test]
    async fn message_center_and_gdap_customers() {
        let (h, c) = start().await;
        let t = app_token(&h, &c, ALPHA).await;
        let v: Value = graph_get(&h, &c, &t, "/admin/serviceAnnouncement/messages").await.json().await.unwrap();
        assert_eq!(v["value"][0]["id"], "MC000001");
        assert_eq!(v["value"][0]["viewPoint"], Value::Null);
        let r = c
            .get(format!("{}/v1.0/tenantRelationships/delegatedAdminCustomers", h.graph_endpoint()))
            .bearer_auth(&t)
            .header("Prefer", "odata.maxpagesize=2")
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["value"][0]["tenantId"], BETA);
        let next: Value =
            c.get(v["@odata.nextLink"].as_str().unwrap()).bearer_auth(&t).send().await.unwrap().json().await.unwrap();
        assert_eq!(next["value"][0]["displayName"], "Delta");
    }

    /// Relationships carry the Graph v1.0 shape, page, can be faulted, and
    /// customers come and go through the handle and the control API.
    #[tokio::test]
    async fn gdap_relationships_and_customer_changes() {
        let (h, c) = start().await;
        let t = app_token(&h, &c, ALPHA).await;
        let url = format!("{}/v1.0/tenantRelationships/delegatedAdminRelationships", h.graph_endpoint());
        let v: Value = c
            .get(&url)
            .bearer_auth(&t)
            .header("Prefer", "odata.maxpagesize=3")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let page = v["value"].as_array().unwrap();
        assert_eq!(page.len(), 3);
        assert_eq!(page[0]["@odata.type"], "#microsoft.graph.delegatedAdminRelationship");
        assert_eq!(page[0]["customer"]["tenantId"], BETA);
        assert_eq!(page[0]["status"], "active");
        assert!(page[0]["endDateTime"].as_str().unwrap().ends_with("T00:00:00Z"));
        assert_eq!(page[1]["status"], "expired");
        assert_eq!(page[1]["endDateTime"], "2024-01-01T00:00:00Z");
        assert_eq!(page[2]["endDateTime"], "2026-03-01T00:00:00Z");
        assert_eq!(page[2]["autoExtendDuration"], "P180D");
        assert!(page[2]["id"].as_str().unwrap().ends_with("-30000000-0000-4000-8000-000000000003"));
        let next: Value =
            c.get(v["@odata.nextLink"].as_str().unwrap()).bearer_auth(&t).send().await.unwrap().json().await.unwrap();
        assert_eq!(next["value"][0]["customer"]["displayName"], "Delta");
        assert!(next.get("@odata.nextLink").is_none());

        // Customers added and removed at runtime.
        let epsilon = "50000000-0000-4000-8000-000000000005";
        h.upsert_customer("alpha.example", sim::Customer::new(epsilon, "Epsilon"));
        assert!(h.remove_customer(ALPHA, BETA));
        assert!(!h.remove_customer(ALPHA, BETA));
        let ids = |v: &Value| -> Vec<String> {
            v["value"].as_array().unwrap().iter().map(|c| c["tenantId"].as_str().unwrap().to_string()).collect()
        };
        let cust = format!("{}/v1.0/tenantRelationships/delegatedAdminCustomers", h.graph_endpoint());
        let v: Value = c.get(&cust).bearer_auth(&t).send().await.unwrap().json().await.unwrap();
        assert_eq!(ids(&v), ["30000000-0000-4000-8000-000000000003", "40000000-0000-4000-8000-000000000004", epsilon]);

        // The control API does the same.
        let ctl = format!("http://{}/_sim/customers", h.addr());
        let r = c
            .post(&ctl)
            .json(&json!({"partner": ALPHA, "tenant_id": BETA, "display_name": "Beta", "relationship_end": "2027-05-01T00:00:00Z"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r =
            c.post(&ctl).json(&json!({"partner": ALPHA, "tenant_id": "x", "display_name": "X"})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = c.delete(format!("{ctl}?partner={ALPHA}&tenant_id={epsilon}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = c.delete(format!("{ctl}?partner={ALPHA}&tenant_id={epsilon}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let v: Value = c.get(&url).bearer_auth(&t).send().await.unwrap().json().await.unwrap();
        let beta = v["value"].as_array().unwrap().iter().find(|r| r["customer"]["tenantId"] == BETA).unwrap().clone();
        assert_eq!(beta["endDateTime"], "2027-05-01T00:00:00Z");

        // A fault on the tenant_relationships target breaks both endpoints.
        h.set_fault(ALPHA, Target::TenantRelationships, Fault::Down);
        graph_error(c.get(&cust).bearer_auth(&t).send().await.unwrap(), 503, "serviceNotAvailable").await;
        graph_error(c.get(&url).bearer_auth(&t).send().await.unwrap(), 503, "serviceNotAvailable").await;
    }

    #[tokio::test]
    async fn issues_opened_and_resolved_through_the_handle() {
        let (h, c) = start().await;
        let t = app_token(&h, &c, ALPHA).await;
        h.open_issue(ALPHA, IssueSpec::new("EX000999", "Exchange Online"));
        let v: Value = graph_get(&h, &c, &t, "/admin/serviceAnnouncement/issues/EX000999").await.json().await.unwrap();
        assert_eq!(v["isResolved"], false);
        assert_eq!(v["classification"], "incident");
        assert_eq!(v["status"], "serviceDegradation");
        h.resolve_issue("alpha.example", "EX000999");
        let v: Value = graph_get(&h, &c, &t, "/admin/serviceAnnouncement/issues/EX000999").await.json().await.unwrap();
        assert_eq!(v["isResolved"], true);
        assert_eq!(v["status"], "serviceRestored");
        assert!(v["endDateTime"].is_string());
    }
}

mod faults {
    use super::*;

    #[tokio::test]
    async fn graph_faults_answer_as_documented() {
        let (h, c) = start().await;
        let t = app_token(&h, &c, ALPHA).await;
        let inbox = "/users/monitor@alpha.example/mailFolders/inbox";
        h.set_fault(ALPHA, Target::Exchange, Fault::Down);
        let r = graph_get(&h, &c, &t, inbox).await;
        assert!(r.headers().get("retry-after").is_none());
        graph_error(r, 503, "serviceNotAvailable").await;
        h.set_fault("alpha.example", Target::Exchange, Fault::Unavailable { retry_after: Duration::from_secs(7) });
        let r = graph_get(&h, &c, &t, inbox).await;
        assert_eq!(r.headers()["retry-after"], "7");
        graph_error(r, 503, "serviceNotAvailable").await;
        h.set_fault(ALPHA, Target::Exchange, Fault::Throttled { retry_after: Duration::from_secs(20) });
        let r = graph_get(&h, &c, &t, inbox).await;
        assert_eq!(r.headers()["retry-after"], "20");
        assert_eq!(r.headers()["content-type"], "application/json");
        let v = graph_error(r, 429, "TooManyRequests").await;
        assert_eq!(v["error"]["innerError"]["status"], "429");
        h.set_fault(ALPHA, Target::Exchange, Fault::Forbidden);
        graph_error(graph_get(&h, &c, &t, inbox).await, 403, "ErrorAccessDenied").await;
        h.set_fault(ALPHA, Target::Exchange, Fault::NotFound);
        graph_error(graph_get(&h, &c, &t, inbox).await, 404, "ErrorItemNotFound").await;
        h.set_fault(ALPHA, Target::Exchange, Fault::ServerError);
        graph_error(graph_get(&h, &c, &t, inbox).await, 500, "generalException").await;
        h.set_fault(ALPHA, Target::Exchange, Fault::Malformed);
        let r = graph_get(&h, &c, &t, inbox).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(serde_json::from_str::<Value>(&r.text().await.unwrap()).is_err());
        h.set_fault(ALPHA, Target::Exchange, Fault::ConnectionReset);
        let e = c.get(format!("{}/v1.0{inbox}", h.graph_endpoint())).bearer_auth(&t).send().await.unwrap_err();
        assert!(!e.is_status() && !e.is_timeout(), "{e}");
        assert_eq!(h.requests().last().unwrap().status, None);
        h.clear_fault(ALPHA, Target::Exchange);
        assert_eq!(graph_get(&h, &c, &t, inbox).await.status(), StatusCode::OK);
    }

    /// A fault hits only its tenant and target.
    #[tokio::test]
    async fn faults_are_isolated_per_tenant_and_target() {
        let (h, c) = start().await;
        let ta = app_token(&h, &c, ALPHA).await;
        let tb = app_token(&h, &c, BETA).await;
        h.set_fault(ALPHA, Target::Organization, Fault::Down);
        h.set_fault(ALPHA, Target::Sharepoint, Fault::NotFound);
        assert_eq!(graph_get(&h, &c, &ta, "/organization").await.status().as_u16(), 503);
        assert_eq!(graph_get(&h, &c, &tb, "/organization").await.status().as_u16(), 200);
        assert_eq!(graph_get(&h, &c, &ta, "/teams/b0000000-0000-4000-8000-000000000001").await.status().as_u16(), 200);
        graph_error(graph_get(&h, &c, &ta, "/sites/root").await, 404, "itemNotFound").await;
        assert_eq!(h.faults().len(), 2);
        h.clear_all_faults();
        assert!(h.faults().is_empty());
        assert_eq!(graph_get(&h, &c, &ta, "/organization").await.status().as_u16(), 200);
    }

    /// `slow` sleeps on tokio time: under paused time it completes at once in
    /// real time yet takes the full delay on the tokio clock.
    #[tokio::test(start_paused = true)]
    async fn slow_uses_tokio_time() {
        let (h, c) = start().await;
        let t = app_token(&h, &c, ALPHA).await;
        h.set_fault(ALPHA, Target::Teams, Fault::Slow { delay: Duration::from_secs(30) });
        let started = tokio::time::Instant::now();
        let r = graph_get(&h, &c, &t, "/teams/b0000000-0000-4000-8000-000000000001").await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(started.elapsed() >= Duration::from_secs(30));
    }

    #[tokio::test]
    async fn token_endpoint_faults() {
        let (h, c) = start().await;
        let cases: [(Fault, u16, &str, u32); 8] = [
            (Fault::Down, 503, "temporarily_unavailable", 90_033),
            (Fault::Throttled { retry_after: Duration::from_secs(9) }, 429, "temporarily_unavailable", 90_055),
            (Fault::BadSecret, 401, "invalid_client", 7_000_215),
            (Fault::ExpiredSecret, 401, "invalid_client", 7_000_222),
            (Fault::NotConsented, 400, "unauthorized_client", 700_016),
            (Fault::UnknownTenant, 400, "invalid_tenant", 90_002),
            (Fault::ServerError, 500, "server_error", 50_000),
            (Fault::Forbidden, 400, "invalid_grant", 53_003),
        ];
        for (fault, status, error, code) in cases {
            h.set_fault("alpha.onmicrosoft.com", Target::Token, fault);
            let r = secret_token_resp(&h, &c, ALPHA, SECRET_APP, SECRET).await;
            if let Some(s) = fault.retry_after() {
                assert_eq!(r.headers()["retry-after"].to_str().unwrap(), s.as_secs().to_string());
            }
            ests_error(r, status, error, code).await;
        }
        h.set_fault(ALPHA, Target::Token, Fault::Unavailable { retry_after: Duration::from_secs(4) });
        let r = secret_token_resp(&h, &c, ALPHA, SECRET_APP, SECRET).await;
        assert_eq!(r.headers()["retry-after"], "4");
        h.set_fault(ALPHA, Target::Token, Fault::Malformed);
        let r = secret_token_resp(&h, &c, ALPHA, SECRET_APP, SECRET).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.json::<Value>().await.is_err());
        h.set_fault(ALPHA, Target::Token, Fault::ConnectionReset);
        let s = scope(&h);
        let form =
            [("client_id", SECRET_APP), ("client_secret", SECRET), ("scope", &s), ("grant_type", "client_credentials")];
        assert!(c.post(token_url(&h, ALPHA)).form(&form).send().await.is_err());
        // Beta is untouched.
        assert_eq!(secret_token_resp(&h, &c, BETA, SECRET_APP, SECRET).await.status(), StatusCode::OK);
    }
}

mod control {
    use super::*;

    fn url(h: &SimHandle, p: &str) -> String {
        format!("http://{}/_sim{p}", h.addr())
    }

    #[tokio::test]
    async fn faults_over_http() {
        let (h, c) = start().await;
        let body = json!({"tenant": "alpha.onmicrosoft.com", "target": "sharepoint", "fault": "throttled", "retry_after_seconds": 20});
        let r = c.post(url(&h, "/faults")).json(&body).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            h.faults(),
            vec![(ALPHA.to_string(), Target::Sharepoint, Fault::Throttled { retry_after: Duration::from_secs(20) })]
        );
        let body = json!({"tenant": BETA, "target": "organization", "fault": "slow", "delay_ms": 1500});
        assert_eq!(c.post(url(&h, "/faults")).json(&body).send().await.unwrap().status(), StatusCode::OK);
        let v: Value = c.get(url(&h, "/faults")).send().await.unwrap().json().await.unwrap();
        assert_eq!(
            v["faults"],
            json!([
                {"tenant": ALPHA, "target": "sharepoint", "fault": "throttled", "retry_after_seconds": 20},
                {"tenant": BETA, "target": "organization", "fault": "slow", "delay_ms": 1500}
            ])
        );
        let v: Value =
            c.delete(url(&h, "/faults?tenant=beta.onmicrosoft.com")).send().await.unwrap().json().await.unwrap();
        assert_eq!(v["cleared"], 1);
        let v: Value = c.delete(url(&h, "/faults")).send().await.unwrap().json().await.unwrap();
        assert_eq!(v["cleared"], 1);
    }

    #[tokio::test]
    async fn bad_input_is_400_with_a_reason() {
        let (h, c) = start().await;
        let cases = [
            (json!({"tenant": "nowhere", "target": "exchange", "fault": "down"}), "unknown tenant \"nowhere\""),
            (json!({"tenant": ALPHA, "target": "mailbox", "fault": "down"}), "unknown target \"mailbox\""),
            (json!({"tenant": ALPHA, "target": "exchange", "fault": "boom"}), "unknown fault \"boom\""),
            (
                json!({"tenant": ALPHA, "target": "exchange", "fault": "down", "retry_after_seconds": 5}),
                "takes no retry_after_seconds",
            ),
            (json!({"tenant": ALPHA, "target": "exchange", "fault": "bad_secret"}), "token target only"),
            (json!({"tenant": ALPHA, "target": "exchange"}), "missing field `fault`"),
            (json!({"tenant": ALPHA, "target": "exchange", "fault": "down", "colour": 1}), "unknown field `colour`"),
        ];
        for (body, want) in cases {
            let r = c.post(url(&h, "/faults")).json(&body).send().await.unwrap();
            assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{body}");
            let v: Value = r.json().await.unwrap();
            assert!(v["error"].as_str().unwrap().contains(want), "{v} should mention {want}");
        }
        let r = c.post(url(&h, "/faults")).body("{not json").send().await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let r = c
            .post(url(&h, "/service-health"))
            .json(&json!({"tenant": ALPHA, "service": "Exchange Online", "status": "fine"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(c.get(url(&h, "/nothing")).send().await.unwrap().status(), StatusCode::NOT_FOUND);
        assert_eq!(c.put(url(&h, "/faults")).send().await.unwrap().status(), StatusCode::METHOD_NOT_ALLOWED);
        assert!(h.faults().is_empty());
    }

    #[tokio::test]
    async fn service_health_issues_and_request_log() {
        let (h, c) = start().await;
        let r = c
            .post(url(&h, "/service-health"))
            .json(&json!({"tenant": "alpha.example", "service": "SharePoint Online", "status": "serviceInterruption"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let w = h.world();
        let sp = w.tenant(ALPHA).unwrap().services.iter().find(|s| s.name == "SharePoint Online").unwrap();
        assert_eq!(sp.status, "serviceInterruption");
        let r = c
            .post(url(&h, "/issues"))
            .json(&json!({"tenant": ALPHA, "id": "SP000777", "service": "SharePoint Online", "classification": "advisory"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let r = c.post(url(&h, "/issues/SP000777/resolve?tenant=alpha.example")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let r = c.post(url(&h, "/issues/SP000000/resolve")).json(&json!({"tenant": ALPHA})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        let issue = h.world().tenant(ALPHA).unwrap().issues.iter().find(|i| i.id == "SP000777").cloned().unwrap();
        assert!(issue.is_resolved);
        app_token(&h, &c, ALPHA).await;
        let v: Value = c.get(url(&h, "/requests")).send().await.unwrap().json().await.unwrap();
        let reqs = v["requests"].as_array().unwrap();
        assert_eq!(reqs.len(), 1, "control requests are not logged: {v}");
        assert_eq!(reqs[0]["method"], "POST");
        assert_eq!(reqs[0]["path"], format!("/login/{ALPHA}/oauth2/v2.0/token"));
        assert_eq!(reqs[0]["tenant"], ALPHA);
        assert_eq!(reqs[0]["status"], 200);
    }
}

mod scenario {
    use super::*;

    /// The demo scenario under paused time: faults and health change at their times, and repeat.
    #[tokio::test(start_paused = true)]
    async fn demo_scenario_applies_steps_at_their_times() {
        let (h, c) = start_with(World::demo()).await;
        let task = h.run_scenario(Scenario::demo());
        let fabrikam = "22222222-2222-4222-8222-222222222222";
        let northwind = "33333333-3333-4333-8333-333333333333";
        let contoso = "11111111-1111-4111-8111-111111111111";
        let exchange_status = |h: &SimHandle| {
            h.world()
                .tenant(contoso)
                .unwrap()
                .services
                .iter()
                .find(|s| s.name == "Exchange Online")
                .unwrap()
                .status
                .clone()
        };
        tokio::time::sleep(Duration::from_secs(29)).await;
        assert!(h.faults().is_empty());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(h.faults(), vec![(fabrikam.to_string(), Target::Exchange, Fault::Down)]);
        tokio::time::sleep(Duration::from_secs(30)).await; // 61 s
        assert_eq!(h.faults().len(), 2);
        assert!(h.faults().contains(&(
            northwind.to_string(),
            Target::Sharepoint,
            Fault::Throttled { retry_after: Duration::from_secs(20) }
        )));
        assert_eq!(exchange_status(&h), "serviceDegradation");
        assert!(!h.world().tenant(contoso).unwrap().issues[0].is_resolved);
        tokio::time::sleep(Duration::from_secs(60)).await; // 121 s
        assert_eq!(h.faults(), vec![(fabrikam.to_string(), Target::Exchange, Fault::Down)]);
        tokio::time::sleep(Duration::from_secs(60)).await; // 181 s
        assert!(h.faults().is_empty());
        tokio::time::sleep(Duration::from_secs(60)).await; // 241 s
        assert_eq!(exchange_status(&h), "serviceOperational");
        assert!(h.world().tenant(contoso).unwrap().issues[0].is_resolved);
        tokio::time::sleep(Duration::from_secs(150)).await; // 391 s = 6m31s: the next period
        assert_eq!(h.faults(), vec![(fabrikam.to_string(), Target::Exchange, Fault::Down)]);
        // Tailspin's secret has expired in the demo world.
        let s = scope(&h);
        let form = [
            ("client_id", "7d3c1f0e-2b4a-4c6d-8e9f-0a1b2c3d4e5f"),
            ("client_secret", "tailspin-old-secret"),
            ("scope", &s),
            ("grant_type", "client_credentials"),
        ];
        let r = post_form(&c, &token_url(&h, "tailspin.onmicrosoft.com"), &form).await;
        ests_error(r, 401, "invalid_client", 7_000_222).await;
        task.abort();
    }

    /// The scenario fixture file loads and drives the test world.
    #[tokio::test(start_paused = true)]
    async fn scenario_file_runs_against_the_test_world() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sim/scenario.yml");
        let s = Scenario::from_yaml_file(Path::new(path)).unwrap();
        let (h, _c) = start().await;
        s.check_tenants(&h.world()).unwrap();
        let task = h.run_scenario(s);
        tokio::time::sleep(Duration::from_secs(61)).await;
        assert_eq!(h.faults().len(), 2);
        let w = h.world();
        assert!(w.tenant(ALPHA).unwrap().issues.iter().any(|i| i.id == "EX000900" && !i.is_resolved));
        h.shutdown().await;
        // The scenario ends with the simulator.
        tokio::time::timeout(Duration::from_secs(1), task).await.unwrap().unwrap();
    }
}

mod mail {
    use super::*;

    const SENDER: &str = "monitor@alpha.example";
    const RCPT: &str = "rcpt@alpha.example";

    fn users(h: &SimHandle, rest: &str) -> String {
        format!("{}/v1.0/users/{rest}", h.graph_endpoint())
    }

    fn filter_by_id(imid: &str) -> String {
        let quoted = format!("'{}'", imid.replace('\'', "''"));
        let enc: String =
            url::form_urlencoded::byte_serialize(format!("internetMessageId eq {quoted}").as_bytes()).collect();
        format!("$filter={enc}&$select=id,receivedDateTime,internetMessageId&$top=1")
    }

    async fn find(h: &SimHandle, c: &Client, t: &str, imid: &str) -> Vec<Value> {
        let r = c
            .get(format!("{}?{}", users(h, &format!("{RCPT}/messages")), filter_by_id(imid)))
            .bearer_auth(t)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let v: Value = r.json().await.unwrap();
        v["value"].as_array().unwrap().clone()
    }

    fn message(subject: &str) -> Value {
        json!({
            "subject": subject,
            "body": {"contentType": "Text", "content": "synthetic probe"},
            "toRecipients": [{"emailAddress": {"address": RCPT}}],
            "internetMessageHeaders": [{"name": "x-m365-probe-id", "value": "7c9e6679"}]
        })
    }

    /// Draft (201) + send (202), delivered after the tenant's 3 s delay, found by internetMessageId, deleted.
    #[tokio::test(start_paused = true)]
    async fn draft_send_deliver_find_delete() {
        let (h, c) = start().await;
        let t = app_token(&h, &c, ALPHA).await;
        let r = c
            .post(users(&h, &format!("{SENDER}/messages")))
            .bearer_auth(&t)
            .json(&message("probe 1"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::CREATED);
        let d: Value = r.json().await.unwrap();
        assert_eq!(d["isDraft"], true);
        let imid = d["internetMessageId"].as_str().unwrap().to_string();
        assert!(imid.starts_with('<') && imid.ends_with(".prod.outlook.com>"), "{imid}");
        let id = d["id"].as_str().unwrap();
        let r = c.post(users(&h, &format!("{SENDER}/messages/{id}/send"))).bearer_auth(&t).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert!(r.bytes().await.unwrap().is_empty());
        assert!(find(&h, &c, &t, &imid).await.is_empty());
        tokio::time::sleep(Duration::from_secs(3)).await;
        let found = find(&h, &c, &t, &imid).await;
        assert_eq!(found.len(), 1);
        assert_eq!(found[0]["internetMessageId"], imid.as_str());
        assert!(found[0]["receivedDateTime"].is_string());
        let inbox: Value =
            graph_get(&h, &c, &t, &format!("/users/{RCPT}/mailFolders/inbox")).await.json().await.unwrap();
        assert_eq!(inbox["totalItemCount"], 1);
        let mid = found[0]["id"].as_str().unwrap();
        let r = c.delete(users(&h, &format!("{RCPT}/messages/{mid}"))).bearer_auth(&t).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert!(find(&h, &c, &t, &imid).await.is_empty());
        let r = c.delete(users(&h, &format!("{RCPT}/messages/{mid}"))).bearer_auth(&t).send().await.unwrap();
        graph_error(r, 404, "ErrorItemNotFound").await;
        // The sender keeps a copy in Sent Items; sending the draft twice fails.
        let sent: Value = graph_get(&h, &c, &t, &format!("/users/{SENDER}/mailFolders/sentitems/messages"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(sent["value"][0]["internetMessageId"], imid.as_str());
        let r = c.post(users(&h, &format!("{SENDER}/messages/{id}/send"))).bearer_auth(&t).send().await.unwrap();
        graph_error(r, 404, "ErrorItemNotFound").await;
    }

    #[tokio::test(start_paused = true)]
    async fn send_mail_json_and_mime_and_drop() {
        let (h, c) = start().await;
        let t = app_token(&h, &c, ALPHA).await;
        let url = users(&h, &format!("{SENDER}/sendMail"));
        let r = c
            .post(&url)
            .bearer_auth(&t)
            .json(&json!({"message": message("probe json"), "saveToSentItems": false}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let mime =
            format!("From: {SENDER}\r\nTo: Probe <{RCPT}>\r\nSubject: probe mime\r\nX-Probe: 1\r\n\r\nhello\r\n");
        let r = c
            .post(&url)
            .bearer_auth(&t)
            .header("content-type", "text/plain")
            .body(STANDARD.encode(mime))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        let r = c
            .post(&url)
            .bearer_auth(&t)
            .header("content-type", "text/plain")
            .body("not base64!!")
            .send()
            .await
            .unwrap();
        graph_error(r, 400, "ErrorMimeContentInvalidBase64String").await;
        let mut bad = message("x");
        bad["internetMessageHeaders"] = json!([{"name": "probe-id", "value": "1"}]);
        let r = c.post(&url).bearer_auth(&t).json(&json!({"message": bad})).send().await.unwrap();
        graph_error(r, 400, "InvalidInternetMessageHeader").await;
        let r = c.post(&url).bearer_auth(&t).json(&json!({"message": {"subject": "nobody"}})).send().await.unwrap();
        graph_error(r, 400, "ErrorInvalidRecipients").await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let v: Value = graph_get(&h, &c, &t, &format!("/users/{RCPT}/messages?$filter=subject eq 'probe mime'"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["value"].as_array().unwrap().len(), 1);
        let v: Value = graph_get(&h, &c, &t, &format!("/users/{SENDER}/mailFolders/sentitems/messages"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(v["value"].as_array().unwrap().len(), 1, "saveToSentItems false keeps no copy of the JSON send");
        h.set_mail_delivery(ALPHA, Duration::from_secs(1), true);
        let r = c.post(&url).bearer_auth(&t).json(&json!({"message": message("dropped")})).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        tokio::time::sleep(Duration::from_secs(60)).await;
        let v: Value = graph_get(&h, &c, &t, &format!("/users/{RCPT}/messages?$filter=subject eq 'dropped'"))
            .await
            .json()
            .await
            .unwrap();
        assert!(v["value"].as_array().unwrap().is_empty());
    }

    #[tokio::test]
    async fn inefficient_filter_is_rejected() {
        let (h, c) = start().await;
        let t = app_token(&h, &c, ALPHA).await;
        let r = graph_get(
            &h,
            &c,
            &t,
            &format!("/users/{RCPT}/messages?$filter=subject eq 'x'&$orderby=receivedDateTime desc"),
        )
        .await;
        graph_error(r, 400, "InefficientFilter").await;
        let q = "$filter=receivedDateTime ge 2025-01-10T09:00:00Z and subject eq 'x'&$orderby=receivedDateTime desc";
        assert_eq!(graph_get(&h, &c, &t, &format!("/users/{RCPT}/messages?{q}")).await.status(), StatusCode::OK);
    }

    /// Outlook allows 4 concurrent requests per (app, mailbox); the 5th gets 429.
    #[tokio::test(start_paused = true)]
    async fn fifth_concurrent_request_to_a_mailbox_is_throttled() {
        let (h, c) = start().await;
        let t = app_token(&h, &c, ALPHA).await;
        h.set_fault(ALPHA, Target::Exchange, Fault::Slow { delay: Duration::from_secs(10) });
        let path = format!("/users/{SENDER}/mailFolders/inbox");
        let calls = (0..5).map(|_| {
            let (h, c, t, path) = (h.clone(), c.clone(), t.clone(), path.clone());
            async move { graph_get(&h, &c, &t, &path).await }
        });
        let results = futures_join_all(calls).await;
        let mut statuses: Vec<u16> = results.iter().map(|r| r.status().as_u16()).collect();
        statuses.sort();
        assert_eq!(statuses, [200, 200, 200, 200, 429]);
        let throttled = results.into_iter().find(|r| r.status() == StatusCode::TOO_MANY_REQUESTS).unwrap();
        assert!(throttled.headers().contains_key("retry-after"));
        graph_error(throttled, 429, "ApplicationThrottled").await;
        // Other mailboxes are not affected, and slots are released.
        assert_eq!(graph_get(&h, &c, &t, &path).await.status(), StatusCode::OK);
    }

    /// Runs futures concurrently (a tiny join_all without the futures crate).
    async fn futures_join_all<F: std::future::Future<Output = reqwest::Response> + Send + 'static>(
        fs: impl Iterator<Item = F>,
    ) -> Vec<reqwest::Response> {
        let handles: Vec<_> = fs.map(tokio::spawn).collect();
        let mut out = vec![];
        for h in handles {
            out.push(h.await.unwrap());
        }
        out
    }
}

mod lifecycle {
    use super::*;

    #[tokio::test]
    async fn demo_world_signs_in_and_shutdown_stops_serving() {
        let (h, c) = start_with(World::demo()).await;
        assert_eq!(h.authority_host(), format!("http://127.0.0.1:{}/login", h.addr().port()));
        assert_eq!(h.graph_endpoint(), format!("http://127.0.0.1:{}/graph", h.addr().port()));
        let r = secret_token_resp(
            &h,
            &c,
            "contoso.onmicrosoft.com",
            "0e5b0a52-8f1a-4d5e-9d3c-6b7f3c2a9e01",
            "demo-secret-not-for-production",
        )
        .await;
        let v: Value = r.json().await.unwrap();
        let t = v["access_token"].as_str().unwrap();
        assert_eq!(graph_get(&h, &c, t, "/users/monitor@contoso.com/mailFolders/inbox").await.status(), StatusCode::OK);
        assert_eq!(
            graph_get(&h, &c, t, "/sites/contoso.sharepoint.com:/sites/monitoring").await.status(),
            StatusCode::OK
        );
        assert_eq!(graph_get(&h, &c, t, "/teams/aaaaaaaa-0000-4000-8000-000000000001").await.status(), StatusCode::OK);
        assert_eq!(graph_get(&h, &c, t, "/users/monitor@contoso.com/drive").await.status(), StatusCode::OK);
        let addr = h.addr();
        h.shutdown().await;
        let fresh = Client::new();
        assert!(fresh.get(format!("http://{addr}/_sim")).send().await.is_err());
    }
}
