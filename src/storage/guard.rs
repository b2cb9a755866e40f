//! What keeps a broken disk from losing data quietly: the database file watched, commit failures
//! remembered, damaged rows counted, and a marker that tells a missing file from a first start.
//!
//! - Identity: the (device, inode) of the file at open. Before each commit, and on each readiness check,
//!   the path is looked up again (one `stat`): if the file was deleted or replaced, redb would keep
//!   committing to an inode nobody will open again, so the commit is refused and storage reports itself
//!   unable to commit until the same file is back.
//! - Commit health: the outcome of the last write transaction that failed for the machine's reasons (I/O,
//!   full disk, file gone), cleared by the next one that commits. A row that fails its checksum is the
//!   row's fault, not the disk's, and does not count.
//! - The marker: a small file beside the database, written once a database exists. A restart that finds
//!   the marker but no database refuses to start instead of creating an empty one.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

use super::StorageError;

struct Failure {
    reason: String,
    /// The file was gone: that is looked up again on every check, so it ends when the file is back.
    file_gone: bool,
}

/// Why storage cannot commit now, if it cannot.
pub(super) struct Guard {
    path: PathBuf,
    /// (device, inode) of the file opened.
    identity: (u64, u64),
    /// The last failed commit, until one succeeds.
    failing: Mutex<Option<Failure>>,
    corrupt_rows: AtomicU64,
    /// Where damaged rows are counted too, once metrics are attached.
    corrupt_counter: OnceLock<prometheus::IntCounter>,
}

impl Guard {
    /// Watches the file now at `path`, the one just opened.
    pub(super) fn new(path: &Path) -> Result<Guard, StorageError> {
        let meta = fs::metadata(path).map_err(|e| StorageError::Open {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        Ok(Guard {
            path: path.to_path_buf(),
            identity: (meta.dev(), meta.ino()),
            failing: Mutex::new(None),
            corrupt_rows: AtomicU64::new(0),
            corrupt_counter: OnceLock::new(),
        })
    }

    /// Errs if the path no longer names the file that was opened.
    pub(super) fn check_file(&self) -> Result<(), StorageError> {
        let gone = |message: String| StorageError::FileGone {
            path: self.path.display().to_string(),
            message,
        };
        match fs::metadata(&self.path) {
            Ok(m) if (m.dev(), m.ino()) == self.identity => Ok(()),
            Ok(_) => Err(gone("was replaced by another file".into())),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(gone("was deleted".into())),
            Err(e) => Err(gone(format!("cannot be looked up ({e})"))),
        }
    }

    /// Remembers the outcome of a write transaction; logs when storage stops or starts committing again.
    pub(super) fn record<T>(&self, result: &Result<T, StorageError>) {
        let mut failing = self.failing.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(_) => {
                if failing.take().is_some() {
                    tracing::info!(path = %self.path.display(), "storage commits again");
                }
            }
            Err(e) if e.is_machine() => {
                if failing.is_none() {
                    tracing::error!(path = %self.path.display(), error = %e, "storage cannot commit");
                }
                *failing = Some(Failure {
                    reason: e.to_string(),
                    file_gone: matches!(e, StorageError::FileGone { .. }),
                });
            }
            Err(_) => {}
        }
    }

    /// Ok if storage can commit, as far as is known without writing: the last commit did not fail and
    /// the file is still the one opened.
    pub(super) fn status(&self) -> Result<(), String> {
        self.check_file().map_err(|e| e.to_string())?;
        match &*self.failing.lock().unwrap_or_else(|p| p.into_inner()) {
            Some(f) if !f.file_gone => Err(f.reason.clone()),
            _ => Ok(()),
        }
    }

    /// Counts and logs a damaged row met by a read; hands the error back.
    pub(super) fn corrupt(&self, e: StorageError) -> StorageError {
        if let StorageError::Corrupt { .. } = &e {
            self.corrupt_rows.fetch_add(1, Ordering::Relaxed);
            if let Some(c) = self.corrupt_counter.get() {
                c.inc();
            }
            tracing::error!(path = %self.path.display(), error = %e, "damaged row in storage");
        }
        e
    }

    /// Counts damaged rows in `counter` too from now on (the first call wins).
    pub(super) fn observe_corrupt_rows(&self, counter: prometheus::IntCounter) {
        let _ = self.corrupt_counter.set(counter);
    }

    pub(super) fn corrupt_rows(&self) -> u64 {
        self.corrupt_rows.load(Ordering::Relaxed)
    }
}

/// The marker beside the database at `path`.
pub(super) fn marker_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".created");
    path.with_file_name(name)
}

/// Refuses to create a database at `path` when its marker says one was there.
pub(super) fn refuse_if_marked(path: &Path) -> Result<(), StorageError> {
    let marker = marker_path(path);
    if marker.exists() {
        return Err(StorageError::Missing {
            path: path.display().to_string(),
            marker: marker.display().to_string(),
        });
    }
    Ok(())
}

/// Writes the marker of the database at `path` if it is not there yet.
pub(super) fn mark(path: &Path) -> io::Result<()> {
    let marker = marker_path(path);
    if marker.exists() {
        return Ok(());
    }
    let mut f = fs::File::create(&marker)?;
    writeln!(
        f,
        "agent-store keeps its database in {}.\n\
         While this file exists, a missing database is an error, not a first start.\n\
         Delete this file only to start again with an empty database.",
        path.file_name().unwrap_or_default().to_string_lossy()
    )?;
    f.sync_all()
}
