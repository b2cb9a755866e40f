//! The seqId ceilings a router holds for sessions that stopped through it (`Retire`) with everything
//! they handed out stored, until their project lets go of them. Plain data; the router does the I/O.
//!
//! Why: a finished session's last write used to drop its ceiling (`WriteOp::ReleaseSeq`), a random
//! `seq_ceilings` leaf per session inside a mass finish (100,000 sessions finishing together). Now a
//! session its project still holds leaves the ceiling in storage and hands it to its router as it stops;
//! the project drops it when it lets go (grace, clear, deactivation: `ReleaseCeiling`), outside the finish.
//! Meanwhile the ceiling is still a committed reservation whose seqIds above the last stored one were never
//! handed out, so an actor of the session brought back for late events or a command takes it over as its
//! own (`adopt`): it continues right after the last stored seqId, as if the ceiling had been dropped,
//! rather than above it (a gap) as after a crash. Whoever takes the ceiling out of here owns it: the
//! router drops it in storage (`release`), or an adopting actor keeps it as its reservation.

use std::collections::{HashMap, HashSet};

use super::arbiters::project_of;
use super::sparse::shrink_when_sparse;

#[derive(Default)]
pub struct HeldCeilings {
    /// sessionId → the ceiling its stopped actor left in storage.
    held: HashMap<String, u64>,
    /// Sessions whose project let go while their `Retire` answer was on its way: dropped as it comes.
    let_go: HashSet<String>,
}

impl HeldCeilings {
    /// A session stopped through its router (`Retire`), leaving `ceiling` in storage (None: it dropped
    /// its own, or reserved none). Answers a ceiling to drop now, if its project let go meanwhile.
    pub fn stopped(&mut self, session_id: &str, ceiling: Option<u64>) -> Option<u64> {
        let let_go = self.let_go.remove(session_id);
        let ceiling = ceiling?;
        if let_go {
            return Some(ceiling);
        }
        self.held.insert(session_id.to_owned(), ceiling);
        None
    }

    /// Its project let go of the session (`retiring`: the router waits for its `Retire` answer). Answers
    /// the ceiling to drop now; while the answer is on its way, it is dropped when it comes (`stopped`).
    pub fn release(&mut self, session_id: &str, retiring: bool) -> Option<u64> {
        let ceiling = self.take(session_id);
        if ceiling.is_none() && retiring {
            self.let_go.insert(session_id.to_owned());
        }
        ceiling
    }

    /// An actor of the session is brought back: it takes the ceiling over as its own reservation.
    pub fn adopt(&mut self, session_id: &str) -> Option<u64> {
        self.let_go.remove(session_id);
        self.take(session_id)
    }

    /// The session got an actor some other way (a restore reads its ceiling itself) or is deleted: the
    /// ceiling is no longer this table's to drop or hand over.
    pub fn forget(&mut self, session_id: &str) {
        self.adopt(session_id);
    }

    fn take(&mut self, session_id: &str) -> Option<u64> {
        let ceiling = self.held.remove(session_id);
        if ceiling.is_some() {
            shrink_when_sparse(&mut self.held);
        }
        ceiling
    }

    /// Every session of a purged project.
    pub fn forget_project(&mut self, project_id: &str) {
        self.held.retain(|id, _| project_of(id) != project_id);
        self.let_go.retain(|id| project_of(id) != project_id);
        shrink_when_sparse(&mut self.held);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.held.len() + self.let_go.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_ceiling_goes_to_the_first_of_its_release_and_an_adopting_actor() {
        let mut c = HeldCeilings::default();
        assert_eq!(c.stopped("p-1", Some(101)), None, "held");
        assert_eq!(
            c.adopt("p-1"),
            Some(101),
            "taken over by the actor brought back"
        );
        assert_eq!(
            c.release("p-1", false),
            None,
            "the adopting actor owns it now"
        );
        assert_eq!(c.stopped("p-1", Some(201)), None);
        assert_eq!(
            c.release("p-1", false),
            Some(201),
            "dropped when the project lets go"
        );
        assert_eq!(c.adopt("p-1"), None, "a later actor reads storage instead");
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn a_release_racing_the_retire_answer_drops_the_ceiling_when_it_comes() {
        let mut c = HeldCeilings::default();
        assert_eq!(c.release("p-1", true), None);
        assert_eq!(c.stopped("p-1", Some(101)), Some(101), "dropped at once");
        assert_eq!(c.adopt("p-1"), None);
        // Not retiring: nothing waits, nothing is remembered.
        assert_eq!(c.release("p-2", false), None);
        assert_eq!(c.stopped("p-2", Some(7)), None, "held");
        // An actor that dropped its own ceiling leaves nothing, and clears the request.
        assert_eq!(c.release("p-3", true), None);
        assert_eq!(c.stopped("p-3", None), None);
        assert_eq!(c.len(), 1);
    }

    #[test]
    fn a_forgotten_session_or_project_leaves_nothing_to_hand_over() {
        let mut c = HeldCeilings::default();
        c.stopped("a-1", Some(1));
        c.stopped("a-2", Some(2));
        c.stopped("b-1", Some(3));
        c.release("b-2", true);
        c.forget("a-1");
        assert_eq!(c.adopt("a-1"), None);
        c.forget_project("a");
        c.forget_project("b");
        assert_eq!(c.adopt("a-2"), None);
        assert_eq!(c.stopped("b-2", Some(4)), None, "no longer asked to drop");
        assert_eq!(c.adopt("b-1"), None);
        assert_eq!(c.adopt("b-2"), Some(4));
    }
}
