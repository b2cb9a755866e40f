//! Noticing an owner's consumer that stopped delivering what the stream holds of its partition. The
//! applier finds a lost or taken delivery by the missing delivery number (src/cluster/applier.rs), but only
//! once a later delivery arrives: when the lost one was the partition's last message, none does, and the
//! acknowledged message would wait unapplied until the partition's next ingest (reads of the partition
//! answer 503 all that time). So while its consumer is quiet the applier looks, now and then, whether the
//! stream holds a message of the partition after its progress; when two looks in a row find one, with no
//! delivery between them and the progress unmoved, the consumer missed it, and is replaced by one starting
//! after the progress again (unless it is paused in JetStream: held on purpose). A delivery merely slow to
//! come costs a replaced consumer, never a message.

/// The looks of one consumer's quiet spells.
#[derive(Debug)]
pub struct Stall {
    /// The delivery number the consumer had reached at the last tick.
    delivered: u64,
    /// The progress the last look found a message of the partition waiting after.
    behind: Option<u64>,
}

impl Stall {
    /// For a consumer that has delivered up to `delivered`.
    pub fn new(delivered: u64) -> Self {
        Self {
            delivered,
            behind: None,
        }
    }

    /// At a tick: whether the consumer delivered nothing since the last one (then look at the stream).
    pub fn quiet(&mut self, delivered: u64) -> bool {
        if delivered == self.delivered {
            return true;
        }
        self.delivered = delivered;
        self.behind = None;
        false
    }

    /// After a look at a quiet consumer: whether the stream holds a message of the partition after
    /// `progress` (`waiting`). Answers whether the consumer stalled: the previous look found one waiting
    /// after the same progress, and nothing was delivered since.
    pub fn looked(&mut self, progress: u64, waiting: bool) -> bool {
        let before = std::mem::replace(&mut self.behind, waiting.then_some(progress));
        waiting && before == Some(progress)
    }
}

#[cfg(test)]
mod tests {
    use super::Stall;

    #[test]
    fn a_message_waiting_after_the_progress_at_two_quiet_looks_in_a_row_is_a_stall() {
        let mut stall = Stall::new(3);
        assert!(stall.quiet(3));
        assert!(
            !stall.looked(7, true),
            "one look may catch a delivery on its way"
        );
        assert!(stall.quiet(3));
        assert!(stall.looked(7, true));
    }

    #[test]
    fn a_delivery_or_a_moved_progress_between_the_looks_is_no_stall() {
        let mut stall = Stall::new(3);
        assert!(stall.quiet(3));
        assert!(!stall.looked(7, true));
        // Delivered since: the consumer is alive, and the next look starts over.
        assert!(!stall.quiet(4));
        assert!(stall.quiet(4));
        assert!(!stall.looked(8, true));
        // The progress moved (the delivery was applied) though the tick saw no new delivery number.
        assert!(stall.quiet(4));
        assert!(!stall.looked(9, true));
        assert!(stall.quiet(4));
        assert!(stall.looked(9, true));
    }

    #[test]
    fn nothing_waiting_after_the_progress_is_no_stall() {
        let mut stall = Stall::new(0);
        assert!(stall.quiet(0));
        assert!(!stall.looked(5, false));
        assert!(stall.quiet(0));
        assert!(!stall.looked(5, false));
        // Nothing was waiting at the previous look: a message that came since gets its own look first.
        assert!(stall.quiet(0));
        assert!(!stall.looked(5, true));
    }
}
