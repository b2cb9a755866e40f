//! A copy-on-write view of a database file, for looking inside a file that redb would have to repair.
//!
//! After a crash redb rebuilds its allocator state on open, which writes to the file. Before this build may
//! write anything it must know the file holds its own schema, because a file it refuses must stay exactly
//! as it was. So the first look at such a file goes through this backend: reads come from the file, writes
//! land in memory pages that are dropped with it. A repair only writes allocator metadata, so the memory
//! it takes is small whatever the file size.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::Mutex;

use redb::StorageBackend;

const PAGE: u64 = 4096;

#[derive(Debug)]
pub(super) struct CopyOnWrite {
    file: File,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    /// The length redb sees.
    len: u64,
    /// Bytes of the file at or beyond this offset are not shown: a shrink cut them off, and growing back
    /// must show zeros, as a real file would.
    file_visible: u64,
    /// Pages written since the open, by page index.
    pages: HashMap<u64, Box<[u8]>>,
}

impl CopyOnWrite {
    /// `file` may be opened read-only: it is only ever read.
    pub(super) fn new(file: File) -> io::Result<CopyOnWrite> {
        let len = file.metadata()?.len();
        Ok(CopyOnWrite {
            file,
            state: Mutex::new(State {
                len,
                file_visible: len,
                pages: HashMap::new(),
            }),
        })
    }
}

impl State {
    /// Copies the current content of page `index` into `out` (a whole page).
    fn load(&self, file: &File, index: u64, out: &mut [u8]) -> io::Result<()> {
        if let Some(page) = self.pages.get(&index) {
            out.copy_from_slice(page);
            return Ok(());
        }
        out.fill(0);
        let start = index * PAGE;
        if start < self.file_visible {
            let n = (self.file_visible - start).min(PAGE) as usize;
            file.read_exact_at(&mut out[..n], start)?;
        }
        Ok(())
    }
}

fn out_of_range() -> io::Error {
    io::Error::new(
        io::ErrorKind::UnexpectedEof,
        "read beyond the end of the file",
    )
}

fn poisoned() -> io::Error {
    io::Error::other("copy-on-write state poisoned")
}

impl StorageBackend for CopyOnWrite {
    fn len(&self) -> io::Result<u64> {
        Ok(self.state.lock().map_err(|_| poisoned())?.len)
    }

    fn read(&self, offset: u64, out: &mut [u8]) -> io::Result<()> {
        let state = self.state.lock().map_err(|_| poisoned())?;
        let end = offset + out.len() as u64;
        if end > state.len {
            return Err(out_of_range());
        }
        let mut page = vec![0u8; PAGE as usize];
        let mut pos = offset;
        while pos < end {
            let index = pos / PAGE;
            let within = (pos % PAGE) as usize;
            let n = ((PAGE - within as u64).min(end - pos)) as usize;
            state.load(&self.file, index, &mut page)?;
            let at = (pos - offset) as usize;
            out[at..at + n].copy_from_slice(&page[within..within + n]);
            pos += n as u64;
        }
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        if len < state.len {
            state.file_visible = state.file_visible.min(len);
            let last_page = len.div_ceil(PAGE);
            state.pages.retain(|&i, _| i < last_page);
            // The page holding the new end keeps its head; what lies past the end reads as zeros later.
            if len % PAGE != 0 {
                let index = len / PAGE;
                let mut page = vec![0u8; PAGE as usize].into_boxed_slice();
                state.load(&self.file, index, &mut page)?;
                page[(len % PAGE) as usize..].fill(0);
                state.pages.insert(index, page);
            }
        }
        state.len = len;
        Ok(())
    }

    fn sync_data(&self) -> io::Result<()> {
        Ok(())
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        let mut state = self.state.lock().map_err(|_| poisoned())?;
        let end = offset + data.len() as u64;
        let mut pos = offset;
        while pos < end {
            let index = pos / PAGE;
            let within = (pos % PAGE) as usize;
            let n = ((PAGE - within as u64).min(end - pos)) as usize;
            let mut page = match state.pages.remove(&index) {
                Some(page) => page,
                None => {
                    let mut page = vec![0u8; PAGE as usize].into_boxed_slice();
                    state.load(&self.file, index, &mut page)?;
                    page
                }
            };
            let at = (pos - offset) as usize;
            page[within..within + n].copy_from_slice(&data[at..at + n]);
            state.pages.insert(index, page);
            pos += n as u64;
        }
        state.len = state.len.max(end);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn writes_are_seen_by_reads_and_never_reach_the_file() {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        let original: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        f.write_all(&original).unwrap();
        let cow = CopyOnWrite::new(File::open(f.path()).unwrap()).unwrap();

        cow.write(4090, &[7; 20]).unwrap();
        let mut out = vec![0; 30];
        cow.read(4080, &mut out).unwrap();
        assert_eq!(&out[..10], &original[4080..4090]);
        assert_eq!(&out[10..30], &[7; 20]);

        cow.set_len(5000).unwrap();
        cow.set_len(12_000).unwrap();
        let mut tail = vec![1; 7000];
        cow.read(5000, &mut tail).unwrap();
        assert!(
            tail.iter().all(|&b| b == 0),
            "bytes past a shrink read as zeros"
        );
        assert!(cow.read(11_999, &mut [0; 2]).is_err());

        assert_eq!(std::fs::read(f.path()).unwrap(), original);
    }
}
