//! The `m365mon` binary: parses flags and hands over to the library.

use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = m365mon::cli::Cli::parse_args();
    m365mon::logging::init(cli.log_level, cli.log_format);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("m365mon: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(m365mon::run::run(cli))
}
