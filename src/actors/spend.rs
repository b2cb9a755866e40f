//! A session's spend: how its cost totals add up over the runs of its agent, what of it the cost ledger
//! has yet to store, and whether it crossed a budget. Owned by the session actor.
//!
//! Cost events carry totals, never increments. A CLI agent starts counting from zero in every process
//! (a follow-up or a resume is a new `claude` process), so totals tagged with a run (`CostPayload::run`)
//! are that run's: the first totals of a new run add to what the session had spent. Untagged totals are
//! the session's own, taken as they are (v1, sidecars). Every increase is recorded in the ledger (per
//! UTC day) in the same transaction as the session record, so the ledger is the sum of the sessions'
//! costs; spend once recorded is never taken back (should a sender's totals go down, the ledger keeps
//! what was spent and counts only what goes beyond it again).

use std::collections::BTreeMap;

use super::control::{day_of, Exceeded};
use super::session::SessionLinks;
use crate::storage::{SessionRecord, Spend, WriteOp};

/// Cost and token totals.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub usd: f64,
    pub input: u64,
    pub output: u64,
}

impl Totals {
    fn of(r: &SessionRecord) -> Totals {
        Totals {
            usd: r.cost_usd,
            input: r.input_tokens,
            output: r.output_tokens,
        }
    }

    fn plus(self, o: Totals) -> Totals {
        Totals {
            usd: self.usd + o.usd,
            input: self.input.saturating_add(o.input),
            output: self.output.saturating_add(o.output),
        }
    }

    /// Component-wise what `self` has above `o` (never below zero).
    fn above(self, o: Totals) -> Totals {
        Totals {
            usd: (self.usd - o.usd).max(0.0),
            input: self.input.saturating_sub(o.input),
            output: self.output.saturating_sub(o.output),
        }
    }

    fn max(self, o: Totals) -> Totals {
        Totals {
            usd: self.usd.max(o.usd),
            input: self.input.max(o.input),
            output: self.output.max(o.output),
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == Totals::default()
    }
}

#[derive(Default)]
pub struct SessionSpend {
    /// The run the last totals belong to (`None`: untagged).
    run: Option<u64>,
    seen: bool,
    /// What earlier runs (or a restarted counter) spent.
    base: Totals,
    /// Increases not yet handed to storage, and those in the flush in flight, by day.
    unflushed: BTreeMap<String, Totals>,
    in_flight: BTreeMap<String, Totals>,
    /// A budget stopped this session; not said again until it runs again.
    halted: bool,
}

impl SessionSpend {
    /// Applies cost totals to the record; answers the increase.
    pub fn apply(
        &mut self,
        record: &mut SessionRecord,
        run: Option<u64>,
        totals: Totals,
    ) -> Totals {
        let current = Totals::of(record);
        if !self.seen || run != self.run {
            // A new run (or the first totals this actor sees, of a session that may have spent before
            // it was loaded): a tagged run's totals add to what is stored.
            self.base = if run.is_some() {
                current
            } else {
                Totals::default()
            };
            self.run = run;
            self.seen = true;
        }
        let next = match run {
            Some(_) => self.base.plus(totals).max(current),
            None => totals,
        };
        record.cost_usd = next.usd;
        record.input_tokens = next.input;
        record.output_tokens = next.output;
        next.above(current)
    }

    /// Records an increase for the ledger and the metrics; answers a budget it crossed, once.
    pub fn account(
        &mut self,
        increase: Totals,
        record: &SessionRecord,
        links: &SessionLinks,
        at: crate::messages::wire::UnixMs,
    ) -> Option<Exceeded> {
        let day = day_of(at);
        let row = self.unflushed.entry(day).or_default();
        *row = row.plus(increase);
        let m = &links.metrics;
        let labels = [record.provider.as_str(), record.model.as_str()];
        m.cost_usd.with_label_values(&labels).inc_by(increase.usd);
        let kinds = [("input", increase.input), ("output", increase.output)];
        for (kind, n) in kinds {
            m.tokens
                .with_label_values(&[labels[0], labels[1], kind])
                .inc_by(n);
        }
        let control = &links.control;
        let today = control.add_spent(&record.project_id, increase.usd, at);
        if self.halted {
            return None;
        }
        let exceeded = control.over_budget(&record.project_id, record.cost_usd, today)?;
        self.halted = true;
        Some(exceeded)
    }

    /// The session runs again: a budget may stop it again.
    pub fn running(&mut self) {
        self.halted = false;
    }

    /// The ledger writes to go with the next flush.
    pub fn take_ops(&mut self, record: &SessionRecord) -> Vec<WriteOp> {
        for (day, t) in std::mem::take(&mut self.unflushed) {
            let row = self.in_flight.entry(day).or_default();
            *row = row.plus(t);
        }
        self.in_flight
            .iter()
            .map(|(day, t)| {
                WriteOp::AddSpend(Box::new(Spend {
                    project_id: record.project_id.clone(),
                    day: day.clone(),
                    session_id: record.session_id.clone(),
                    usd: t.usd,
                    input_tokens: t.input,
                    output_tokens: t.output,
                }))
            })
            .collect()
    }

    /// The flush that carried `take_ops` is committed.
    pub fn stored(&mut self) {
        self.in_flight.clear();
    }

    /// It failed (or never went): its writes go with the next one. The session record is written whole
    /// every time, so the ledger and the record stay in step.
    pub fn not_stored(&mut self) {
        for (day, t) in std::mem::take(&mut self.in_flight) {
            let row = self.unflushed.entry(day).or_default();
            *row = row.plus(t);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::messages::wire::AgentStatus;

    fn record() -> SessionRecord {
        SessionRecord {
            model: "m".into(),
            ..SessionRecord::new("p-1", "p", "claude", AgentStatus::Running, 0)
        }
    }

    fn t(usd: f64, input: u64) -> Totals {
        Totals {
            usd,
            input,
            output: 0,
        }
    }

    #[test]
    fn each_run_counts_from_zero_and_adds_to_the_session() {
        let (mut s, mut r) = (SessionSpend::default(), record());
        assert_eq!(s.apply(&mut r, Some(1), t(0.5, 100)), t(0.5, 100));
        assert_eq!(s.apply(&mut r, Some(1), t(0.75, 150)), t(0.25, 50));
        // The follow-up's process starts again from zero.
        assert_eq!(s.apply(&mut r, Some(2), t(0.25, 40)), t(0.25, 40));
        assert_eq!((r.cost_usd, r.input_tokens), (1.0, 190));
    }

    #[test]
    fn untagged_totals_are_the_sessions_own_and_only_increases_are_spend() {
        let (mut s, mut r) = (SessionSpend::default(), record());
        assert_eq!(s.apply(&mut r, None, t(1.0, 10)), t(1.0, 10));
        assert_eq!(s.apply(&mut r, None, t(1.0, 10)), Totals::default());
        assert_eq!(s.apply(&mut r, None, t(0.5, 5)), Totals::default());
        assert_eq!(r.cost_usd, 0.5, "taken as the sender says");
        assert_eq!(s.apply(&mut r, None, t(0.75, 5)), t(0.25, 0));
    }

    #[test]
    fn ledger_writes_wait_for_their_commit_and_come_back_after_a_failure() {
        let (mut s, r) = (SessionSpend::default(), record());
        s.unflushed.insert("2026-01-01".into(), t(1.0, 1));
        assert_eq!(s.take_ops(&r).len(), 1);
        s.not_stored();
        s.unflushed.entry("2026-01-01".into()).or_default().usd += 0.5;
        let ops = s.take_ops(&r);
        match &ops[..] {
            [WriteOp::AddSpend(sp)] => assert_eq!(sp.usd, 1.5),
            other => panic!("{other:?}"),
        }
        s.stored();
        assert!(s.take_ops(&r).is_empty());
    }
}
