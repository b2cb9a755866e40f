//! Cluster mode (`[cluster] enabled`, `serve --cluster`): several nodes share one NATS JetStream, which is
//! both the replicated log and the coordination service. Projects hash into partitions (`partition.rs`);
//! each partition is owned by one node at a time through a lease in a JetStream key-value bucket
//! (`lease.rs`), spread over the live nodes (`members.rs`) by the lease manager (`manager.rs`). Requests
//! go to the owner (`forward.rs`), ingest through JetStream (`ingest.rs`), and live events from every
//! node to every node (`events.rs`); project and health lists cover every node (`lists.rs`). Each
//! partition's owner applies the stream through a consumer of its own (`applier.rs`) and snapshots it to
//! JetStream (`snapshot.rs`); a node taking a partition another node applied last (`appliers.rs`)
//! rebuilds it from that snapshot and the stream after it (`takeover.rs`). Starts, purges and stops go
//! into the stream too (`commands.rs`), so a new owner replays them in order with the ingest.
//!
//! This module sits beside the engine, not inside it: a node's engine and redb store stay what they are
//! in single-node mode, and the cluster only decides which node's engine a project's work goes to.
//! Single-node mode never touches this module. See docs/CLUSTER.md for the design and its failure modes.

mod applier;
mod appliers;
mod commands;
mod config;
mod error;
mod events;
pub mod forward;
pub mod ingest;
mod lease;
mod lists;
mod lookups;
mod manager;
mod members;
mod metrics;
pub mod partition;
mod snapshot;
mod stall;
mod takeover;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::stream::LastRawMessageErrorKind;
use tokio::sync::watch;

pub use config::ClusterConfig;
pub use error::{ClusterError, LeaseError};
pub use lease::{Holder, Lease, Leases};
pub use manager::{LeaseManager, Owned};
pub use members::{Members, NodeInfo};
pub use metrics::ClusterMetrics;
pub use partition::Partition;

/// The key-value bucket of partition leases.
pub const LEASE_BUCKET: &str = "agent_store_leases";
/// The key-value bucket of live nodes.
pub const NODE_BUCKET: &str = "agent_store_nodes";

/// Whether `s` can be one token of a NATS subject and a key: letters, digits, '_' and '-'.
pub fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// What `GET /v1/cluster` answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ClusterStatus {
    pub node_id: String,
    /// The partitions this node holds leases for.
    pub partitions: Vec<Partition>,
    /// Every live node, and nodes this one has seen that stopped heartbeating (`alive: false`).
    pub nodes: Vec<NodeInfo>,
}

/// Where a project's requests are answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    Local,
    Remote(Holder),
}

/// A node's membership in the cluster: its NATS connection and its lease manager.
#[derive(Clone)]
pub struct Cluster {
    inner: Arc<Inner>,
}

struct Inner {
    config: ClusterConfig,
    me: Holder,
    client: async_nats::Client,
    js: jetstream::Context,
    leases: Leases,
    members: Members,
    /// The ingest stream, and how far this node applied each partition of it.
    stream: async_nats::jetstream::stream::Stream,
    applied: Arc<applier::Applied>,
    /// Reads' lookups of how far each partition's stream goes, shared (`lookups.rs`).
    lookups: lookups::Lookups,
    owned: watch::Receiver<Owned>,
    stop: watch::Sender<bool>,
    manager: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Turns true on a clean stop, before the leases are released: the appliers' final snapshots.
    closing: watch::Sender<bool>,
    appliers: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// Every node seen alive, so one that died still shows (as not alive).
    seen: Mutex<Vec<NodeInfo>>,
    metrics: ClusterMetrics,
}

impl Cluster {
    /// Connects to NATS, opens (creating when absent) the lease and membership buckets and the ingest
    /// stream, answers forwarded requests, and starts the lease manager and the appliers of the partitions
    /// it comes to hold; returns once the first lease round is done. `http_addr` is where this node's API
    /// listens, for the default node id and URL and for replaying forwarded requests.
    pub async fn start(
        config: &ClusterConfig,
        http_addr: SocketAddr,
        engine: crate::engine::Engine,
    ) -> Result<Cluster, ClusterError> {
        let node_id = if config.node_id.is_empty() {
            default_node_id(http_addr)
        } else {
            config.node_id.clone()
        };
        let url = if config.advertise_url.is_empty() {
            format!("http://{http_addr}")
        } else {
            config.advertise_url.clone()
        };
        let client = connect(config, &node_id).await?;
        let js = jetstream::new(client.clone());
        let ttl = Duration::from_secs(config.lease_ttl_secs());
        let leases = Leases::open(js.clone(), LEASE_BUCKET, ttl, config.replicas).await?;
        let members = Members::open(js.clone(), NODE_BUCKET, ttl, config.replicas).await?;
        let stream = ingest::open_stream(&js, config).await?;
        let snapshots = snapshot::Snapshots::open(&js, config).await?;
        let last_appliers = appliers::Appliers::open(&js, config.replicas).await?;
        let metrics = ClusterMetrics::new(&engine.metrics().registry);
        forward::serve(
            client.clone(),
            node_id.clone(),
            http_addr,
            config.forward_timeout,
            metrics.clone(),
        )
        .await?;
        let (stop, stopping) = watch::channel(false);
        events::start(
            client.clone(),
            engine.clone(),
            node_id.clone(),
            config.partitions,
            metrics.clone(),
            stopping.clone(),
        )
        .await?;
        lists::serve(client.clone(), &node_id, engine.clone(), stopping.clone()).await?;
        let me = Holder { node_id, url };
        let mut manager = LeaseManager::new(
            leases.clone(),
            members.clone(),
            me.clone(),
            config.partitions,
            metrics.clone(),
        )
        .with_pinned(pinned(engine.clone(), config.partitions));
        let owned = manager.subscribe();
        // Say this node is here and give nodes starting at the same moment one round to say so too, so the
        // first to start does not take every partition only to hand most of them over a moment later.
        manager.announce().await;
        tokio::time::sleep(manager.period()).await;
        manager.tick().await;
        // Starts, purges and stops go into the ingest stream before they are answered (commands.rs).
        let origin = format!("{}.{}", me.node_id, nonce());
        engine.record_commands_in(Arc::new(commands::Log {
            js: js.clone(),
            partitions: config.partitions,
            origin: origin.clone(),
            metrics: metrics.clone(),
        }));
        let applied = Arc::new(applier::Applied::default());
        let (closing, closed) = watch::channel(false);
        let appliers = tokio::spawn(applier::apply_owned(
            applier::Shared {
                stream: stream.clone(),
                engine,
                node_id: me.node_id.clone(),
                origin,
                ttl,
                batch: config.apply_batch,
                metrics: metrics.clone(),
                applied: applied.clone(),
                snapshots,
                appliers: last_appliers,
                closing: closed,
            },
            owned.clone(),
        ));
        let task = tokio::spawn(manager.run(stopping));
        tracing::info!(node = %me.node_id, url = %me.url, partitions = owned.borrow().len(), "cluster: joined");
        Ok(Cluster {
            inner: Arc::new(Inner {
                config: config.clone(),
                me,
                client,
                js,
                leases,
                members,
                stream,
                applied,
                lookups: Default::default(),
                owned,
                stop,
                manager: Mutex::new(Some(task)),
                closing,
                appliers: Mutex::new(Some(appliers)),
                seen: Mutex::new(Vec::new()),
                metrics,
            }),
        })
    }

    pub fn node_id(&self) -> &str {
        &self.inner.me.node_id
    }

    pub fn config(&self) -> &ClusterConfig {
        &self.inner.config
    }

    pub fn metrics(&self) -> &ClusterMetrics {
        &self.inner.metrics
    }

    pub fn client(&self) -> &async_nats::Client {
        &self.inner.client
    }

    pub fn jetstream(&self) -> &jetstream::Context {
        &self.inner.js
    }

    /// The leases this node holds, as they change.
    pub fn owned(&self) -> watch::Receiver<Owned> {
        self.inner.owned.clone()
    }

    /// The partition of a project.
    pub fn partition_of(&self, project_id: &str) -> Partition {
        partition::of_project(project_id, self.inner.config.partitions)
    }

    /// Where a project's requests go: this node, when it holds the project's partition (or the lease store
    /// says so), else the holder; `NoOwner` while nobody holds it.
    pub async fn route(&self, project_id: &str) -> Result<Route, ClusterError> {
        let partition = self.partition_of(project_id);
        if self.inner.owned.borrow().contains_key(&partition) {
            return Ok(Route::Local);
        }
        match self.inner.leases.holder(partition).await? {
            Some((holder, _)) if holder.node_id == self.inner.me.node_id => Ok(Route::Local),
            Some((holder, _)) => Ok(Route::Remote(holder)),
            None => Err(ClusterError::NoOwner { partition }),
        }
    }

    /// Waits (up to two lease TTLs) until every ingest batch JetStream acknowledged for the project's
    /// partition before this call has been applied here, so a read after a 202 sees what it acknowledged.
    /// Concurrent reads of a partition share one lookup sent after they arrived (`lookups.rs`).
    /// Answers whether it caught up; when the stream cannot say how far the partition goes, it did not.
    pub async fn caught_up(&self, project_id: &str) -> bool {
        let partition = self.partition_of(project_id);
        let stream = self.inner.stream.clone();
        let last = self
            .inner
            .lookups
            .last(partition, move || {
                Box::pin(async move {
                    match stream
                        .get_last_raw_message_by_subject(&ingest::subject(partition))
                        .await
                    {
                        Ok(message) => Ok(message.sequence),
                        // Nothing was ever ingested for the partition: nothing to wait for.
                        Err(e) if matches!(e.kind(), LastRawMessageErrorKind::NoMessageFound) => {
                            Ok(0)
                        }
                        Err(e) => Err(e.to_string()),
                    }
                })
            })
            .await;
        let last = match last {
            Ok(0) => return true,
            Ok(last) => last,
            Err(error) => {
                tracing::warn!(project_id, partition, %error, "cluster: cannot read how far the partition's ingest goes");
                return false;
            }
        };
        let within = self.inner.config.lease_ttl * 2;
        if self.inner.applied.wait(partition, last, within).await {
            return true;
        }
        tracing::warn!(
            project_id,
            partition,
            last,
            applied = self.inner.applied.through(partition),
            "cluster: the partition's acknowledged ingest is not applied here yet"
        );
        false
    }

    /// Forwards a request to `node` and returns its answer.
    pub async fn forward(
        &self,
        node: &str,
        request: forward::Forward,
    ) -> Result<forward::Answer, ClusterError> {
        forward::send(
            &self.inner.client,
            node,
            request,
            self.inner.config.forward_timeout,
            &self.inner.metrics,
        )
        .await
    }

    /// Publishes a sidecar batch to the ingest stream; answers once JetStream stored all of it.
    pub async fn ingest(
        &self,
        events: Vec<crate::messages::wire::SidecarEvent>,
    ) -> Result<crate::messages::commands::IngestOutcome, ClusterError> {
        ingest::publish(
            &self.inner.js,
            self.inner.config.partitions,
            events,
            &self.inner.metrics,
        )
        .await
    }

    /// Every project of the cluster: `local` (this node's) merged with every live peer's (`lists.rs`).
    pub async fn projects(
        &self,
        local: Vec<crate::messages::commands::ProjectSummary>,
    ) -> Result<Vec<crate::messages::commands::ProjectSummary>, ClusterError> {
        let mut all = vec![local];
        all.extend(self.gather(lists::List::Projects).await?);
        Ok(lists::merge_projects(all))
    }

    /// Every project's health in the cluster, highest attention first: `local` merged with every live
    /// peer's (`lists.rs`).
    pub async fn health(
        &self,
        local: Vec<crate::messages::wire::ProjectHealth>,
    ) -> Result<Vec<crate::messages::wire::ProjectHealth>, ClusterError> {
        let mut all = vec![local];
        all.extend(self.gather(lists::List::Health).await?);
        Ok(lists::merge_health(all))
    }

    async fn gather<T: serde::de::DeserializeOwned>(
        &self,
        list: lists::List,
    ) -> Result<Vec<Vec<T>>, ClusterError> {
        let peers: Vec<String> = self
            .inner
            .members
            .live()
            .await?
            .into_iter()
            .map(|n| n.node_id)
            .filter(|id| *id != self.inner.me.node_id)
            .collect();
        Ok(lists::gather(
            &self.inner.client,
            &peers,
            list,
            self.inner.config.forward_timeout,
        )
        .await)
    }

    /// This node, the partitions it holds, and every node it knows of.
    pub async fn status(&self) -> Result<ClusterStatus, ClusterError> {
        let live = self.inner.members.live().await?;
        let nodes = {
            let mut seen = self.inner.seen.lock().unwrap_or_else(|p| p.into_inner());
            seen.retain(|old| !live.iter().any(|n| n.node_id == old.node_id));
            for gone in seen.iter_mut() {
                gone.alive = false;
                gone.partitions.clear();
            }
            seen.extend(live.iter().cloned());
            seen.sort_by(|a, b| a.node_id.cmp(&b.node_id));
            seen.clone()
        };
        Ok(ClusterStatus {
            node_id: self.inner.me.node_id.clone(),
            partitions: self.inner.owned.borrow().keys().copied().collect(),
            nodes,
        })
    }

    /// Writes each owned partition's final snapshot (so a successor replays little), then releases this
    /// node's leases and leaves, so peers take its partitions at once. Idempotent.
    pub async fn stop(&self) {
        let _ = self.inner.closing.send(true);
        if let Some(appliers) = take(&self.inner.appliers) {
            // Past this the leases are released anyway: a successor then replays from an older snapshot.
            let patience = (self.inner.config.lease_ttl * 3).max(Duration::from_secs(10));
            if tokio::time::timeout(patience, appliers).await.is_err() {
                tracing::warn!("cluster: final snapshots not all written in time");
            }
        }
        let _ = self.inner.stop.send(true);
        if let Some(task) = take(&self.inner.manager) {
            let _ = task.await;
        }
        let _ = self.inner.client.flush().await;
    }
}

/// The partitions of the projects this node's engine knows (see `manager::Pinned`). When the engine
/// cannot answer, every partition counts as pinned: keeping a partition is safe, handing it over is not.
fn pinned(engine: crate::engine::Engine, partitions: u32) -> manager::Pinned {
    Box::new(move || {
        let engine = engine.clone();
        Box::pin(async move {
            match engine.projects().await {
                Ok(projects) => projects
                    .iter()
                    .map(|p| partition::of_project(&p.project_id, partitions))
                    .collect(),
                Err(_) => (0..partitions).collect(),
            }
        })
    })
}

async fn connect(
    config: &ClusterConfig,
    node_id: &str,
) -> Result<async_nats::Client, ClusterError> {
    let urls: Vec<&str> = config
        .nats_url
        .split(',')
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .collect();
    async_nats::ConnectOptions::new()
        .name(format!("agent-store {node_id}"))
        .connection_timeout(Duration::from_secs(5))
        .max_reconnects(None)
        .connect(urls.as_slice())
        .await
        .map_err(|e| ClusterError::Connect {
            url: config.nats_url.clone(),
            message: e.to_string(),
        })
}

/// Tells this run of the node from an earlier one under the same node id.
fn nonce() -> String {
    format!("{}-{}", std::process::id(), crate::messages::wire::now_ms())
}

/// `<host name>-<port>`, reduced to subject-safe characters.
fn default_node_id(addr: SocketAddr) -> String {
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "node".into());
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    format!("{host}-{}", addr.port())
}

/// The task a `Mutex<Option<_>>` holds, taken out once (a poisoned lock still gives it up).
fn take(slot: &Mutex<Option<tokio::task::JoinHandle<()>>>) -> Option<tokio::task::JoinHandle<()>> {
    slot.lock().unwrap_or_else(|p| p.into_inner()).take()
}
