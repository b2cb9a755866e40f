//! The `agent-store` binary: `serve` runs the service; see `--help`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => actix_rt::System::new()
            .block_on(serve::run(args))
            .map_err(|e| e.to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent-store: {e}");
            ExitCode::FAILURE
        }
    }
}
