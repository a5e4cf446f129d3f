//! Processes that are killed on drop, a temporary directory that is removed
//! on drop, free loopback ports and bounded polling.

use std::fs::File;
use std::future::Future;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How often a wait re-checks its condition.
pub const POLL: Duration = Duration::from_millis(250);

/// A directory under the system temp dir, removed (with its content) on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `m365mon-<what>-<pid>-<uuid>`.
    pub fn new(what: &str) -> TempDir {
        let p = std::env::temp_dir().join(format!("m365mon-{what}-{}-{}", std::process::id(), uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("cannot create {}: {e}", p.display()));
        TempDir(p)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A child process with its output in a log file; killed and reaped on drop
/// (also when the test panics or hits its deadline).
pub struct Proc {
    /// Short name for messages.
    pub name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// Starts `program args` with stdout and stderr appended to `log`.
    pub fn spawn(name: &str, program: &Path, args: &[String], cwd: &Path, log: PathBuf) -> Proc {
        let out = File::create(&log).unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err = out.try_clone().expect("clone log handle");
        let child = Command::new(program)
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.display()));
        Proc { name: name.to_string(), child, log }
    }

    /// Whether the process has exited (with its status).
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The last `lines` lines of its log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- {} log (last 30 lines) ----\n{}", self.name, self.log_tail(30));
        }
    }
}

/// A loopback port that was free a moment ago. The caller retries on the
/// (rare) race with another process; see [`start_with_retry`].
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

/// Polls `check` every [`POLL`] until it returns `Ok`, or panics after `limit`
/// naming `what` and the last `Err` (the state seen).
pub async fn wait_for<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let start = Instant::now();
    let mut last = String::from("(never checked)");
    while start.elapsed() < limit {
        match check().await {
            Ok(v) => return v,
            Err(e) => last = e,
        }
        tokio::time::sleep(POLL).await;
    }
    panic!("timed out after {limit:?} waiting for {what}; last state: {last}");
}

/// Polls `/-/ready`-style `url` until it answers 2xx; `false` if `proc` exited or `limit` passed.
pub async fn wait_ready(http: &reqwest::Client, url: &str, proc: &mut Proc, limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        if proc.exited().is_some() {
            return false;
        }
        if let Ok(r) = http.get(url).timeout(Duration::from_secs(2)).send().await
            && r.status().is_success()
        {
            return true;
        }
        tokio::time::sleep(POLL).await;
    }
    false
}

/// Starts a server on a free port (`start(port)`), retrying with another
/// port when it exits before becoming ready (port taken in between).
pub async fn start_with_retry(
    http: &reqwest::Client,
    name: &str,
    ready_path: &str,
    mut start: impl FnMut(u16) -> Proc,
) -> (Proc, u16) {
    let mut last = String::new();
    for _ in 0..3 {
        let port = free_port();
        let mut p = start(port);
        if wait_ready(http, &format!("http://127.0.0.1:{port}{ready_path}"), &mut p, Duration::from_secs(30)).await {
            return (p, port);
        }
        last = p.log_tail(30);
    }
    panic!("{name} did not become ready on a free port (3 tries); last log:\n{last}");
}
