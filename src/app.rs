//! The running exporter: config in force, store, runner and scheduler, and reload.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::Duration;

use crate::config::{self, Config, ConfigErrors};
use crate::discovery::{self, Discoverer, RefreshError};
use crate::metrics::BuildInfo;
use crate::runner::Runner;
use crate::scheduler::Scheduler;
use crate::state::Store;

/// Where the config comes from, for reloads.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    /// A file, read again on reload.
    File(PathBuf),
    /// Built-in text (the demo); reload re-validates the same text.
    Text {
        /// Name used in errors.
        origin: String,
        /// The YAML.
        text: String,
    },
}

impl ConfigSource {
    /// Reads and validates the config.
    pub fn load(&self) -> Result<Config, ConfigErrors> {
        match self {
            ConfigSource::File(p) => config::load_file(p),
            ConfigSource::Text { origin, text } => config::parse_str(text, origin, std::path::Path::new(".")),
        }
    }
}

/// The exporter's shared state.
pub struct App {
    source: ConfigSource,
    runner: Runner,
    scheduler: Scheduler,
    reload_lock: tokio::sync::Mutex<()>,
    ready: AtomicBool,
    /// Build metadata for `/metrics` and the landing page.
    pub build: BuildInfo,
    /// The config as loaded; the runner's adds discovered subscriptions.
    file_config: RwLock<Arc<Config>>,
    discovery: Discoverer,
    me: Weak<App>,
}

/// The HTTP client for Entra ID and Graph: rustls, no redirects (a redirect
/// from either would be unexpected, and following one could leak a token).
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(10))
        .pool_idle_timeout(Duration::from_secs(90))
        .user_agent(concat!("m365mon/", env!("CARGO_PKG_VERSION")))
        .build()
        .unwrap_or_else(|_| reqwest::Client::new())
}

impl App {
    /// Starts probing `config` at once, with the token store under the
    /// default `--storage.path`. Discovery entries start their first refresh at once.
    pub fn start(source: ConfigSource, config: Config, http: reqwest::Client) -> Arc<App> {
        Self::start_with_storage(source, config, http, std::path::Path::new(crate::auth::DEFAULT_STORAGE_PATH))
    }

    /// Starts probing `config` at once; delegated sign-ins live under `storage_path`.
    pub fn start_with_storage(
        source: ConfigSource,
        config: Config,
        http: reqwest::Client,
        storage_path: &std::path::Path,
    ) -> Arc<App> {
        let store = Arc::new(Store::new());
        store.record_reload(true);
        let config = Arc::new(config);
        let token_store = Arc::new(crate::auth::TokenStore::new(storage_path));
        let runner = Runner::with_token_store(http.clone(), config.clone(), store, token_store);
        let scheduler = Scheduler::new(runner.clone());
        let app = Arc::new_cyclic(|me| App {
            source,
            runner,
            scheduler,
            reload_lock: tokio::sync::Mutex::new(()),
            ready: AtomicBool::new(true),
            build: BuildInfo::current(),
            file_config: RwLock::new(config.clone()),
            discovery: Discoverer::new(http),
            me: me.clone(),
        });
        app.apply(&config);
        app.discovery.apply(&config, Arc::downgrade(&app));
        app
    }

    /// Puts `file` plus the discovered subscriptions in force: store,
    /// runner and scheduler, as a reload does. Callers serialise through
    /// `reload_lock` (or run before anyone else can).
    fn apply(&self, file: &Config) {
        // Customers discovered before keep their names (see discovery::assign_names).
        let in_file: std::collections::BTreeSet<&str> = file.subscriptions.iter().map(|s| s.name.as_str()).collect();
        let previous: std::collections::BTreeMap<String, String> = self
            .config()
            .subscriptions
            .iter()
            .filter(|s| !in_file.contains(s.name.as_str()))
            .map(|s| (s.tenant_id.to_ascii_lowercase(), s.name.clone()))
            .collect();
        let merged = discovery::merge(file, &self.discovery.found(file), &previous);
        self.store().sync_config(&merged.config);
        self.store().update(|s| {
            s.relationship_expiry = merged.relationship_expiry;
            s.discovery.retain(|name, _| merged.counts.contains_key(name));
            for (name, n) in merged.counts {
                s.discovery.entry(name).or_default().subscriptions = n;
            }
        });
        let config = Arc::new(merged.config);
        self.runner.set_config(config.clone());
        self.scheduler.apply(&config);
    }

    /// Reads discovery entry `name`'s customers now (the periodic task does
    /// the same). A changed list is put in force at once; a failure keeps
    /// the last good list. Returns whether the list changed.
    pub async fn refresh_discovery(&self, name: &str) -> Result<bool, RefreshError> {
        let file = self.file_config();
        let changed = self.discovery.refresh(name, &file, self.store()).await?;
        if changed {
            let _one_at_a_time = self.reload_lock.lock().await;
            self.apply(&self.file_config());
        }
        Ok(changed)
    }

    /// The config as loaded from the source, without discovered subscriptions.
    pub fn file_config(&self) -> Arc<Config> {
        self.file_config.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The store `/metrics` reads.
    pub fn store(&self) -> &Arc<Store> {
        self.runner.store()
    }

    /// The runner, for `/probe`.
    pub fn runner(&self) -> &Runner {
        &self.runner
    }

    /// The config in force: the file's subscriptions plus discovered ones.
    pub fn config(&self) -> Arc<Config> {
        self.runner.config()
    }

    /// Whether the exporter is ready to serve (config loaded).
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The number of running probe tasks.
    pub fn task_count(&self) -> usize {
        self.scheduler.task_count()
    }

    /// Re-reads the config. A bad file is refused and the running config
    /// stays; unchanged subscriptions keep their state and counters.
    pub async fn reload(&self) -> Result<(), ConfigErrors> {
        let _one_at_a_time = self.reload_lock.lock().await;
        match self.source.load() {
            Ok(config) => {
                *self.file_config.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(config.clone());
                self.discovery.apply(&config, self.me.clone());
                self.apply(&config);
                self.store().record_reload(true);
                tracing::info!(subscriptions = self.config().subscriptions.len(), "configuration reloaded");
                Ok(())
            }
            Err(e) => {
                self.store().record_reload(false);
                tracing::error!(errors = %e, "configuration reload failed; keeping the running configuration");
                Err(e)
            }
        }
    }

    /// Stops all probe and discovery tasks.
    pub fn shutdown(&self) {
        self.discovery.shutdown();
        self.scheduler.shutdown();
    }
}
