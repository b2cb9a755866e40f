//! What can go wrong between a node and its cluster, as types the callers match on.

use super::partition::Partition;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("cannot connect to NATS at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("JetStream {what} failed: {message}")]
    JetStream { what: &'static str, message: String },
    #[error(transparent)]
    Lease(#[from] LeaseError),
    #[error("node {node} did not answer a forwarded request: {message}")]
    Forward { node: String, message: String },
    #[error("partition {partition} has no owner yet (a node is taking it over); retry shortly")]
    NoOwner {
        partition: super::partition::Partition,
    },
    #[error("JetStream did not store the batch for partition {partition}: {message}")]
    Publish {
        partition: super::partition::Partition,
        message: String,
    },
}

impl ClusterError {
    pub fn jetstream(what: &'static str, e: impl std::fmt::Display) -> ClusterError {
        ClusterError::JetStream {
            what,
            message: e.to_string(),
        }
    }
}

/// Why a lease could not be taken, kept or used.
#[derive(Debug, thiserror::Error)]
pub enum LeaseError {
    /// Another node holds the partition's lease.
    #[error("partition {partition} is leased to {holder}")]
    Held {
        partition: Partition,
        holder: String,
    },
    /// The lease this node held has been taken over (its revision, the fencing token, is no longer the
    /// latest): the node must stop writing for the partition.
    #[error("partition {partition}: lease {token} is no longer current (fenced)")]
    Fenced { partition: Partition, token: u64 },
    /// NATS did not answer in time or refused for another reason; the lease state is unknown.
    #[error("partition {partition}: lease store unavailable: {message}")]
    Unavailable {
        partition: Partition,
        message: String,
    },
}
