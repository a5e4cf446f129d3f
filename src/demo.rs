//! `m365mon demo` and `m365mon simulate`.
//!
//! The demo is the simulator ([`crate::sim`]) with its built-in world of four
//! tenants and its scripted scenario, plus the exporter with the built-in
//! config of [`demo_config`], both on loopback. The exporter reaches the
//! simulator only through `authority_host` and `graph_endpoint`, exactly as
//! it would reach Microsoft.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use crate::app::{self, App, ConfigSource};
use crate::run::{bind, reload_on_sighup, serve_app, shutdown_signal};
use crate::sim::{self, Scenario, SimHandle, World};

/// Name under which the built-in config appears in errors and on `/probe?debug=true`.
pub const DEMO_CONFIG_ORIGIN: &str = "<built-in demo config>";

/// The demo's exporter config for a simulator whose sign-in host and Graph
/// root are `authority_host` and `graph_endpoint`.
///
/// Four subscriptions share the admin `noc@reseller.example`, who manages
/// them all; each also has its own admin. `tailspin` signs in with an
/// expired secret, so it fails from the start with `credential_expired`.
/// Contoso also sends a mail round trip to Fabrikam's mailbox every minute.
pub fn demo_config(authority_host: &str, graph_endpoint: &str) -> String {
    let mut yaml = format!(
        "# Built-in config of `m365mon demo`: the simulator's four tenants.\n\
         global:\n  \
           authority_host: {authority_host}\n  \
           graph_endpoint: {graph_endpoint}\n  \
           probe_interval: 15s\n  \
           probe_timeout: 10s\n\
         credentials:\n  \
           demo-app:\n    \
             client_id: 0e5b0a52-8f1a-4d5e-9d3c-6b7f3c2a9e01\n    \
             client_secret: demo-secret-not-for-production\n  \
           tailspin-app:\n    \
             client_id: 7d3c1f0e-2b4a-4c6d-8e9f-0a1b2c3d4e5f\n    \
             client_secret: tailspin-old-secret\n\
         subscriptions:\n"
    );
    let tenants = [
        ("contoso", "alice@contoso.com", "demo-app", 1),
        ("fabrikam", "bob@fabrikam.com", "demo-app", 2),
        ("northwind", "carol@northwind.com", "demo-app", 3),
        ("tailspin", "dave@tailspin.com", "tailspin-app", 4),
    ];
    for (name, admin, credential, team) in tenants {
        yaml.push_str(&format!(
            "  - name: {name}\n    \
               tenant_id: {name}.onmicrosoft.com\n    \
               credential: {credential}\n    \
               admins: [{admin}, noc@reseller.example]\n    \
               probes:\n      \
                 - type: auth\n      \
                 - type: organization\n      \
                 - type: exchange\n        mailbox: monitor@{name}.com\n      \
                 - type: sharepoint\n        site: https://{name}.sharepoint.com/sites/monitoring\n      \
                 - type: onedrive\n        user: monitor@{name}.com\n      \
                 - type: teams\n        team_id: aaaaaaaa-0000-4000-8000-00000000000{team}\n      \
                 - type: service_health\n      \
                 - type: message_center\n        interval: 1m\n"
        ));
        if name == "contoso" {
            // A cross-tenant mail round trip: Contoso sends, Fabrikam's mailbox is
            // read with Fabrikam's own sign-in, so Fabrikam's Exchange outage shows here too.
            yaml.push_str(
                "      - type: mail_roundtrip\n        \
                   from: monitor@contoso.com\n        \
                   to: monitor@fabrikam.com\n        \
                   to_subscription: fabrikam\n        \
                   interval: 1m\n        \
                   timeout: 30s\n",
            );
        }
    }
    yaml
}

/// A running demo: the simulator, its scenario and the exporter.
pub struct Demo {
    /// The simulator.
    pub sim: SimHandle,
    /// The exporter.
    pub app: Arc<App>,
    scenario: tokio::task::JoinHandle<()>,
}

impl Demo {
    /// Starts the simulator on `sim_listener` with the built-in world and
    /// scenario, and the exporter with [`demo_config`] (not yet serving HTTP).
    pub async fn start(sim_listener: tokio::net::TcpListener) -> Result<Demo, String> {
        Self::start_with_storage(sim_listener, Path::new(crate::auth::DEFAULT_STORAGE_PATH)).await
    }

    /// Like [`Demo::start`], with `--storage.path`. The demo has no
    /// delegated credential, so nothing is written there.
    pub async fn start_with_storage(sim_listener: tokio::net::TcpListener, storage: &Path) -> Result<Demo, String> {
        let sim = sim::start(sim_listener, World::demo()).await;
        let source = ConfigSource::Text {
            origin: DEMO_CONFIG_ORIGIN.into(),
            text: demo_config(&sim.authority_host(), &sim.graph_endpoint()),
        };
        let config = source.load().map_err(|e| format!("the built-in demo config is invalid (a bug): {e}"))?;
        let scenario = sim.run_scenario(Scenario::demo());
        let app = App::start_with_storage(source, config, app::http_client(), storage);
        Ok(Demo { sim, app, scenario })
    }

    /// Stops probing, the scenario and the simulator.
    pub async fn shutdown(self) {
        self.app.shutdown();
        self.scenario.abort();
        self.sim.shutdown().await;
    }
}

/// Runs the simulator alone until SIGINT/SIGTERM.
pub async fn simulate(listen: SocketAddr, tenants: Option<&Path>, scenario: Option<&Path>) -> ExitCode {
    let world = match tenants {
        Some(path) => match World::from_yaml_file(path) {
            Ok(w) => w,
            Err(e) => return fail(&e.to_string()),
        },
        None => World::demo(),
    };
    let scenario = match scenario {
        Some(path) => match Scenario::from_yaml_file(path) {
            Ok(s) => Some(s),
            Err(e) => return fail(&e.to_string()),
        },
        // The built-in scenario names the built-in tenants, so it only runs with them.
        None if tenants.is_none() => Some(Scenario::demo()),
        None => None,
    };
    if let Some(s) = &scenario
        && let Err(e) = s.check_tenants(&world)
    {
        return fail(&e.to_string());
    }
    let listener = match bind(listen, "--listen").await {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let sim = sim::start(listener, world).await;
    println!("m365mon simulator listening on http://{}", sim.addr());
    println!("  authority_host: {}", sim.authority_host());
    println!("  graph_endpoint: {}", sim.graph_endpoint());
    println!("  control API:    http://{}/_sim", sim.addr());
    let task = scenario.map(|s| {
        println!("  scenario:       running ({} steps)", s.steps.len());
        sim.run_scenario(s)
    });
    shutdown_signal().await;
    if let Some(t) = task {
        t.abort();
    }
    sim.shutdown().await;
    ExitCode::SUCCESS
}

/// Runs the simulator and the exporter together until SIGINT/SIGTERM.
pub async fn demo(listen: SocketAddr, sim_listen: SocketAddr, storage: &Path) -> ExitCode {
    // Bind the exporter first: a taken port is the likeliest mistake, and
    // it should be reported before anything starts.
    let listener = match bind(listen, "--web.listen-address").await {
        Ok(l) => l,
        Err(e) => return fail(&format!("{e}; pick another with --web.listen-address")),
    };
    let sim_listener = match bind(sim_listen, "--sim.listen-address").await {
        Ok(l) => l,
        Err(e) => return fail(&e),
    };
    let demo = match Demo::start_with_storage(sim_listener, storage).await {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let addr = listener.local_addr().map(|a| a.to_string()).unwrap_or_else(|_| listen.to_string());
    println!("m365mon demo: 4 simulated tenants, scripted incidents every 6 minutes");
    println!("  metrics:        http://{addr}/metrics");
    println!("  status page:    http://{addr}/");
    println!("  probe one:      http://{addr}/probe?subscription=contoso&debug=true");
    println!("  simulator:      http://{}/_sim (control API)", demo.sim.addr());
    println!("Expect: tailspin fails at once (expired secret); fabrikam's Exchange goes down at 0:30;");
    println!("northwind's SharePoint is throttled at 1:00; Contoso gets an Exchange incident at 1:00;");
    println!("Contoso mails Fabrikam every minute (mail_roundtrip, delivery takes 2 s).");
    println!("Press Ctrl-C to stop.");
    reload_on_sighup(demo.app.clone());
    let result = serve_app(demo.app.clone(), listener, None).await;
    demo.shutdown().await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(message: &str) -> ExitCode {
    eprintln!("m365mon: {message}");
    ExitCode::FAILURE
}
