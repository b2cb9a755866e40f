//! Property: within a session, seqIds are 1, 2, 3, ... with no gap and no repeat, whatever the interleaving
//! of events — several ingesters sending at once, message batches mixed with status and cost events, some
//! durable — and each ingester's messages keep the order it sent them in. The same holds for what storage
//! gives back after a restart.

mod engine_support;

use std::time::Duration;

use agent_store::messages::commands::Page;
use agent_store::messages::wire::{RawMessage, SharedMessage, SidecarEvent};
use engine_support::*;
use proptest::prelude::*;
use serde_json::json;

/// One event an ingester sends.
#[derive(Debug, Clone)]
enum Ev {
    /// Raw messages of these types (`cost` shows nothing; the others become one message each).
    Messages(Vec<&'static str>),
    Status(&'static str),
    Cost,
}

#[derive(Debug, Clone)]
struct Send {
    events: Vec<Ev>,
    durable: bool,
    /// Yields before sending, to shift this ingester against the others.
    yields: u8,
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        4 => prop::collection::vec(
            prop::sample::select(vec!["text", "thinking", "tool_call", "tool_result", "cost"]),
            1..5,
        )
        .prop_map(Ev::Messages),
        1 => prop::sample::select(vec!["running", "idle", "done", "error", "compacting"])
            .prop_map(Ev::Status),
        1 => Just(Ev::Cost),
    ]
}

fn send() -> impl Strategy<Value = Send> {
    (prop::collection::vec(ev(), 1..4), any::<bool>(), 0u8..4).prop_map(
        |(events, durable, yields)| Send {
            events,
            durable,
            yields,
        },
    )
}

/// Several ingesters, each a list of sends made one after another.
fn ingesters() -> impl Strategy<Value = Vec<Vec<Send>>> {
    prop::collection::vec(prop::collection::vec(send(), 1..5), 2..5)
}

/// The id of an ingester's n-th raw message: `i<ingester>-<n>`, so order per ingester can be read back.
fn raw_message(ingester: usize, n: usize, kind: &str) -> RawMessage {
    let content = match kind {
        "tool_call" => json!({"name": "Bash", "input": {"command": "ls"}}),
        "tool_result" => json!({"output": "a"}),
        "cost" => json!({"costUsd": 0.1}),
        _ => json!({"text": "x"}),
    };
    raw(&format!("i{ingester}-{n}"), kind, content)
}

/// The events of `sends`, with raw message ids numbered in send order; also how many become messages.
fn build(
    ingester: usize,
    sends: &[Send],
    sid: &str,
) -> (Vec<(Vec<SidecarEvent>, bool, u8)>, usize) {
    let (mut n, mut shown) = (0, 0);
    let mut out = Vec::new();
    for s in sends {
        let events = s
            .events
            .iter()
            .map(|e| match e {
                Ev::Messages(kinds) => {
                    let raws = kinds
                        .iter()
                        .map(|k| {
                            n += 1;
                            shown += usize::from(*k != "cost");
                            raw_message(ingester, n, k)
                        })
                        .collect();
                    messages(sid, raws)
                }
                Ev::Status(s) => status(sid, s, (*s == "error").then_some("boom")),
                Ev::Cost => cost(sid, 0.5, 10, 20),
            })
            .collect();
        out.push((events, s.durable, s.yields));
    }
    (out, shown)
}

fn assert_sequence(messages: &[SharedMessage], expected: usize, ingesters: usize, when: &str) {
    let seqs: Vec<u64> = messages.iter().map(|m| m.seq_id).collect();
    assert_eq!(
        seqs,
        (1..=expected as u64).collect::<Vec<_>>(),
        "{when}: seqIds are 1..=n, in order, once each"
    );
    for i in 0..ingesters {
        let prefix = format!("i{i}-");
        let order: Vec<usize> = messages
            .iter()
            .filter_map(|m| m.id.strip_prefix(&prefix)?.parse().ok())
            .collect();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "{when}: ingester {i}'s messages keep their order: {order:?}"
        );
    }
}

fn run_case(plan: Vec<Vec<Send>>) {
    actix_rt::System::new().block_on(async move {
        let t = start(|c| c.timers.persist_debounce = Duration::from_millis(5)).await;
        let sid = t.start_session("prop", "go").await;
        let mut expected = 1; // the prompt
        let mut tasks = Vec::new();
        for (i, sends) in plan.iter().enumerate() {
            let (batches, shown) = build(i, sends, &sid);
            expected += shown;
            let engine = t.engine.clone();
            tasks.push(actix_rt::spawn(async move {
                for (events, durable, yields) in batches {
                    for _ in 0..yields {
                        tokio::task::yield_now().await;
                    }
                    engine.ingest(events, durable).await.expect("ingest");
                }
            }));
        }
        for task in tasks {
            task.await.expect("ingester");
        }
        let live = t.engine.session(&sid, Page::default()).await.unwrap();
        assert_sequence(&live.messages, expected, plan.len(), "live");

        let t = t.restart().await;
        let stored = t.engine.session(&sid, Page::default()).await.unwrap();
        assert_sequence(&stored.messages, expected, plan.len(), "after restart");
        assert_eq!(
            stored.messages, live.messages,
            "storage gives back what was shown"
        );
        t.engine.shutdown().await;
    });
}

proptest! {
    // Each case starts two engines on a real file: few cases, small plans.
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn seq_ids_strictly_increase_whatever_the_interleaving(plan in ingesters()) {
        run_case(plan);
    }
}
