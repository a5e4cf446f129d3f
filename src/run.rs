//! What each command does.

use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::app::{self, App, ConfigSource};
use crate::auth::TokenStore;
use crate::cli::{Cli, Command};
use crate::{config, login};

/// Runs the command `cli` asks for.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        None => serve(cli).await,
        Some(Command::CheckConfig) => check_config(&cli),
        Some(Command::Login { ref subscription }) => login(&cli, subscription).await,
        Some(Command::Logout { ref subscription }) => logout(&cli, subscription),
        Some(Command::ConsentUrl { ref subscription, ref credential, ref tenant }) => {
            let pair = credential.as_deref().zip(tenant.as_deref());
            consent_url(&cli, subscription.as_deref(), pair)
        }
        Some(Command::Simulate { listen, tenants, scenario }) => {
            crate::demo::simulate(listen, tenants.as_deref(), scenario.as_deref()).await
        }
        Some(Command::Demo { listen_address, sim_listen_address }) => {
            if cli.config_file_given {
                eprintln!(
                    "m365mon: demo runs its built-in configuration against the simulator; --config.file does not apply \
                     (to probe your tenants, run m365mon --config.file {})",
                    cli.config_file.display()
                );
                return ExitCode::from(2);
            }
            crate::demo::demo(listen_address, sim_listen_address, &cli.storage_path).await
        }
    }
}

fn check_config(cli: &Cli) -> ExitCode {
    match config::load_file(&cli.config_file) {
        Ok(c) => {
            println!("{}", c.summary());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            eprintln!("{}: configuration is invalid", cli.config_file.display());
            ExitCode::FAILURE
        }
    }
}

fn load_or_report(cli: &Cli) -> Option<config::Config> {
    match config::load_file(&cli.config_file) {
        Ok(c) => Some(c),
        Err(e) => {
            eprintln!("{e}");
            eprintln!("m365mon: {} is invalid (see above)", cli.config_file.display());
            None
        }
    }
}

async fn login(cli: &Cli, subscription: &str) -> ExitCode {
    use std::io::Write;
    let Some(config) = load_or_report(cli) else { return ExitCode::FAILURE };
    let (sub, cred) = match login::delegated_subscription(&config, &cli.config_file, subscription) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("m365mon login: {e}");
            return ExitCode::FAILURE;
        }
    };
    let store = TokenStore::new(&cli.storage_path);
    let mut sleep = login::tokio_sleep();
    let mut prompt = |code: &crate::auth::DeviceCode| {
        println!("{}", code.message);
        let _ = std::io::stdout().flush();
        eprintln!(
            "Waiting for the sign-in to tenant {} (the code is valid for {} minutes; Ctrl-C to stop)...",
            sub.tenant_id,
            code.expires_in.as_secs().div_ceil(60)
        );
    };
    let mut progress = |line: &str| eprintln!("{line}");
    let http = app::http_client();
    match login::login(&http, &config, sub, cred, &store, &mut sleep, &mut prompt, &mut progress).await {
        Ok((token, path)) => {
            println!(
                "Signed in{} for subscription {}; the refresh token is stored in {}.",
                token.account.map(|a| format!(" as {a}")).unwrap_or_default(),
                sub.name,
                path.display()
            );
            println!(
                "A running exporter with the same --storage.path uses it from its next probe run; no restart needed."
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("m365mon login: {e}");
            ExitCode::FAILURE
        }
    }
}

fn logout(cli: &Cli, subscription: &str) -> ExitCode {
    let Some(config) = load_or_report(cli) else { return ExitCode::FAILURE };
    let result = login::delegated_subscription(&config, &cli.config_file, subscription)
        .and_then(|(sub, cred)| Ok(TokenStore::new(&cli.storage_path).remove(&cred.name, &sub.tenant_id)?));
    match result {
        Ok(Some(path)) => {
            println!("Signed out subscription {subscription}: removed {}.", path.display());
            ExitCode::SUCCESS
        }
        Ok(None) => {
            println!("Subscription {subscription} has no stored sign-in; nothing to do.");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("m365mon logout: {e}");
            ExitCode::FAILURE
        }
    }
}

fn consent_url(cli: &Cli, subscription: Option<&str>, pair: Option<(&str, &str)>) -> ExitCode {
    let Some(config) = load_or_report(cli) else { return ExitCode::FAILURE };
    match login::consent_report(&config, &cli.config_file, subscription, pair) {
        Ok(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("m365mon consent-url: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Binds `addr`, with an error naming it.
pub async fn bind(addr: std::net::SocketAddr, what: &str) -> Result<TcpListener, String> {
    TcpListener::bind(addr).await.map_err(|e| format!("cannot listen on {addr} ({what}): {e}"))
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
    tracing::info!("shutting down");
}

/// Reloads `app` on each SIGHUP.
pub fn reload_on_sighup(app: Arc<App>) {
    #[cfg(unix)]
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            tracing::warn!("cannot install the SIGHUP handler; use POST /-/reload");
            return;
        };
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP received, reloading configuration");
            let _ = app.reload().await;
        }
    });
}

/// Serves an already started `app` until a shutdown signal.
pub async fn serve_app(
    app: Arc<App>,
    listener: TcpListener,
    web_config: Option<std::path::PathBuf>,
) -> Result<(), String> {
    let handler = crate::http::handler(app.clone());
    let result = crate::web::serve(listener, web_config, handler, shutdown_signal()).await;
    app.shutdown();
    result.map_err(|e| e.to_string())
}

async fn serve(cli: Cli) -> ExitCode {
    let source = ConfigSource::File(cli.config_file.clone());
    let config = match source.load() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            eprintln!("m365mon: not starting: {} is invalid (see above)", cli.config_file.display());
            return ExitCode::FAILURE;
        }
    };
    let listener = match bind(cli.listen_address, "--web.listen-address").await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("m365mon: {e}");
            return ExitCode::FAILURE;
        }
    };
    let subs = config.subscriptions.len();
    let app = App::start_with_storage(source, config, app::http_client(), &cli.storage_path);
    reload_on_sighup(app.clone());
    // The bound address, so that `--web.listen-address=HOST:0` shows the port it got.
    let address = listener.local_addr().map_or_else(|_| cli.listen_address.to_string(), |a| a.to_string());
    tracing::info!(address = %address, subscriptions = subs, storage = %cli.storage_path.display(), version = app.build.version, "m365mon listening");
    match serve_app(app, listener, cli.web_config_file).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("m365mon: {e}");
            ExitCode::FAILURE
        }
    }
}
