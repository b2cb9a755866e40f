//! The `agent-store` binary: `serve` runs the service, `convert` shows what the store would make of a
//! recorded provider transcript, `loadtest` measures a server or an in-process engine, `verify` checks every
//! stored row of a database; see `--help`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

use agent_store::cli::convert;
use agent_store::cli::loadtest::{self, LoadtestArgs};
use agent_store::cli::serve::{self, ServeArgs};
use agent_store::cli::verify::{self, VerifyArgs};
use agent_store::config::ProviderKind;

/// Every message crosses threads as small allocations (actor mailboxes, shared message batches). glibc's
/// allocator spent over a third of the load test's CPU there and gave the worst tail latency; jemalloc
/// doubled throughput and cut p99 at moderate load, and its background threads hand freed memory back to
/// the system (BENCHMARKS.md). On by default; `--no-default-features` builds with the system allocator.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options, read when it starts (`malloc_conf`; the build's prefix makes the symbol
/// `_rjem_malloc_conf`). Freed pages go back to the system after 1 s unused instead of jemalloc's 10 s:
/// memory freed in a burst (the 100,000-session setup's requests and replies) otherwise stays resident
/// while the next phase allocates afresh, and the peak then swung by 50 MiB from run to run (573–624 MiB
/// against 548–557 MiB at 1 s, BENCHMARKS.md). `_RJEM_MALLOC_CONF` in the environment still overrides.
#[cfg(feature = "jemalloc")]
#[export_name = "_rjem_malloc_conf"]
static MALLOC_CONF: CString = CString(c"dirty_decay_ms:1000".as_ptr());

/// A C string's address, laid out as C's `const char *` (a `&CStr` is a pointer and a length).
#[cfg(feature = "jemalloc")]
#[repr(transparent)]
struct CString(*const std::ffi::c_char);

// SAFETY: it points at a string literal, immutable for the life of the process.
#[cfg(feature = "jemalloc")]
unsafe impl Sync for CString {}

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
    /// Print, one JSON object a line, the messages the store would show for a recorded transcript
    Convert {
        /// Which provider's output the file holds
        #[arg(long, value_enum)]
        provider: TranscriptKind,
        /// The transcript: NDJSON, a JSON array of events, or one JSON object
        file: PathBuf,
    },
    /// Put a server or an in-process engine under load, measure it, and check nothing was lost
    Loadtest(LoadtestArgs),
    /// Check every stored row of the database in --data-dir (checksums, indexes); fail if any is damaged
    Verify(VerifyArgs),
}

/// The providers that have a transcript format of their own.
#[derive(Clone, Copy, ValueEnum)]
enum TranscriptKind {
    Claude,
    Codex,
    Ollama,
}

impl From<TranscriptKind> for ProviderKind {
    fn from(kind: TranscriptKind) -> ProviderKind {
        match kind {
            TranscriptKind::Claude => ProviderKind::Claude,
            TranscriptKind::Codex => ProviderKind::Codex,
            TranscriptKind::Ollama => ProviderKind::Ollama,
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => actix_rt::System::new()
            .block_on(serve::run(args))
            .map_err(|e| e.to_string()),
        Command::Convert { provider, file } => {
            let mut out = std::io::stdout().lock();
            convert::run(provider.into(), &file, &mut out)
                .map(|transcript| {
                    if transcript.skipped_lines > 0 {
                        eprintln!(
                            "agent-store: skipped {} line(s) that were not JSON",
                            transcript.skipped_lines
                        );
                    }
                })
                .map_err(|e| e.to_string())
        }
        Command::Loadtest(args) => agent_store::loadtest::runtime(args.in_process)
            .map_err(|e| e.to_string())
            .and_then(|rt| {
                rt.block_on(loadtest::run(args))
                    .map(|_| ())
                    .map_err(|e| e.to_string())
            }),
        Command::Verify(args) => {
            verify::run(&args, &mut std::io::stdout().lock()).map_err(|e| e.to_string())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("agent-store: {e}");
            ExitCode::FAILURE
        }
    }
}
