//! Property: restore drops exactly the duplicates. A session's messages are stored as batch rows keyed by
//! their first seqId; a write that committed although its caller saw it fail is written again, so a seqId
//! can be stored in more than one row. Whatever rows overlap, `Store::messages` gives every stored seqId
//! exactly once, in order, and every page of it (`after_seq`, `before_seq`, `limit`) is the matching slice.
//!
//! The rows are the ones a session can write: flushes in time order, each starting at or before the end
//! of the one before (+1: a rewrite starts where the session believed storage ended, never below the
//! first seqId of the row it rewrites) and ending at or after it, since seqIds only grow.

mod storage_support;

use std::collections::BTreeMap;

use agent_store::messages::wire::AgentStatus;
use agent_store::storage::{Store, WriteOp};
use proptest::prelude::*;
use storage_support::*;

const SESSION: &str = "p-1";

/// Batches as (first seqId, length), in write order: (start offset back from the previous end + 1, how
/// far past the previous end it reaches) give overlaps, same-key rewrites and plain appends.
fn batches() -> impl Strategy<Value = Vec<(u64, u64)>> {
    prop::collection::vec((0u64..6, 0u64..8), 1..12).prop_map(|steps| {
        let (mut first, mut end) = (1u64, 0u64);
        let mut out = Vec::new();
        for (back, grow) in steps {
            first = (end + 1).saturating_sub(back).max(first);
            end = (end + grow).max(first);
            out.push((first, end - first + 1));
        }
        out
    })
}

/// What storage should hold: rows keyed by first seqId (a later row with the same key replaces the earlier
/// one), each seqId once, in order.
fn model(batches: &[(u64, u64)]) -> Vec<u64> {
    let rows: BTreeMap<u64, u64> = batches.iter().copied().collect();
    let mut seqs: Vec<u64> = rows
        .iter()
        .flat_map(|(first, len)| *first..first + len)
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    seqs
}

fn store_with(batches: &[(u64, u64)]) -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store.redb")).unwrap();
    store
        .apply(&[put(SESSION, "p", AgentStatus::Done, 10)])
        .unwrap();
    // One commit per batch, as the persister writes one flush at a time.
    for (first, len) in batches {
        store
            .apply(&[append(SESSION, *first..=first + len - 1)])
            .unwrap();
    }
    // Another session's rows sit right beside this one's in key order and must never leak in.
    store
        .apply(&[WriteOp::AppendMessages {
            session_id: "p-10".into(),
            messages: batch(1..=5),
        }])
        .unwrap();
    (dir, store)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    #[test]
    fn every_stored_seq_id_comes_back_exactly_once(batches in batches()) {
        let (_dir, store) = store_with(&batches);
        let all = store.messages(SESSION, 0, None, None).unwrap();
        prop_assert_eq!(seqs(&all), model(&batches));
        for m in &all {
            prop_assert_eq!(m, &message(m.seq_id), "the message stored under its seqId");
        }
    }

    #[test]
    fn every_page_is_the_matching_slice(
        batches in batches(),
        after in 0u64..50,
        before in prop::option::of(0u64..55),
        limit in prop::option::of(0usize..15),
    ) {
        let (_dir, store) = store_with(&batches);
        let page = store.messages(SESSION, after, before, limit).unwrap();
        let expected: Vec<u64> = model(&batches)
            .into_iter()
            .filter(|s| *s > after && before.is_none_or(|b| *s < b))
            .take(limit.unwrap_or(usize::MAX))
            .collect();
        prop_assert_eq!(seqs(&page), expected);
    }

    #[test]
    fn paging_through_gives_the_whole_list(batches in batches(), limit in 1usize..7) {
        let (_dir, store) = store_with(&batches);
        let mut after = 0;
        let mut read = Vec::new();
        loop {
            let page = store.messages(SESSION, after, None, Some(limit)).unwrap();
            let Some(last) = page.last() else { break };
            after = last.seq_id;
            read.extend(seqs(&page));
        }
        prop_assert_eq!(read, model(&batches));
    }
}
