//! `m365mon demo` and `m365mon simulate`. (Waiting for the simulator.)

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

/// Runs the simulator alone.
pub async fn simulate(_listen: SocketAddr, _tenants: Option<&Path>, _scenario: Option<&Path>) -> ExitCode {
    eprintln!("m365mon: the simulator is not built yet");
    ExitCode::FAILURE
}

/// Runs the simulator and the exporter together.
pub async fn demo(_listen: SocketAddr, _sim: SocketAddr) -> ExitCode {
    eprintln!("m365mon: the demo is not built yet");
    ExitCode::FAILURE
}
