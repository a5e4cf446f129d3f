//! Re-reading the web config for each new connection, so certificates and
//! users can change without a restart; a broken file keeps the last good one.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::config::WebConfig;

/// The web config file and the last version of it that was valid.
pub(crate) struct LiveConfig {
    path: PathBuf,
    state: Mutex<State>,
}

struct State {
    good: Arc<WebConfig>,
    /// The error last logged, so each distinct failure is logged once.
    logged_error: Option<String>,
}

/// What one refresh found.
pub(crate) struct Refresh {
    /// The config to use: the file's, or the last good one if it is invalid.
    pub(crate) config: Arc<WebConfig>,
    /// An error that differs from the last one reported (to be logged).
    pub(crate) new_error: Option<String>,
    /// The file is valid again after an error.
    pub(crate) recovered: bool,
}

impl LiveConfig {
    pub(crate) fn new(path: PathBuf, initial: WebConfig) -> Self {
        LiveConfig { path, state: Mutex::new(State { good: Arc::new(initial), logged_error: None }) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // State is replaced field by field; a panic cannot leave it half-made.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-reads the file (blocking I/O) and reports what changed.
    pub(crate) fn refresh(&self) -> Refresh {
        let previous = self.lock().good.clone();
        let loaded = WebConfig::load_reusing(&self.path, Some(&previous)).and_then(|c| {
            if c.tls_enabled() == previous.tls_enabled() {
                Ok(c)
            } else {
                Err(super::config::WebConfigError {
                    path: self.path.clone(),
                    line: None,
                    column: None,
                    key: "tls_server_config".into(),
                    message: "switching between TLS and plain HTTP needs a restart".into(),
                })
            }
        });
        let mut state = self.lock();
        match loaded {
            Ok(config) => {
                state.good = config.clone();
                Refresh { config, new_error: None, recovered: state.logged_error.take().is_some() }
            }
            Err(e) => {
                let msg = e.to_string();
                let new_error = (state.logged_error.as_ref() != Some(&msg)).then(|| msg.clone());
                state.logged_error = Some(msg);
                Refresh { config: state.good.clone(), new_error, recovered: false }
            }
        }
    }

    /// The config for a new connection; logs changes in validity.
    pub(crate) async fn current(self: &Arc<Self>) -> Arc<WebConfig> {
        let me = self.clone();
        let refresh = match tokio::task::spawn_blocking(move || me.refresh()).await {
            Ok(r) => r,
            Err(_) => return self.lock().good.clone(),
        };
        if let Some(e) = &refresh.new_error {
            tracing::error!(error = %e, "web config is invalid; still using the last valid one");
        }
        if refresh.recovered {
            tracing::info!(path = %self.path.display(), "web config is valid again");
        }
        refresh.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const USERS: &str = "basic_auth_users:\n  a: $2y$04$EVXrWcLVLulBzhQxqUlEVeyLr4VRULj1TpQ3TFFq.0MECOwYW37vO\n";

    fn temp_file(text: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("m365mon-reload-{}.yml", uuid::Uuid::new_v4()));
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn each_distinct_error_is_reported_once_and_the_last_good_config_stays() {
        let path = temp_file(USERS);
        let live = LiveConfig::new(path.clone(), WebConfig::load(&path).expect("valid"));

        let same = live.refresh();
        assert!(same.new_error.is_none() && !same.recovered);
        assert!(Arc::ptr_eq(&same.config, &live.refresh().config), "unchanged file is reused");

        std::fs::write(&path, "basic_auth_users: 3\n").expect("write");
        let first = live.refresh();
        assert!(first.new_error.as_deref().is_some_and(|e| e.contains(":1:19:")), "{:?}", first.new_error);
        assert_eq!(first.config.basic_auth_user_names().collect::<Vec<_>>(), ["a"]);
        assert!(live.refresh().new_error.is_none(), "same error is not reported twice");

        std::fs::write(&path, "bogus: 1\n").expect("write");
        assert!(live.refresh().new_error.is_some(), "a different error is reported");

        std::fs::write(&path, "").expect("write");
        let back = live.refresh();
        assert!(back.recovered && back.new_error.is_none());
        assert!(!back.config.basic_auth_enabled());
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn switching_to_tls_needs_a_restart() {
        let path = temp_file(USERS);
        let live = LiveConfig::new(path.clone(), WebConfig::load(&path).expect("valid"));
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tls");
        std::fs::write(
            &path,
            format!("tls_server_config:\n  cert_file: {dir}/server.pem\n  key_file: {dir}/server.key\n"),
        )
        .expect("write");
        let r = live.refresh();
        assert_eq!(
            r.new_error,
            Some(format!(
                "{}: tls_server_config: switching between TLS and plain HTTP needs a restart",
                path.display()
            ))
        );
        assert!(!r.config.tls_enabled());
        let _ = std::fs::remove_file(&path);
    }
}
