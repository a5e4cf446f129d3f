//! Finding the real Prometheus tools. A missing tool fails the test with the
//! install command; it is never skipped.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The path of `name`, or a panic naming the Debian package that provides it.
pub fn require(name: &str) -> PathBuf {
    let package = match name {
        "prometheus" | "promtool" => "prometheus",
        "prometheus-alertmanager" | "amtool" => "prometheus-alertmanager",
        other => other,
    };
    for dir in std::env::var("PATH").unwrap_or_default().split(':') {
        let p = PathBuf::from(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("{name} is not installed; install it with: apt-get install -y {package} (scripts/test does this)");
}

/// Runs `promtool check metrics` on `text`; returns (success, combined output).
pub fn promtool_check_metrics(text: &str) -> (bool, String) {
    let mut child = Command::new(require("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool starts");
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("write to promtool");
    let out = child.wait_with_output().expect("promtool finishes");
    let mut s = String::from_utf8_lossy(&out.stdout).into_owned();
    s.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success() && s.trim().is_empty(), s)
}
