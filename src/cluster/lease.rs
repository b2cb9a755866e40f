//! Partition leases in a JetStream key-value bucket. One key per partition, its value naming the holder.
//! Acquire is a create (a write expecting no live entry for the key), renew is an update expecting the
//! revision the holder last wrote (compare-and-swap), and every write carries a per-message TTL, so a
//! holder that stops renewing loses the lease `lease_ttl` later without anyone deleting it.
//!
//! The revision a holder last wrote is its fencing token: only the latest revision can be updated, so a
//! node that was paused past its lease and wakes up finds its renew, and every write fenced by it, refused.

use std::time::{Duration, Instant};

use async_nats::header::{NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, NATS_MESSAGE_TTL};
use async_nats::jetstream::context::PublishErrorKind;
use async_nats::jetstream::kv::{self, Operation};
use async_nats::jetstream::{self, stream::StorageType};
use async_nats::HeaderMap;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::error::{ClusterError, LeaseError};
use super::partition::Partition;

/// What a lease's value says about its holder.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Holder {
    pub node_id: String,
    pub url: String,
}

/// A lease this node holds: the partition and the revision it last wrote (the fencing token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub partition: Partition,
    pub token: u64,
    /// When the write that produced `token` was sent: the lease is surely held until `ttl` after it.
    pub written_at: Instant,
}

impl Lease {
    /// Whether the lease is surely still held, by this node's clock: a node that could not renew in time
    /// stops acting on it before the store lets it expire.
    pub fn is_fresh(&self, ttl: Duration) -> bool {
        self.written_at.elapsed() < ttl
    }
}

/// The lease bucket.
#[derive(Clone)]
pub struct Leases {
    js: jetstream::Context,
    kv: kv::Store,
    ttl: Duration,
}

impl Leases {
    /// Opens (creating when absent) the bucket `bucket`, with per-message TTLs allowed.
    pub async fn open(
        js: jetstream::Context,
        bucket: &str,
        ttl: Duration,
        replicas: usize,
    ) -> Result<Leases, ClusterError> {
        let kv = open_bucket(&js, bucket, ttl, replicas).await?;
        Ok(Leases { js, kv, ttl })
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Takes the partition's lease when nobody holds it.
    pub async fn acquire(&self, partition: Partition, me: &Holder) -> Result<Lease, LeaseError> {
        let key = key(partition);
        let expected = match self.entry(partition).await? {
            None => 0,
            Some(entry) if entry.operation != Operation::Put => entry.revision,
            Some(entry) => {
                let holder = serde_json::from_slice::<Holder>(&entry.value)
                    .map(|h| h.node_id)
                    .unwrap_or_else(|_| "an unreadable holder".into());
                return Err(LeaseError::Held { partition, holder });
            }
        };
        self.write(&key, partition, me, expected)
            .await
            .map_err(|e| match e {
                LeaseError::Fenced { partition, .. } => LeaseError::Held {
                    partition,
                    holder: "a node that acquired it first".into(),
                },
                other => other,
            })
    }

    /// Extends a lease this node holds; `Fenced` when another node has taken it since.
    pub async fn renew(&self, lease: &Lease, me: &Holder) -> Result<Lease, LeaseError> {
        self.write(&key(lease.partition), lease.partition, me, lease.token)
            .await
    }

    /// Gives the partition up at once (a node leaving, or handing it to its preferred owner), so the next
    /// owner need not wait for the TTL. Refused when the lease is no longer this node's.
    pub async fn release(&self, lease: &Lease) -> Result<(), LeaseError> {
        self.kv
            .delete_expect_revision(key(lease.partition), Some(lease.token))
            .await
            .map_err(|e| LeaseError::Unavailable {
                partition: lease.partition,
                message: e.to_string(),
            })
    }

    /// Fails with `Fenced` unless `lease` is still the partition's latest revision: the check a holder
    /// makes before a write that only the owner may make.
    pub async fn check(&self, lease: &Lease) -> Result<(), LeaseError> {
        match self.entry(lease.partition).await? {
            Some(entry) if entry.revision == lease.token && entry.operation == Operation::Put => {
                Ok(())
            }
            _ => Err(LeaseError::Fenced {
                partition: lease.partition,
                token: lease.token,
            }),
        }
    }

    /// Who holds the partition now, with the lease's revision.
    pub async fn holder(&self, partition: Partition) -> Result<Option<(Holder, u64)>, LeaseError> {
        Ok(self.entry(partition).await?.and_then(|entry| {
            (entry.operation == Operation::Put)
                .then(|| serde_json::from_slice(&entry.value).ok())
                .flatten()
                .map(|holder| (holder, entry.revision))
        }))
    }

    async fn entry(&self, partition: Partition) -> Result<Option<kv::Entry>, LeaseError> {
        self.kv
            .entry(key(partition))
            .await
            .map_err(|e| LeaseError::Unavailable {
                partition,
                message: e.to_string(),
            })
    }

    /// One compare-and-swap write: the value, expecting `expected` as the key's latest revision (0: none),
    /// living `ttl`.
    async fn write(
        &self,
        key: &str,
        partition: Partition,
        me: &Holder,
        expected: u64,
    ) -> Result<Lease, LeaseError> {
        let unavailable = |message: String| LeaseError::Unavailable { partition, message };
        let value = serde_json::to_vec(me).map_err(|e| unavailable(e.to_string()))?;
        let mut headers = HeaderMap::new();
        headers.insert(NATS_EXPECTED_LAST_SUBJECT_SEQUENCE, expected.to_string());
        headers.insert(NATS_MESSAGE_TTL, ttl_header(self.ttl));
        let written_at = Instant::now();
        let fenced = LeaseError::Fenced {
            partition,
            token: expected,
        };
        let ack = self
            .js
            .publish_with_headers(
                format!("$KV.{}.{key}", self.kv.name),
                headers,
                Bytes::from(value),
            )
            .await
            .map_err(|e| unavailable(e.to_string()))?
            .await;
        match ack {
            Ok(ack) => Ok(Lease {
                partition,
                token: ack.sequence,
                written_at,
            }),
            Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => Err(fenced),
            Err(e) => Err(unavailable(e.to_string())),
        }
    }
}

fn key(partition: Partition) -> String {
    format!("p{partition}")
}

/// `Nats-TTL` in whole seconds, rounded up (the server's unit).
pub(crate) fn ttl_header(ttl: Duration) -> String {
    let secs = ttl.as_secs() + u64::from(ttl.subsec_nanos() > 0);
    format!("{}s", secs.max(1))
}

/// A bucket keeping one revision per key, allowing per-message TTLs (`limit_markers`: an expiry leaves a
/// marker for `ttl`, so watchers see it).
pub(crate) async fn open_bucket(
    js: &jetstream::Context,
    bucket: &str,
    ttl: Duration,
    replicas: usize,
) -> Result<kv::Store, ClusterError> {
    let config = kv::Config {
        bucket: bucket.into(),
        history: 1,
        storage: StorageType::File,
        num_replicas: replicas,
        limit_markers: Some(ttl.max(Duration::from_secs(1))),
        ..Default::default()
    };
    match js.create_key_value(config).await {
        Ok(store) => Ok(store),
        // Another node created it first, or it exists from an earlier run.
        Err(_) => js
            .get_key_value(bucket)
            .await
            .map_err(|e| ClusterError::jetstream("opening a key-value bucket", e)),
    }
}
