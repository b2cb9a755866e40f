//! The stderr of sessions whose actor has stopped (a finished session let go after the cleanup grace, or
//! evicted): the last `limits.stderr_kept` of them, as the providers' session table used to keep them, so
//! `GET /v1/sessions/{id}/stderr` still answers once the session has left memory. A session's runner holds
//! its stderr while the session lives; the session hands it here when it goes. Written once per stopped
//! session that has any, read only by that endpoint: the lock is never on the ingest path.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::providers::SessionStderr;

/// The stderr of the most recently stopped sessions, at most `max` of them (each at most 16 KiB: the
/// runner's own bound).
pub struct KeptStderr {
    max: usize,
    kept: Mutex<Kept>,
}

#[derive(Default)]
struct Kept {
    by_id: HashMap<String, SessionStderr>,
    /// Session ids, oldest first; the first goes when a new one would exceed `max`.
    order: VecDeque<String>,
}

impl KeptStderr {
    pub fn new(max: usize) -> KeptStderr {
        KeptStderr {
            max,
            kept: Mutex::new(Kept::default()),
        }
    }

    /// Keeps a stopped session's stderr (its lines from every run), replacing what an earlier actor of the
    /// same session left; nothing without lines.
    pub fn keep(&self, stderr: SessionStderr) {
        if self.max == 0 || stderr.lines.is_empty() {
            return;
        }
        let mut kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        let id = stderr.session_id.clone();
        if kept.by_id.insert(id.clone(), stderr).is_some() {
            kept.order.retain(|held| *held != id);
        }
        kept.order.push_back(id);
        while kept.order.len() > self.max {
            if let Some(oldest) = kept.order.pop_front() {
                kept.by_id.remove(&oldest);
            }
        }
    }

    /// A stopped session's stderr, while it is among the last `max` kept.
    pub fn get(&self, session_id: &str) -> Option<SessionStderr> {
        let kept = self.kept.lock().unwrap_or_else(|p| p.into_inner());
        kept.by_id.get(session_id).cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stderr(id: &str, line: &str) -> SessionStderr {
        SessionStderr {
            session_id: id.into(),
            lines: vec![line.into()],
            last_line_at: Some(1),
        }
    }

    #[test]
    fn keeps_the_most_recent_sessions_only() {
        let kept = KeptStderr::new(2);
        kept.keep(stderr("p-1", "a"));
        kept.keep(stderr("p-2", "b"));
        kept.keep(stderr("p-3", "c"));
        assert_eq!(kept.get("p-1"), None, "the oldest went");
        assert_eq!(kept.get("p-2").unwrap().lines, ["b"]);
        assert_eq!(kept.get("p-3").unwrap().lines, ["c"]);
    }

    #[test]
    fn a_session_kept_again_is_the_newest_and_counted_once() {
        let kept = KeptStderr::new(2);
        kept.keep(stderr("p-1", "a"));
        kept.keep(stderr("p-2", "b"));
        kept.keep(stderr("p-1", "a2"));
        kept.keep(stderr("p-3", "c"));
        assert_eq!(kept.get("p-2"), None);
        assert_eq!(kept.get("p-1").unwrap().lines, ["a2"]);
        assert_eq!(kept.get("p-3").unwrap().lines, ["c"]);
    }

    #[test]
    fn nothing_without_lines_or_room() {
        let kept = KeptStderr::new(0);
        kept.keep(stderr("p-1", "a"));
        assert_eq!(kept.get("p-1"), None);
        let kept = KeptStderr::new(4);
        kept.keep(SessionStderr {
            session_id: "p-2".into(),
            ..Default::default()
        });
        assert_eq!(kept.get("p-2"), None);
    }
}
