//! The loss check: every message the target acknowledged is stored exactly once, and nothing the
//! generator did not send (or sent in a request that failed) appears.
//!
//! A message is known by the index in its id (`lt-<index>`); the session's own prompt message and anything
//! else without that prefix is not the generator's and is left alone, except that no two stored messages
//! may share a seqId. Messages of a failed request may or may not be stored — the request may have been
//! applied before the error — so they are neither missing nor unexpected.

use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use super::content::message_index;
use super::driver::BusyBackoff;
use super::plan::{Expectation, Ledger};
use super::progress::Progress;
use super::target::{StoredMessage, Target, TargetError};

/// How many discrepancies are described in words.
const EXAMPLES: usize = 10;

/// What the check found in one session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SessionCheck {
    /// Generated messages found, duplicates included.
    pub stored: u64,
    /// Acknowledged message indices not found.
    pub missing: Vec<usize>,
    /// Extra copies of a message, and extra messages sharing a seqId.
    pub duplicated: u64,
    /// Generated-looking messages the run never had acknowledged.
    pub unexpected: u64,
}

impl SessionCheck {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.duplicated == 0 && self.unexpected == 0
    }
}

/// Checks one session's stored messages against what was acknowledged for it.
pub fn check_session(expect: &Expectation, stored: &[StoredMessage]) -> SessionCheck {
    let layout = &expect.layout;
    let mut check = SessionCheck::default();

    let mut seqs: Vec<u64> = stored.iter().map(|m| m.seq_id).collect();
    seqs.sort_unstable();
    check.duplicated += seqs.windows(2).filter(|w| w[0] == w[1]).count() as u64;

    let mut copies = vec![0u32; layout.messages];
    for m in stored {
        let Some(index) = message_index(&m.id) else {
            continue;
        };
        check.stored += 1;
        match copies.get_mut(index) {
            Some(n) => *n += 1,
            None => check.unexpected += 1,
        }
    }
    for (index, &n) in copies.iter().enumerate() {
        let chunk = index / layout.per_event;
        let acked = expect.is_acked(chunk);
        if n == 0 && acked {
            check.missing.push(index);
        }
        if n > 0 && !acked && !expect.is_uncertain(chunk) {
            check.unexpected += n as u64;
        }
        check.duplicated += n.saturating_sub(1) as u64;
    }
    check
}

/// The loss check over every session of the run, as the report shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct LossSummary {
    pub passed: bool,
    pub sessions_checked: u64,
    /// Acknowledged messages, which must all be stored.
    pub expected: u64,
    /// Generated messages found in storage.
    pub stored: u64,
    pub missing: u64,
    pub duplicated: u64,
    pub unexpected: u64,
    /// Sessions that could not be read at all (counted as missing all their messages).
    pub unreadable: u64,
    /// The first few discrepancies, in words.
    pub examples: Vec<String>,
}

impl LossSummary {
    pub fn add(&mut self, session_id: &str, expected: u64, check: &SessionCheck) {
        self.sessions_checked += 1;
        self.expected += expected;
        self.stored += check.stored;
        self.missing += check.missing.len() as u64;
        self.duplicated += check.duplicated;
        self.unexpected += check.unexpected;
        if !check.is_clean() && self.examples.len() < EXAMPLES {
            let first: Vec<String> = check
                .missing
                .iter()
                .take(3)
                .map(|i| format!("lt-{i}"))
                .collect();
            self.examples.push(format!(
                "{session_id}: {} missing ({}), {} duplicated, {} unexpected",
                check.missing.len(),
                first.join(", "),
                check.duplicated,
                check.unexpected
            ));
        }
    }

    /// A session whose messages could not be read: all it should hold is missing.
    pub fn add_unreadable(&mut self, session_id: &str, expected: u64, error: &str) {
        self.sessions_checked += 1;
        self.unreadable += 1;
        self.expected += expected;
        self.missing += expected;
        if self.examples.len() < EXAMPLES {
            self.examples
                .push(format!("{session_id}: could not be read: {error}"));
        }
    }

    pub fn finish(&mut self) {
        self.passed = self.missing == 0 && self.duplicated == 0 && self.unexpected == 0;
    }
}

/// A session's stored messages. A busy answer (HTTP 429/503, e.g. a cluster owner still applying
/// acknowledged ingest) says "retry", as the contract allows, so it is retried with backoff.
async fn read(target: &Target, session_id: &str) -> Result<Vec<StoredMessage>, TargetError> {
    let mut backoff = BusyBackoff::new();
    loop {
        match target.messages(session_id).await {
            Err(e) if e.is_busy() && backoff.wait().await => {}
            answer => return answer,
        }
    }
}

/// Reads every session back from the target, `concurrency` at a time, and checks it.
pub async fn check_all(
    target: &Target,
    ledger: &Ledger,
    sessions: &[String],
    concurrency: usize,
    progress: &mut Progress,
) -> LossSummary {
    progress.phase("verify", sessions.len() as u64, "sessions");
    let mut summary = LossSummary::default();
    let mut reads = futures_util::stream::iter(sessions.iter().enumerate())
        .map(|(p, id)| async move { (p, id, read(target, id).await) })
        .buffer_unordered(concurrency);
    while let Some((p, id, result)) = reads.next().await {
        let expect = ledger.expectation(p);
        match result {
            Ok(stored) => summary.add(id, expect.acked_count(), &check_session(&expect, &stored)),
            Err(e) => summary.add_unreadable(id, expect.acked_count(), &e.to_string()),
        }
        if summary.sessions_checked % 256 == 0 {
            progress.update(summary.sessions_checked, 0.0, summary.unreadable);
        }
    }
    progress.update(summary.sessions_checked, 0.0, summary.unreadable);
    summary.finish();
    summary
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadtest::plan::{Layout, Ledger};
    use std::time::Instant;

    fn msg(seq_id: u64, id: &str) -> StoredMessage {
        StoredMessage {
            seq_id,
            id: id.into(),
        }
    }

    /// One project, 6 messages in chunks of 2: chunks 0 and 1 acked, chunk 2 failed.
    fn expectation() -> Expectation {
        let ledger = Ledger::new(Layout::new(1, 6, 2, 2), Instant::now());
        ledger.ack(0, 0);
        ledger.ack(0, 1);
        ledger.fail(0, 2);
        ledger.expectation(0)
    }

    fn stored(ids: &[usize]) -> Vec<StoredMessage> {
        let mut v = vec![msg(1, "s-user-0")];
        v.extend(
            ids.iter()
                .enumerate()
                .map(|(k, i)| msg(k as u64 + 2, &format!("lt-{i}"))),
        );
        v
    }

    #[test]
    fn complete_session_passes_whether_or_not_a_failed_request_landed() {
        let e = expectation();
        for ids in [&[0, 1, 2, 3][..], &[0, 1, 2, 3, 4, 5]] {
            let check = check_session(&e, &stored(ids));
            assert!(check.is_clean(), "{ids:?}: {check:?}");
            assert_eq!(check.stored, ids.len() as u64);
        }
    }

    #[test]
    fn missing_message_is_found() {
        let check = check_session(&expectation(), &stored(&[0, 2, 3]));
        assert_eq!(check.missing, vec![1]);
        assert!(!check.is_clean());
    }

    #[test]
    fn duplicated_message_and_seq_are_found() {
        let check = check_session(&expectation(), &stored(&[0, 1, 1, 2, 3]));
        assert_eq!((check.duplicated, check.missing.len()), (1, 0));
        let mut same_seq = stored(&[0, 1, 2, 3]);
        same_seq[2].seq_id = same_seq[1].seq_id;
        assert_eq!(check_session(&expectation(), &same_seq).duplicated, 1);
    }

    #[test]
    fn never_acknowledged_message_is_unexpected() {
        let ledger = Ledger::new(Layout::new(1, 6, 2, 2), Instant::now());
        ledger.ack(0, 0);
        let check = check_session(&ledger.expectation(0), &stored(&[0, 1, 2, 9]));
        assert_eq!(check.unexpected, 2);
    }

    #[test]
    fn summary_fails_on_any_discrepancy() {
        let mut s = LossSummary::default();
        s.add(
            "a",
            4,
            &check_session(&expectation(), &stored(&[0, 1, 2, 3])),
        );
        s.finish();
        assert!(s.passed && s.examples.is_empty());
        s.add("b", 4, &check_session(&expectation(), &stored(&[0, 1, 2])));
        s.finish();
        assert!(!s.passed);
        assert_eq!((s.missing, s.expected, s.stored), (1, 8, 7));
        assert!(
            s.examples[0].starts_with("b: 1 missing (lt-3)"),
            "{:?}",
            s.examples
        );
        s.add_unreadable("c", 5, "HTTP 404");
        assert_eq!((s.missing, s.unreadable), (6, 1));
    }
}
