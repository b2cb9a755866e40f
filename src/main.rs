//! The `agent-store` binary: `serve` runs the service; see `--help`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use agent_store::cli::loadtest::{self, LoadtestArgs};
use agent_store::cli::serve::{self, ServeArgs};

#[derive(Parser)]
#[command(name = "agent-store", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service until SIGINT or SIGTERM
    Serve(ServeArgs),
    /// Put a server or an in-process engine under load, measure it, and check nothing was lost
    Loadtest(LoadtestArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => actix_rt::System::new()
            .block_on(serve::run(args))
            .map_err(|e| e.to_string()),
        // The generator runs on a multi-threaded runtime; an in-process engine gets its own actix system.
        Command::Loadtest(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())
            .and_then(|rt| {
                rt.block_on(loadtest::run(args))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent-store: {e}");
            ExitCode::FAILURE
        }
    }
}
