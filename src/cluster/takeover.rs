//! Taking a partition over from another node: rebuild it from JetStream before applying anything. A node
//! about to apply a partition another node applied last (src/cluster/appliers.rs) imports the partition's
//! last snapshot (src/cluster/snapshot.rs) into its store and replays the ingest stream from just after
//! the snapshot, so what the previous owner applied and lost with its disk is applied again here, once.
//!
//! Sessions the snapshot does not hold (started after it) are created here from their start, which their
//! owner put in the stream (src/cluster/ingest.rs `Entry::Started`), or, lacking one, from what their
//! events say of them, so their acknowledged messages are kept. SeqIds continue without reuse: an
//! imported session's next seqId is above the ceiling the snapshot carries plus every event of the replay
//! plus one reservation block, which bounds whatever the lost owner handed out after the snapshot for
//! events it received from the stream.
//!
//! Sessions purged in the replay (`Entry::Purged`) are not imported, from the snapshot or the stream: the
//! owner deleted them before it died, and the replay deletes whatever their replayed start brings back.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use async_nats::jetstream::consumer::{pull, AckPolicy, DeliverPolicy, PullConsumer};
use async_nats::jetstream::stream;
use futures_util::StreamExt;

use super::error::ClusterError;
use super::ingest::{subject, Entry};
use super::partition::Partition;
use super::snapshot::Snapshots;
use crate::engine::project_of_session;
use crate::engine::Engine;
use crate::engine::StoredSession;
use crate::messages::wire::{now_ms, AgentStatus};
use crate::storage::SessionRecord;

/// What a takeover rebuilt.
#[derive(Debug, Default)]
pub struct Rebuilt {
    /// The stream sequence the replay starts after (the snapshot's; 0 without one).
    pub through: u64,
    /// Sessions written into this node's store.
    pub imported: usize,
}

/// Rebuilds `partition` on this node: imports its last snapshot and the sessions the stream names after
/// it. Answers what it did; the caller replays the stream from just after `Rebuilt::through`.
pub async fn rebuild(
    stream: &stream::Stream,
    snapshots: &Snapshots,
    engine: &Engine,
    partition: Partition,
) -> Result<Rebuilt, ClusterError> {
    let snapshot = snapshots.load(partition).await?;
    let through = snapshot.as_ref().map_or(0, |s| s.through);
    let tail = read_tail(stream, partition, through).await?;
    let mut sessions = snapshot.map(|s| s.sessions).unwrap_or_default();
    // Purged after the snapshot: not brought back (the replay then deletes whatever its starts import).
    sessions.retain(|s| !tail.purged.contains(&s.record.session_id));
    let mut started = tail.started;
    for (session_id, first_at) in tail.sessions {
        if sessions.iter().any(|s| s.record.session_id == session_id) {
            continue;
        }
        if let Some(new) = started
            .remove(&session_id)
            .or_else(|| named_by_the_stream(&session_id, first_at))
        {
            sessions.push(new);
        }
    }
    // Started after the snapshot, no event of theirs yet.
    let fresh: Vec<StoredSession> = started
        .into_values()
        .filter(|s| {
            !sessions
                .iter()
                .any(|held| held.record.session_id == s.record.session_id)
        })
        .collect();
    sessions.extend(fresh);
    let margin = engine.config().storage.seq_block + tail.events;
    let imported = engine
        .import_sessions(sessions, margin)
        .await
        .map_err(|e| ClusterError::jetstream("importing a snapshot", e))?;
    Ok(Rebuilt { through, imported })
}

/// The replay's events, counted, and the sessions they name with the time of the first.
struct Tail {
    events: u64,
    sessions: BTreeMap<String, i64>,
    /// Sessions whose start the replay carries, as their owner recorded them then.
    started: BTreeMap<String, StoredSession>,
    /// Sessions a purge in the replay removed; events after it name them in vain, as on their owner.
    purged: BTreeSet<String>,
}

/// Reads the partition's stream after `through` once, without acknowledging anything, through a consumer
/// of its own that is deleted when the read is done.
async fn read_tail(
    stream: &stream::Stream,
    partition: Partition,
    through: u64,
) -> Result<Tail, ClusterError> {
    let failed = |e: &dyn std::fmt::Display| ClusterError::jetstream("reading the replay", e);
    // The inactivity threshold only cleans up after a node that dies mid-read or a delete that fails.
    let consumer: PullConsumer = stream
        .create_consumer(pull::Config {
            filter_subject: subject(partition),
            deliver_policy: DeliverPolicy::ByStartSequence {
                start_sequence: through + 1,
            },
            ack_policy: AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .map_err(|e| failed(&e))?;
    let read = read_from(&consumer).await;
    let name = &consumer.cached_info().name;
    if let Err(e) = stream.delete_consumer(name).await {
        tracing::debug!(partition, consumer = %name, error = %e, "cluster: the replay's consumer was not deleted; it expires");
    }
    read
}

/// Everything `consumer` had pending when it was made.
async fn read_from(consumer: &PullConsumer) -> Result<Tail, ClusterError> {
    let failed = |e: &dyn std::fmt::Display| ClusterError::jetstream("reading the replay", e);
    let mut tail = Tail {
        events: 0,
        sessions: BTreeMap::new(),
        started: BTreeMap::new(),
        purged: BTreeSet::new(),
    };
    let mut left = consumer.cached_info().num_pending;
    if left == 0 {
        return Ok(tail);
    }
    let mut messages = consumer.messages().await.map_err(|e| failed(&e))?;
    while left > 0 {
        let Some(message) = messages.next().await else {
            break;
        };
        let message = message.map_err(|e| failed(&e))?;
        left -= 1;
        let events = match Entry::read(&message.payload) {
            Ok(Entry::Events(events)) => events,
            Ok(Entry::Started { started }) => {
                tail.started
                    .insert(started.record.session_id.clone(), *started);
                continue;
            }
            Ok(Entry::Purged { purged }) => {
                for session_id in purged {
                    tail.sessions.remove(&session_id);
                    tail.started.remove(&session_id);
                    tail.purged.insert(session_id);
                }
                continue;
            }
            // A stop changes a status the replay sets; it names no session to create.
            Ok(Entry::Stopped { .. }) | Err(_) => continue,
        };
        let at = message
            .info()
            .map(|i| i64::try_from(i.published.unix_timestamp_nanos() / 1_000_000).unwrap_or(0))
            .unwrap_or(0);
        tail.events += events.len() as u64;
        for event in events {
            if !tail.purged.contains(event.session_id()) {
                tail.sessions
                    .entry(event.session_id().to_owned())
                    .or_insert(at);
            }
        }
    }
    Ok(tail)
}

/// A session the replay names that no snapshot holds: what the stream says of it (its id, its project)
/// and nothing more; the replay then fills in its messages, status and cost.
fn named_by_the_stream(session_id: &str, first_at: i64) -> Option<StoredSession> {
    let project = project_of_session(session_id)?;
    let at = if first_at == 0 { now_ms() } else { first_at };
    Some(StoredSession {
        record: SessionRecord::new(session_id, project, "", AgentStatus::Idle, at),
        messages: Vec::new(),
        seq_ceiling: 0,
    })
}
