//! The receiving end of Alertmanager's notifications: a webhook sink (HTTP,
//! records every JSON payload) and an SMTP sink (records envelope recipients
//! and the message). Both listen on 127.0.0.1:0 and stop with the runtime.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// One webhook notification (Alertmanager payload version 4).
#[derive(Debug, Clone)]
pub struct Notification {
    /// The URL path, which names the receiver (`/m365mon/page`, ...).
    pub path: String,
    /// The JSON payload.
    pub body: Value,
}

impl Notification {
    /// `groupLabels.admin`, if any.
    pub fn admin(&self) -> Option<&str> {
        self.body["groupLabels"]["admin"].as_str()
    }

    /// `status` of the whole group: `firing` or `resolved`.
    pub fn status(&self) -> &str {
        self.body["status"].as_str().unwrap_or("")
    }

    /// The alerts in the payload.
    pub fn alerts(&self) -> Vec<Alert> {
        self.body["alerts"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|x| Alert {
                        status: x["status"].as_str().unwrap_or("").to_string(),
                        labels: x["labels"]
                            .as_object()
                            .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A one-line description for assertion messages.
    pub fn brief(&self) -> String {
        let alerts: Vec<String> = self.alerts().iter().map(Alert::brief).collect();
        format!("{} admin={:?} {} [{}]", self.path, self.admin(), self.status(), alerts.join(", "))
    }
}

/// One alert of a notification.
#[derive(Debug, Clone)]
pub struct Alert {
    /// `firing` or `resolved`.
    pub status: String,
    /// Its labels.
    pub labels: std::collections::BTreeMap<String, String>,
}

impl Alert {
    /// A label, or "".
    pub fn label(&self, name: &str) -> &str {
        self.labels.get(name).map(String::as_str).unwrap_or("")
    }

    /// `alertname{subscription,probe,admin}=status`.
    pub fn brief(&self) -> String {
        format!(
            "{}{{sub={},probe={},admin={}}}={}",
            self.label("alertname"),
            self.label("subscription"),
            self.label("probe"),
            self.label("admin"),
            self.status
        )
    }
}

/// Records webhook POSTs.
#[derive(Clone)]
pub struct WebhookSink {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    seen: Arc<Mutex<Vec<Notification>>>,
}

impl WebhookSink {
    /// Starts the sink.
    pub async fn start() -> WebhookSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind webhook sink");
        let addr = listener.local_addr().expect("sink addr");
        let seen: Arc<Mutex<Vec<Notification>>> = Arc::default();
        let store = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let svc = hyper::service::service_fn(move |req: Request<Incoming>| {
                        let store = store.clone();
                        async move { Ok::<_, Infallible>(record(req, store).await) }
                    });
                    let _ =
                        hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), svc).await;
                });
            }
        });
        WebhookSink { base: format!("http://{addr}"), seen }
    }

    /// Every notification so far, oldest first.
    pub fn all(&self) -> Vec<Notification> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many notifications arrived so far (a mark for [`WebhookSink::since`]).
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The notifications after `mark`.
    pub fn since(&self, mark: usize) -> Vec<Notification> {
        self.all().into_iter().skip(mark).collect()
    }
}

async fn record(req: Request<Incoming>, store: Arc<Mutex<Vec<Notification>>>) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(_) => return Response::builder().status(400).body(Full::new(Bytes::new())).expect("response"),
    };
    let body: Value = serde_json::from_slice(&body)
        .unwrap_or_else(|e| Value::String(format!("not JSON ({e}): {}", String::from_utf8_lossy(&body))));
    store.lock().unwrap_or_else(|p| p.into_inner()).push(Notification { path, body });
    Response::new(Full::new(Bytes::from_static(b"ok")))
}

/// One e-mail as received.
#[derive(Debug, Clone)]
pub struct Mail {
    /// Envelope recipients (`RCPT TO`), lowercased.
    pub rcpt: Vec<String>,
    /// The `Subject:` header.
    pub subject: String,
}

/// A minimal SMTP server (EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT; no TLS,
/// no AUTH) that accepts every message.
#[derive(Clone)]
pub struct SmtpSink {
    /// The listening address.
    pub addr: SocketAddr,
    seen: Arc<Mutex<Vec<Mail>>>,
}

impl SmtpSink {
    /// Starts the sink.
    pub async fn start() -> SmtpSink {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind smtp sink");
        let addr = listener.local_addr().expect("smtp addr");
        let seen: Arc<Mutex<Vec<Mail>>> = Arc::default();
        let store = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let store = store.clone();
                tokio::spawn(async move {
                    let _ = smtp_session(stream, store).await;
                });
            }
        });
        SmtpSink { addr, seen }
    }

    /// Every mail so far, oldest first.
    pub fn all(&self) -> Vec<Mail> {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// How many mails arrived so far.
    pub fn len(&self) -> usize {
        self.seen.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

async fn smtp_session(stream: tokio::net::TcpStream, store: Arc<Mutex<Vec<Mail>>>) -> std::io::Result<()> {
    let (r, mut w) = stream.into_split();
    let mut lines = BufReader::new(r);
    w.write_all(b"220 sink ESMTP\r\n").await?;
    let mut rcpt = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end().to_string();
        let upper = cmd.to_ascii_uppercase();
        if upper.starts_with("EHLO") {
            w.write_all(b"250-sink\r\n250 8BITMIME\r\n").await?;
        } else if upper.starts_with("HELO") || upper.starts_with("MAIL FROM") || upper.starts_with("NOOP") {
            w.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("RSET") {
            rcpt.clear();
            w.write_all(b"250 OK\r\n").await?;
        } else if upper.starts_with("RCPT TO:") {
            let addr = cmd[8..].trim().trim_start_matches('<').trim_end_matches('>').to_ascii_lowercase();
            rcpt.push(addr);
            w.write_all(b"250 OK\r\n").await?;
        } else if upper == "DATA" {
            w.write_all(b"354 end with .\r\n").await?;
            let mut subject = String::new();
            let mut in_headers = true;
            loop {
                line.clear();
                if lines.read_line(&mut line).await? == 0 {
                    return Ok(());
                }
                let l = line.trim_end_matches(['\r', '\n']);
                if l == "." {
                    break;
                }
                if in_headers {
                    if l.is_empty() {
                        in_headers = false;
                    } else if let Some(s) = l.strip_prefix("Subject:") {
                        subject = s.trim().to_string();
                    }
                }
            }
            store.lock().unwrap_or_else(|p| p.into_inner()).push(Mail { rcpt: std::mem::take(&mut rcpt), subject });
            w.write_all(b"250 OK queued\r\n").await?;
        } else if upper.starts_with("QUIT") {
            w.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            w.write_all(b"502 not implemented\r\n").await?;
        }
    }
}
