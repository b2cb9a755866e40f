//! `agent-store verify --data-dir DIR`: checks every stored row of the database in DIR (checksums,
//! decoding, indexes) without changing the file, prints each damaged row with its session, and fails when
//! anything is damaged. Run it with the service stopped: a running service holds the file's lock.

use std::io::Write;
use std::path::PathBuf;

use crate::config::Config;
use crate::storage::{self, StorageError};

#[derive(Debug, Clone, clap::Args)]
pub struct VerifyArgs {
    /// Directory of the redb file (as `serve --data-dir`)
    #[arg(long, value_name = "DIR")]
    pub data_dir: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum VerifyFailed {
    #[error(transparent)]
    Unreadable(#[from] StorageError),
    #[error("{0} damaged row(s) or index entries in {1}")]
    Damaged(usize, String),
    #[error("writing the report: {0}")]
    Output(#[from] std::io::Error),
}

/// Verifies the database in `args.data_dir`, writing the report to `out`.
pub fn run(args: &VerifyArgs, out: &mut impl Write) -> Result<(), VerifyFailed> {
    let mut config = Config::default();
    config.storage.data_dir = args.data_dir.clone();
    let path = config.database_path();
    let report = storage::verify(&path)?;
    for damage in &report.damage {
        writeln!(out, "damaged: {damage}")?;
    }
    writeln!(
        out,
        "{}: schema {}, {} sessions, {} message rows ({} messages) checked, {} damaged",
        path.display(),
        report.schema,
        report.sessions,
        report.batches,
        report.messages,
        report.damage.len()
    )?;
    if report.damage.is_empty() {
        Ok(())
    } else {
        Err(VerifyFailed::Damaged(
            report.damage.len(),
            path.display().to_string(),
        ))
    }
}
