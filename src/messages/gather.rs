//! An ingest batch's answer, gathered from the sessions that each took a share of it.
//!
//! A batch is split over routers and then over sessions. Each router share travels as a [`Batch`] inside
//! its `Ingest`; the router opens it and hands each session a [`ShareReply`] inside its `Deliver`. The
//! sender holds one [`Answer`], fired once, when the last share has answered: the shares hold the gathered
//! outcome together (an `Arc`), and its drop sends it. So a batch costs one channel back to its sender, not
//! a channel per router and per session plus the router's answer in between, and the sessions' answers
//! wake no one until the last.
//!
//! What nobody answered still counts, as it did when each share had a channel of its own: a share dropped
//! unanswered (its session stopped with it queued, or was never there) is ignored, as the original ignored
//! events for a session it did not hold; a router share dropped unopened (the router's mailbox closed)
//! makes the batch fail with `ShuttingDown`.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::sync::oneshot;

use crate::error::CommandError;
use crate::messages::commands::IngestOutcome;
use crate::messages::wire::SidecarEvent;

/// What a batch came to.
pub type Outcome = Result<IngestOutcome, CommandError>;

/// Events counted per kind, in `SidecarEvent::KINDS` order.
pub type Kinds = [u64; SidecarEvent::KINDS.len()];

/// Where a gathered batch's counts go once it is answered (the engine's metrics).
pub trait Tally: Send + Sync {
    /// `accepted`: the events of the shares that were applied (or failed), per kind; `ignored`: the rest.
    fn tally(&self, accepted: &Kinds, ignored: u64);
}

/// Starts gathering a batch: router shares are cut from the `Gathering` (`batch`); the `Answer` resolves
/// once the `Gathering` and every share cut from it are gone.
pub fn gather() -> (Gathering, Answer) {
    let (tx, rx) = oneshot::channel();
    let gather = Gather(Mutex::new(State {
        outcome: IngestOutcome::default(),
        accepted: Kinds::default(),
        first_error: None,
        tally: None,
        answer: Some(tx),
    }));
    (Gathering(Arc::new(gather)), Answer(rx))
}

/// The sender's side of a batch being gathered; dropping it unused answers an empty outcome.
pub struct Gathering(Arc<Gather>);

impl Gathering {
    /// One router's share of the batch, to travel in its `Ingest`.
    pub fn batch(&self) -> Batch {
        Batch(Some(self.0.clone()))
    }
}

/// One router's share of a batch (see the module doc). Dropped unopened, the batch fails with
/// `ShuttingDown`: the router never saw it.
pub struct Batch(Option<Arc<Gather>>);

impl Batch {
    /// The router took its share: `tally` is told the batch's counts once it is answered.
    pub fn open(mut self, tally: &Arc<dyn Tally>) -> Opened {
        let gather = self.0.take().expect("a batch is opened once");
        gather.with(|state| {
            state.tally.get_or_insert_with(|| tally.clone());
        });
        Opened(gather)
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        if let Some(gather) = self.0.take() {
            gather.with(|state| {
                state.first_error.get_or_insert(CommandError::ShuttingDown);
            });
        }
    }
}

impl std::fmt::Debug for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Batch")
    }
}

/// A router's opened share: it cuts one `ShareReply` per session from it.
pub struct Opened(Arc<Gather>);

impl Opened {
    /// A session's share of `count` events, `kinds` of them per kind.
    pub fn share(&self, count: usize, kinds: Kinds) -> ShareReply {
        ShareReply {
            gather: self.0.clone(),
            count,
            kinds,
            answered: false,
        }
    }

    /// `count` events the router ignored itself (their session or project is being purged).
    pub fn ignored(&self, count: usize) {
        self.0.with(|state| state.outcome.ignored += count);
    }
}

/// A session's answer for its share of a batch. Dropped unanswered, the share counts as ignored.
pub struct ShareReply {
    gather: Arc<Gather>,
    count: usize,
    kinds: Kinds,
    answered: bool,
}

impl ShareReply {
    /// The share was applied (`Ok`), or applied and not stored as asked (`Err`): either way accepted.
    pub fn answer(mut self, result: Result<(), CommandError>) {
        self.answered = true;
        let (count, kinds) = (self.count, self.kinds);
        self.gather.with(|state| {
            state.outcome.accepted += count;
            for (total, n) in state.accepted.iter_mut().zip(kinds) {
                *total += n;
            }
            if let Err(e) = result {
                state.first_error.get_or_insert(e);
            }
        });
    }
}

impl Drop for ShareReply {
    fn drop(&mut self) {
        if !self.answered {
            let count = self.count;
            self.gather.with(|state| state.outcome.ignored += count);
        }
    }
}

impl std::fmt::Debug for ShareReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareReply")
            .field("count", &self.count)
            .finish()
    }
}

/// What the sender awaits: the batch's outcome, once every share answered.
#[must_use = "the batch's outcome comes from awaiting it"]
pub struct Answer(oneshot::Receiver<Outcome>);

impl Future for Answer {
    type Output = Outcome;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        // The gather always sends as it drops; a closed channel would mean it never existed.
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(CommandError::ShuttingDown)))
    }
}

/// The outcome being gathered. Its shares answer from the arbiters of their sessions, so a lock guards it;
/// a batch's shares rarely answer at the same instant.
struct Gather(Mutex<State>);

struct State {
    outcome: IngestOutcome,
    accepted: Kinds,
    first_error: Option<CommandError>,
    tally: Option<Arc<dyn Tally>>,
    answer: Option<oneshot::Sender<Outcome>>,
}

impl Gather {
    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// The last share is gone: the counts go to the tally and the outcome to the sender.
impl Drop for Gather {
    fn drop(&mut self) {
        let state = self.0.get_mut().unwrap_or_else(PoisonError::into_inner);
        if let Some(tally) = &state.tally {
            tally.tally(&state.accepted, state.outcome.ignored as u64);
        }
        let outcome = match state.first_error.take() {
            Some(e) => Err(e),
            None => Ok(state.outcome),
        };
        if let Some(answer) = state.answer.take() {
            let _ = answer.send(outcome);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Counts(Mutex<(Kinds, u64)>);

    impl Tally for Counts {
        fn tally(&self, accepted: &Kinds, ignored: u64) {
            let mut c = self.0.lock().unwrap();
            for (t, n) in c.0.iter_mut().zip(accepted) {
                *t += n;
            }
            c.1 += ignored;
        }
    }

    fn now(answer: Answer) -> Option<Outcome> {
        futures_util::FutureExt::now_or_never(answer)
    }

    #[test]
    fn the_answer_comes_once_every_share_has_answered_or_gone() {
        let counts = Arc::new(Counts::default());
        let tally: Arc<dyn Tally> = counts.clone();
        let (gathering, answer) = gather();
        let opened = gathering.batch().open(&tally);
        drop(gathering);
        let applied = opened.share(3, [3, 0, 0]);
        let gone = opened.share(2, [1, 1, 0]);
        opened.ignored(4);
        drop(opened);
        applied.answer(Ok(()));
        let mut answer = answer;
        assert!(
            futures_util::FutureExt::now_or_never(&mut answer).is_none(),
            "one share is still out"
        );
        drop(gone);
        let outcome = now(answer).expect("answered").expect("no error");
        assert_eq!(
            outcome,
            IngestOutcome {
                accepted: 3,
                ignored: 6
            }
        );
        assert_eq!(*counts.0.lock().unwrap(), ([3, 0, 0], 6));
    }

    #[test]
    fn a_failed_share_is_accepted_and_its_error_is_the_batch_answer() {
        let tally: Arc<dyn Tally> = Arc::new(Counts::default());
        let (gathering, answer) = gather();
        let (one, two) = (gathering.batch(), gathering.batch());
        drop(gathering);
        let (one, two) = (one.open(&tally), two.open(&tally));
        one.share(1, [1, 0, 0])
            .answer(Err(CommandError::Storage("x".into())));
        two.share(2, [2, 0, 0]).answer(Ok(()));
        drop((one, two));
        assert!(matches!(
            now(answer).expect("answered"),
            Err(CommandError::Storage(_))
        ));
    }

    #[test]
    fn a_router_share_dropped_unopened_fails_the_batch_as_shutting_down() {
        let (gathering, answer) = gather();
        drop(gathering.batch());
        drop(gathering);
        assert!(matches!(
            now(answer).expect("answered"),
            Err(CommandError::ShuttingDown)
        ));
    }
}
