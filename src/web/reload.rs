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
        LiveConfig {
            path,
            state: Mutex::new(State {
                good: Arc::new(initial),
                logged_error: None,
            }),
        }
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
                Refresh {
                    config,
                    new_error: None,
                    recovered: state.logged_error.take().is_some(),
                }
            }
            Err(e) => {
                let msg = e.to_string();
                let new_error = (state.logged_error.as_ref() != Some(&msg)).then(|| msg.clone());
                state.logged_error = Some(msg);
                Refresh {
                    config: state.good.clone(),
                    new_error,
                    recovered: false,
                }
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
