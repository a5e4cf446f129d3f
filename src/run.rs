//! What each command does.

use std::process::ExitCode;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::app::{self, App, ConfigSource};
use crate::cli::{Cli, Command};
use crate::config;

/// Runs the command `cli` asks for.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        None => serve(cli).await,
        Some(Command::CheckConfig) => check_config(&cli),
        Some(Command::Simulate { listen, tenants, scenario }) => {
            crate::demo::simulate(listen, tenants.as_deref(), scenario.as_deref()).await
        }
        Some(Command::Demo { listen_address, sim_listen_address }) => {
            crate::demo::demo(listen_address, sim_listen_address).await
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
    let app = App::start(source, config, app::http_client());
    reload_on_sighup(app.clone());
    tracing::info!(address = %cli.listen_address, subscriptions = subs, version = app.build.version, "m365mon listening");
    match serve_app(app, listener, cli.web_config_file).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("m365mon: {e}");
            ExitCode::FAILURE
        }
    }
}
