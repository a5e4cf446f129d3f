//! Command-line flags (Prometheus-style dotted names) and subcommands.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::logging::{LogFormat, LogLevel};

/// The default listen address. Prometheus' exporter port range 9100-9999 is
/// fully allocated; 10365 was unclaimed as far as we could tell.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:10365";

/// m365mon: Prometheus exporter that probes many Microsoft 365 tenants.
#[derive(Debug, Parser)]
#[command(name = "m365mon", version, about, long_about = None)]
pub struct Cli {
    /// Configuration file.
    #[arg(long = "config.file", value_name = "FILE", default_value = "m365mon.yml", global = true)]
    pub config_file: PathBuf,
    /// Whether `--config.file` was given on the command line (set by [`Cli::parse_args`]).
    #[arg(skip)]
    pub config_file_given: bool,
    /// Address to listen on for /metrics, /probe and the landing page.
    /// `:PORT` listens on every interface, as in other Prometheus exporters.
    #[arg(long = "web.listen-address", value_name = "[HOST]:PORT", default_value = DEFAULT_LISTEN, value_parser = parse_listen_address)]
    pub listen_address: SocketAddr,
    /// Exporter-toolkit web config file enabling TLS and/or basic auth.
    #[arg(long = "web.config.file", value_name = "FILE")]
    pub web_config_file: Option<PathBuf>,
    /// Directory for state that must survive restarts: the token store of
    /// delegated sign-ins (`<DIR>/tokens`, created with mode 0700).
    #[arg(long = "storage.path", value_name = "DIR", default_value = crate::auth::DEFAULT_STORAGE_PATH, global = true)]
    pub storage_path: PathBuf,
    /// Only log messages of this level or above.
    #[arg(long = "log.level", value_enum, default_value = "info", global = true)]
    pub log_level: LogLevel,
    /// Log line format.
    #[arg(long = "log.format", value_enum, default_value = "logfmt", global = true)]
    pub log_format: LogFormat,
    /// What to do; without a command m365mon serves.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Validate the configuration file and print a summary (exit 0 valid, 1 invalid).
    CheckConfig,
    /// Sign in a subscription's delegated credential (device code flow) and store the refresh token.
    Login {
        /// The subscription to sign in.
        #[arg(long, value_name = "NAME")]
        subscription: String,
    },
    /// Forget the stored sign-in of a subscription's delegated credential.
    Logout {
        /// The subscription to sign out.
        #[arg(long, value_name = "NAME")]
        subscription: String,
    },
    /// Print a tenant's admin consent URL and the Graph permissions its probes need.
    ConsentUrl {
        /// A configured subscription (its credential and tenant).
        #[arg(long, value_name = "NAME", required_unless_present = "credential", conflicts_with_all = ["credential", "tenant"])]
        subscription: Option<String>,
        /// A configured credential (with --tenant), e.g. for a tenant not configured yet.
        #[arg(long, value_name = "NAME", requires = "tenant")]
        credential: Option<String>,
        /// Tenant GUID or domain (with --credential).
        #[arg(long, value_name = "TENANT", requires = "credential")]
        tenant: Option<String>,
    },
    /// Run the Entra ID and Graph simulator alone.
    Simulate {
        /// Address for the simulator.
        #[arg(long, value_name = "[HOST]:PORT", default_value = "127.0.0.1:10366", value_parser = parse_listen_address)]
        listen: SocketAddr,
        /// Tenants file (YAML); without it the built-in demo tenants are used.
        #[arg(long, value_name = "FILE")]
        tenants: Option<PathBuf>,
        /// Scenario file (YAML) of timed faults.
        #[arg(long, value_name = "FILE")]
        scenario: Option<PathBuf>,
    },
    /// Run the simulator and the exporter together on loopback with a built-in config and scenario.
    /// `--config.file` does not apply (refused); nothing is written under `--storage.path`.
    Demo {
        /// Address for the exporter.
        #[arg(long = "web.listen-address", value_name = "[HOST]:PORT", default_value = "127.0.0.1:10365", value_parser = parse_listen_address)]
        listen_address: SocketAddr,
        /// Address for the simulator (port 0 picks a free one).
        #[arg(long = "sim.listen-address", value_name = "[HOST]:PORT", default_value = "127.0.0.1:0", value_parser = parse_listen_address)]
        sim_listen_address: SocketAddr,
    },
}

/// Parses a listen address as Prometheus exporters take it: `HOST:PORT`,
/// `[IPv6]:PORT`, a host name such as `localhost:10365` (its first address),
/// or `:PORT` for every IPv4 interface.
pub fn parse_listen_address(s: &str) -> Result<SocketAddr, String> {
    use std::net::ToSocketAddrs;
    let s = s.trim();
    let full = if s.starts_with(':') { format!("0.0.0.0{s}") } else { s.to_string() };
    if let Ok(addr) = full.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = full.rsplit_once(':') else {
        return Err(format!("\"{s}\" is not HOST:PORT (for example :10365 or 127.0.0.1:10365)"));
    };
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("\"{s}\" is not HOST:PORT (for example :10365 or 127.0.0.1:10365)"));
    }
    match full.to_socket_addrs() {
        Ok(mut addrs) => addrs.next().ok_or_else(|| format!("host \"{host}\" has no address")),
        Err(e) => Err(format!("cannot resolve host \"{host}\": {e}")),
    }
}

#[cfg(test)]
mod listen_address_tests {
    use super::parse_listen_address;

    #[test]
    fn forms_prometheus_users_write() {
        assert_eq!(parse_listen_address(":10365").unwrap().to_string(), "0.0.0.0:10365");
        assert_eq!(parse_listen_address("127.0.0.1:9").unwrap().to_string(), "127.0.0.1:9");
        assert_eq!(parse_listen_address("[::1]:10365").unwrap().to_string(), "[::1]:10365");
        assert!(parse_listen_address("localhost:10365").unwrap().ip().is_loopback());
    }

    #[test]
    fn mistakes_are_named() {
        assert_eq!(
            parse_listen_address("10365").unwrap_err(),
            "\"10365\" is not HOST:PORT (for example :10365 or 127.0.0.1:10365)"
        );
        assert_eq!(
            parse_listen_address("localhost:http").unwrap_err(),
            "\"localhost:http\" is not HOST:PORT (for example :10365 or 127.0.0.1:10365)"
        );
        assert!(
            parse_listen_address("no-such-host.invalid:1")
                .unwrap_err()
                .starts_with("cannot resolve host \"no-such-host.invalid\"")
        );
    }
}

impl Cli {
    /// Parses the process's arguments (exiting with clap's message on a
    /// mistake), noting whether `--config.file` was given.
    pub fn parse_args() -> Cli {
        Self::parse_from_matches(<Cli as clap::CommandFactory>::command().get_matches())
    }

    /// Like [`Cli::parse_args`], from the given arguments (tests).
    pub fn try_parse_args<I: IntoIterator<Item = T>, T: Into<std::ffi::OsString> + Clone>(
        args: I,
    ) -> Result<Cli, clap::Error> {
        let matches = <Cli as clap::CommandFactory>::command().try_get_matches_from(args)?;
        Ok(Self::parse_from_matches(matches))
    }

    fn parse_from_matches(matches: clap::ArgMatches) -> Cli {
        let mut cli = <Cli as clap::FromArgMatches>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
        cli.config_file_given = given_on_command_line(&matches, "config_file");
        cli
    }
}

fn given_on_command_line(m: &clap::ArgMatches, id: &str) -> bool {
    m.value_source(id) == Some(clap::parser::ValueSource::CommandLine)
        || m.subcommand().is_some_and(|(_, s)| given_on_command_line(s, id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_whether_config_file_was_given() {
        let given = |args: &[&str]| Cli::try_parse_args(args).unwrap().config_file_given;
        assert!(!given(&["m365mon", "demo"]));
        assert!(given(&["m365mon", "demo", "--config.file", "m365mon.yml"]));
        assert!(given(&["m365mon", "--config.file=x.yml", "demo"]));
        assert!(given(&["m365mon", "--config.file=x.yml"]));
    }
}
