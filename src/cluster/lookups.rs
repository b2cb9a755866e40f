//! Read-your-writes lookups, shared. Before the owner answers a read it asks JetStream how far the
//! partition's stream goes (`Cluster::caught_up`), so the read sees every batch acknowledged before it. A
//! lookup that began before a read arrived may predate that read's own 202, so a read can never reuse one
//! in flight; but every read arriving while one is in flight can share the next, which starts only once
//! the one in flight is answered. So a burst of reads on a partition costs at most one request in flight
//! plus one queued, instead of one request each, and each read still waits for a lookup sent after it
//! arrived.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use futures_util::future::{BoxFuture, FutureExt, Shared};

use super::partition::Partition;

/// The last stream sequence of a partition (0: nothing stored for it), or why it is unknown.
pub type Answer = Result<u64, String>;

type Lookup = Shared<BoxFuture<'static, Answer>>;

/// The next lookup of each partition, shared by the reads that wait for it.
#[derive(Default)]
pub struct Lookups {
    next: Mutex<HashMap<Partition, Queued>>,
}

struct Queued {
    lookup: Lookup,
    /// Set just before its request is sent: from then on a new read needs a later lookup.
    sent: Arc<AtomicBool>,
}

impl Lookups {
    /// The partition's last sequence as a request sent after this call began answers it. `send` makes
    /// that request; it is called only when no queued lookup can be shared.
    pub async fn last(
        &self,
        partition: Partition,
        send: impl FnOnce() -> BoxFuture<'static, Answer>,
    ) -> Answer {
        let lookup = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            match next.get(&partition) {
                Some(queued) if !queued.sent.load(Ordering::SeqCst) => queued.lookup.clone(),
                previous => {
                    let before = previous.map(|q| q.lookup.clone());
                    let sent = Arc::new(AtomicBool::new(false));
                    let mark = sent.clone();
                    let request = send();
                    let lookup = async move {
                        // One request in flight at a time: this one waits for the one before it.
                        if let Some(before) = before {
                            let _ = before.await;
                        }
                        mark.store(true, Ordering::SeqCst);
                        request.await
                    }
                    .boxed()
                    .shared();
                    next.insert(
                        partition,
                        Queued {
                            lookup: lookup.clone(),
                            sent,
                        },
                    );
                    lookup
                }
            }
        };
        lookup.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU64;
    use tokio::sync::Notify;

    /// A stream whose last sequence the test sets, answering once `gate` is opened; counts requests.
    #[derive(Clone, Default)]
    struct FakeStream {
        last: Arc<AtomicU64>,
        requests: Arc<AtomicU64>,
        gate: Arc<Notify>,
    }

    impl FakeStream {
        fn send(&self) -> impl FnOnce() -> BoxFuture<'static, Answer> {
            let me = self.clone();
            move || {
                async move {
                    // What the stream holds when the request arrives.
                    let last = me.last.load(Ordering::SeqCst);
                    me.requests.fetch_add(1, Ordering::SeqCst);
                    me.gate.notified().await;
                    Ok(last)
                }
                .boxed()
            }
        }
    }

    #[tokio::test]
    async fn a_read_never_shares_a_lookup_sent_before_it_arrived() {
        let lookups = Arc::new(Lookups::default());
        let stream = FakeStream::default();
        stream.last.store(1, Ordering::SeqCst);
        let first = tokio::spawn({
            let (lookups, send) = (lookups.clone(), stream.send());
            async move { lookups.last(7, send).await }
        });
        while stream.requests.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        // A batch is acknowledged while the first lookup is in flight; a read after it must see it.
        stream.last.store(2, Ordering::SeqCst);
        let second = tokio::spawn({
            let (lookups, send) = (lookups.clone(), stream.send());
            async move { lookups.last(7, send).await }
        });
        tokio::task::yield_now().await;
        stream.gate.notify_one();
        assert_eq!(first.await.unwrap(), Ok(1));
        while stream.requests.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        stream.gate.notify_one();
        assert_eq!(second.await.unwrap(), Ok(2));
    }

    #[tokio::test]
    async fn reads_arriving_during_a_lookup_share_the_next_one() {
        let lookups = Arc::new(Lookups::default());
        let stream = FakeStream::default();
        let first = tokio::spawn({
            let (lookups, send) = (lookups.clone(), stream.send());
            async move { lookups.last(3, send).await }
        });
        while stream.requests.load(Ordering::SeqCst) == 0 {
            tokio::task::yield_now().await;
        }
        stream.last.store(5, Ordering::SeqCst);
        let waiting: Vec<_> = (0..50)
            .map(|_| {
                let (lookups, send) = (lookups.clone(), stream.send());
                tokio::spawn(async move { lookups.last(3, send).await })
            })
            .collect();
        tokio::task::yield_now().await;
        stream.gate.notify_one();
        assert_eq!(first.await.unwrap(), Ok(0));
        while stream.requests.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
        stream.gate.notify_one();
        for read in waiting {
            assert_eq!(read.await.unwrap(), Ok(5));
        }
        assert_eq!(
            stream.requests.load(Ordering::SeqCst),
            2,
            "51 reads, two requests"
        );
    }
}
