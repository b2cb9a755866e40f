//! Live events across nodes, so every node's `/v1/events` carries every project. A project's events are
//! made on the node that runs its sessions; that node publishes each of them, as its SSE frame taken apart
//! (event name, JSON data, and for `session.messages` its `<sessionId>:<seqId>` id), on core NATS subject
//! `agent_store.events.<partition>`. Every node subscribes to `agent_store.events.*` and puts what other
//! nodes published into its own broadcaster as `LiveEvent::Remote`, which journals and frames it like any
//! other event, so a client on any node sees it live and after a reconnect (`Last-Event-ID`).
//!
//! No loops: a node publishes only the events its own engine made (never a `Remote` one) and ignores what
//! it published itself. Live events are not the record (the owner's store and the ingest stream are), so
//! they go over core NATS, at most once: an event a slow node cannot take in time is dropped and counted
//! (`agent_store_cluster_events_total{outcome="dropped"}`), and a client that needs certainty re-reads.

use async_nats::HeaderMap;
use futures_util::StreamExt;
use tokio::sync::watch;

use super::error::ClusterError;
use super::metrics::ClusterMetrics;
use super::partition;
use crate::engine::{Engine, Subscription};
use crate::messages::commands::LiveEvent;
use crate::messages::sse;

const ORIGIN: &str = "Agent-Store-Origin";
const EVENT: &str = "Agent-Store-Event";
const PROJECT: &str = "Agent-Store-Project";
const ID: &str = "Agent-Store-Id";

/// The subject a partition's live events go out on.
pub fn subject(partition: partition::Partition) -> String {
    format!("agent_store.events.{partition}")
}

/// Carries this node's live events to the others and theirs into this node's streams, until `stop`.
pub async fn start(
    client: async_nats::Client,
    engine: Engine,
    node_id: String,
    partitions: u32,
    metrics: ClusterMetrics,
    stop: watch::Receiver<bool>,
) -> Result<(), ClusterError> {
    let incoming = client
        .subscribe("agent_store.events.*")
        .await
        .map_err(|e| ClusterError::jetstream("subscribing to live events", e))?;
    let local = engine
        .subscribe(None)
        .await
        .map_err(|e| ClusterError::jetstream("subscribing to this node's live events", e))?;
    let out = Outgoing {
        client,
        node_id: node_id.clone(),
        partitions,
        metrics: metrics.clone(),
    };
    tokio::spawn(out.run(local, stop.clone()));
    tokio::spawn(receive(incoming, engine, node_id, metrics, stop));
    Ok(())
}

struct Outgoing {
    client: async_nats::Client,
    node_id: String,
    partitions: u32,
    metrics: ClusterMetrics,
}

impl Outgoing {
    async fn run(self, mut local: Subscription, mut stop: watch::Receiver<bool>) {
        loop {
            let live = tokio::select! {
                live = local.next() => live,
                _ = stop.wait_for(|stopping| *stopping) => None,
            };
            let Some(live) = live else { return };
            let messages = match &live.event {
                // Another node's: it published it already.
                LiveEvent::Remote { .. } => continue,
                // This node's own subscription fell behind: those events never reach the others.
                LiveEvent::Lagged { missed, .. } => {
                    self.count("dropped", *missed);
                    continue;
                }
                LiveEvent::Messages { .. } => true,
                _ => false,
            };
            let Some(project) = live.event.project_id() else {
                continue;
            };
            let Some(frame) = live.frame.clone().or_else(|| sse::of(&live.event)) else {
                continue;
            };
            let Some(parts) = sse::parts(&frame) else {
                continue;
            };
            let mut headers = HeaderMap::new();
            headers.insert(ORIGIN, self.node_id.as_str());
            headers.insert(EVENT, parts.event);
            headers.insert(PROJECT, project);
            // A session's messages keep their resume id; other events get the receiving node's journal id.
            if let (true, Some(id)) = (messages, parts.id) {
                headers.insert(ID, id);
            }
            let to = subject(partition::of_project(project, self.partitions));
            match self
                .client
                .publish_with_headers(to, headers, parts.data)
                .await
            {
                Ok(()) => self.count("published", 1),
                Err(e) => {
                    tracing::warn!(%project, error = %e, "cluster: a live event could not be sent to the other nodes");
                    self.count("dropped", 1);
                }
            }
        }
    }

    fn count(&self, outcome: &str, n: u64) {
        self.metrics.events.with_label_values(&[outcome]).inc_by(n);
    }
}

/// Puts other nodes' events into this node's broadcaster, in the order they came.
async fn receive(
    mut incoming: async_nats::Subscriber,
    engine: Engine,
    node_id: String,
    metrics: ClusterMetrics,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let message = tokio::select! {
            message = incoming.next() => message,
            _ = stop.wait_for(|stopping| *stopping) => None,
        };
        let Some(message) = message else { return };
        let Some(event) = remote_event(&message, &node_id) else {
            continue;
        };
        if engine.publish_remote(event).await.is_err() {
            // The engine is stopping.
            return;
        }
        metrics.events.with_label_values(&["received"]).inc();
    }
}

/// The event another node published, or `None` for this node's own and for anything that would not
/// frame as one SSE event (a name or id that is not one clean line, data that is not one line).
fn remote_event(message: &async_nats::Message, me: &str) -> Option<LiveEvent> {
    let headers = message.headers.as_ref()?;
    let header = |name: &str| headers.get(name).map(|v| v.as_str());
    if header(ORIGIN)? == me {
        return None;
    }
    let event = header(EVENT).filter(|e| super::is_token(&e.replace('.', "_")))?;
    let project = header(PROJECT).filter(|p| crate::messages::validate::project_id(p).is_ok())?;
    let id = match header(ID) {
        Some(id) if id.bytes().any(|b| b == b'\n' || b == b'\r') => return None,
        id => id.map(str::to_owned),
    };
    if message.payload.contains(&b'\n') || message.payload.contains(&b'\r') {
        return None;
    }
    Some(LiveEvent::Remote {
        project_id: project.to_owned(),
        event: event.to_owned(),
        id,
        data: message.payload.clone(),
    })
}
