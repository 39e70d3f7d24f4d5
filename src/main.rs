use std::process::ExitCode;

use clap::Parser;
use openhands::config::{Cli, Command};

fn main() -> ExitCode {
    // Unknown flags and malformed values: clap prints what is wrong and exits with code 2.
    let cli = Cli::parse();
    if let Err(error) = cli.config.validate() {
        eprintln!("error: {error}");
        return ExitCode::from(2);
    }
    openhands::logging::init(&cli.config.logging.log_level, cli.config.logging.log_json);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    // Benchmarks drive the assembled service from outside, so they are reached from here.
    let work = async move {
        match cli.command {
            Command::Bench(command) => openhands::bench::run(&cli.config, command).await,
            _ => openhands::app::run(cli).await,
        }
    };
    match runtime.block_on(work) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
