//! The lease manager: every third of a lease TTL it renews the leases this node holds, writes its
//! membership record, and moves partitions towards their preferred owners among the live nodes (rendezvous
//! hashing): it acquires the free partitions it should own and releases the ones a live peer should. The
//! partitions it holds are published on a watch channel, which the ingest consumers follow.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::future::BoxFuture;

use tokio::sync::watch;

use super::error::LeaseError;
use super::lease::{Holder, Lease, Leases};
use super::members::{Members, NodeInfo};
use super::metrics::ClusterMetrics;
use super::partition::{preferred_owner, Partition};

/// The leases this node holds, by partition.
pub type Owned = BTreeMap<Partition, Lease>;

/// The partitions whose projects have data in this node's engine. A node keeps those even when a peer
/// would be their preferred owner: its sessions live in its own store, and handing the partition over
/// would strand them there.
pub type Pinned = Box<dyn Fn() -> BoxFuture<'static, BTreeSet<Partition>> + Send + Sync>;

pub struct LeaseManager {
    leases: Leases,
    members: Members,
    me: Holder,
    partitions: u32,
    held: Owned,
    owned: watch::Sender<Owned>,
    metrics: ClusterMetrics,
    pinned: Option<Pinned>,
}

impl LeaseManager {
    pub fn new(
        leases: Leases,
        members: Members,
        me: Holder,
        partitions: u32,
        metrics: ClusterMetrics,
    ) -> LeaseManager {
        LeaseManager {
            leases,
            members,
            me,
            partitions,
            held: Owned::new(),
            owned: watch::Sender::new(Owned::new()),
            metrics,
            pinned: None,
        }
    }

    /// Keeps the partitions `pinned` answers (see `Pinned`) instead of handing them to a peer.
    pub fn with_pinned(mut self, pinned: Pinned) -> LeaseManager {
        self.pinned = Some(pinned);
        self
    }

    /// The partitions held, as they change.
    pub fn subscribe(&self) -> watch::Receiver<Owned> {
        self.owned.subscribe()
    }

    /// How often `tick` runs: three renewals fit in one TTL, so one lost round trip loses nothing.
    pub fn period(&self) -> Duration {
        self.leases.ttl() / 3
    }

    /// Runs `tick` every period until `stop` turns true, then releases every lease and leaves.
    pub async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut interval = tokio::time::interval(self.period());
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = interval.tick() => self.tick().await,
                // Only ever set to true; an error means the cluster handle is gone: stop as well.
                _ = stop.changed() => break,
            }
        }
        self.leave().await;
    }

    /// One round: renew, heartbeat, rebalance, publish.
    pub async fn tick(&mut self) {
        self.renew().await;
        self.announce().await;
        match self.members.live().await {
            Ok(live) => self.rebalance(&live).await,
            Err(e) => tracing::warn!(error = %e, "cluster: cannot list live nodes"),
        }
        self.publish();
    }

    /// Writes this node's membership record (alive for one TTL).
    pub async fn announce(&self) {
        let node = NodeInfo {
            node_id: self.me.node_id.clone(),
            url: self.me.url.clone(),
            partitions: self.held.keys().copied().collect(),
            alive: true,
        };
        if let Err(e) = self.members.heartbeat(&node).await {
            tracing::warn!(error = %e, "cluster: heartbeat failed");
        }
    }

    async fn renew(&mut self) {
        let ttl = self.leases.ttl();
        let held: Vec<Lease> = self.held.values().cloned().collect();
        for lease in held {
            match self.leases.renew(&lease, &self.me).await {
                Ok(renewed) => {
                    self.held.insert(lease.partition, renewed);
                }
                Err(LeaseError::Unavailable { message, .. }) if lease.is_fresh(ttl) => {
                    tracing::warn!(partition = lease.partition, %message, "cluster: lease renewal failed; retrying");
                }
                Err(e) => {
                    tracing::warn!(partition = lease.partition, error = %e, "cluster: lease lost");
                    self.held.remove(&lease.partition);
                    self.metrics
                        .lease_changes
                        .with_label_values(&["lost"])
                        .inc();
                }
            }
        }
        // Stop acting on a partition as soon as it is lost, before trying to take others.
        self.publish();
    }

    async fn rebalance(&mut self, live: &[NodeInfo]) {
        let pinned = match &self.pinned {
            Some(pinned) => pinned().await,
            None => BTreeSet::new(),
        };
        let mut names: Vec<&str> = live.iter().map(|n| n.node_id.as_str()).collect();
        if !names.contains(&self.me.node_id.as_str()) {
            names.push(&self.me.node_id);
        }
        for partition in 0..self.partitions {
            let preferred = preferred_owner(partition, &names);
            let mine = preferred == Some(self.me.node_id.as_str());
            match (mine, self.held.get(&partition).cloned()) {
                (true, None) => match self.leases.acquire(partition, &self.me).await {
                    Ok(lease) => {
                        tracing::info!(
                            partition,
                            token = lease.token,
                            "cluster: partition acquired"
                        );
                        self.held.insert(partition, lease);
                        self.metrics
                            .lease_changes
                            .with_label_values(&["acquired"])
                            .inc();
                    }
                    Err(LeaseError::Held { .. }) => {
                        self.metrics
                            .lease_changes
                            .with_label_values(&["refused"])
                            .inc();
                    }
                    Err(e) => tracing::warn!(partition, error = %e, "cluster: cannot acquire"),
                },
                (false, Some(lease)) if !pinned.contains(&partition) => {
                    // Stop applying first, then hand over.
                    self.held.remove(&partition);
                    self.publish();
                    if let Err(e) = self.leases.release(&lease).await {
                        tracing::warn!(partition, error = %e, "cluster: release failed; it expires instead");
                    }
                    tracing::info!(
                        partition,
                        "cluster: partition released to its preferred owner"
                    );
                    self.metrics
                        .lease_changes
                        .with_label_values(&["released"])
                        .inc();
                }
                _ => {}
            }
        }
    }

    fn publish(&self) {
        self.owned.send_if_modified(|owned| {
            let changed = owned.keys().ne(self.held.keys());
            *owned = self.held.clone();
            changed
        });
    }

    /// A clean stop: give every partition back and drop out of the membership at once.
    async fn leave(&mut self) {
        let held = std::mem::take(&mut self.held);
        self.publish();
        for lease in held.values() {
            if let Err(e) = self.leases.release(lease).await {
                tracing::warn!(partition = lease.partition, error = %e, "cluster: release on stop failed");
            }
        }
        if let Err(e) = self.members.leave(&self.me.node_id).await {
            tracing::warn!(error = %e, "cluster: leaving failed");
        }
    }
}
