//! Partition leases against a real nats-server with JetStream: a lease is acquired once, renewed by its
//! holder (compare-and-swap on the revision), taken over by another node only after it expired, and a
//! holder that lost it is fenced: its renew, check and release are refused. The lease manager spreads
//! partitions over the live nodes and moves a departed node's partitions to the survivors. One test runs
//! on a three-server NATS cluster with three replicas and kills a server under the lease holder.
//!
//! Skips without nats-server (see tests/cluster_support/nats.rs), except under `CI=true`.

#[path = "cluster_support/nats.rs"]
mod nats;
#[path = "support/wait.rs"]
mod wait;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use agent_store::cluster::{
    ClusterMetrics, Holder, LeaseError, LeaseManager, Leases, Members, Partition,
};
use async_nats::jetstream;
use nats::{NatsCluster, NatsServer};
use wait::eventually;

const TTL: Duration = Duration::from_secs(1);
/// Long enough for the renewal after a server's loss (a JetStream leader election) to land in time.
const R3_TTL: Duration = Duration::from_secs(10);
/// Expiry takes the TTL plus the server's expiry sweep; far less than this.
const PATIENCE: Duration = Duration::from_secs(20);

fn holder(name: &str) -> Holder {
    Holder {
        node_id: name.into(),
        url: format!("http://{name}.invalid"),
    }
}

async fn js(url: &str) -> jetstream::Context {
    let urls: Vec<&str> = url.split(',').collect();
    let client = async_nats::ConnectOptions::new()
        .connect(urls.as_slice())
        .await
        .expect("connects to nats-server");
    jetstream::new(client)
}

async fn leases(url: &str) -> Leases {
    Leases::open(js(url).await, "test_leases", TTL, 1)
        .await
        .expect("the lease bucket opens")
}

#[tokio::test]
async fn a_lease_is_held_by_one_node_and_renewed_by_compare_and_swap() {
    let Some(server) = NatsServer::start_or_skip("a_lease_is_held_by_one_node") else {
        return;
    };
    let (a_store, b_store) = (leases(&server.url).await, leases(&server.url).await);
    let (a, b) = (holder("a"), holder("b"));

    let lease = a_store.acquire(3, &a).await.expect("a free partition");
    assert!(lease.token > 0);
    match b_store.acquire(3, &b).await {
        Err(LeaseError::Held { partition, holder }) => {
            assert_eq!((partition, holder.as_str()), (3, "a"))
        }
        other => panic!("b took a held lease: {other:?}"),
    }
    assert_eq!(
        b_store.holder(3).await.unwrap(),
        Some((a.clone(), lease.token))
    );
    // Another partition is independent.
    b_store.acquire(4, &b).await.expect("partition 4 is free");

    // Renewing for three TTLs keeps it: every renew is a new revision, and b is refused throughout.
    let mut current = lease;
    for _ in 0..9 {
        tokio::time::sleep(TTL / 3).await;
        let renewed = a_store
            .renew(&current, &a)
            .await
            .expect("the holder renews");
        assert!(renewed.token > current.token, "a renew is a new revision");
        current = renewed;
    }
    assert!(matches!(
        b_store.acquire(3, &b).await,
        Err(LeaseError::Held { .. })
    ));
    a_store
        .check(&current)
        .await
        .expect("the latest revision is current");
}

#[tokio::test]
async fn an_expired_lease_is_taken_over_and_the_stale_holder_is_fenced() {
    let Some(server) = NatsServer::start_or_skip("an_expired_lease_is_taken_over") else {
        return;
    };
    let (a_store, b_store) = (leases(&server.url).await, leases(&server.url).await);
    let (a, b) = (holder("a"), holder("b"));
    let stale = a_store.acquire(0, &a).await.unwrap();

    // a stops renewing (paused, partitioned away): b gets the partition once the TTL has run out.
    let (store, me) = (&b_store, &b);
    let taken = eventually(PATIENCE, || async move { store.acquire(0, me).await.ok() }).await;
    assert!(taken.token > stale.token, "the new lease's token is higher");
    assert_eq!(
        a_store.holder(0).await.unwrap(),
        Some((b.clone(), taken.token))
    );

    // a comes back with its old token: every write it would make as the owner is refused.
    assert!(matches!(
        a_store.renew(&stale, &a).await,
        Err(LeaseError::Fenced { partition: 0, .. })
    ));
    assert!(matches!(
        a_store.check(&stale).await,
        Err(LeaseError::Fenced { .. })
    ));
    assert!(
        a_store.release(&stale).await.is_err(),
        "a cannot release b's lease"
    );
    assert_eq!(
        b_store.holder(0).await.unwrap().map(|h| h.0),
        Some(b.clone())
    );
    // b, the holder, still renews.
    b_store.renew(&taken, &b).await.expect("b renews");
}

#[tokio::test]
async fn a_released_lease_is_free_at_once() {
    let Some(server) = NatsServer::start_or_skip("a_released_lease_is_free_at_once") else {
        return;
    };
    let (a_store, b_store) = (leases(&server.url).await, leases(&server.url).await);
    let lease = a_store.acquire(1, &holder("a")).await.unwrap();
    a_store.release(&lease).await.expect("the holder releases");
    let taken = b_store
        .acquire(1, &holder("b"))
        .await
        .expect("free without waiting for the TTL");
    assert!(matches!(
        a_store.renew(&lease, &holder("a")).await,
        Err(LeaseError::Fenced { .. })
    ));
    assert!(taken.token > lease.token);
}

async fn manager(url: &str, name: &str, partitions: u32) -> LeaseManager {
    let js = js(url).await;
    let leases = Leases::open(js.clone(), "test_leases", TTL, 1)
        .await
        .unwrap();
    let members = Members::open(js, "test_nodes", TTL, 1).await.unwrap();
    let registry = prometheus::Registry::new();
    LeaseManager::new(
        leases,
        members,
        holder(name),
        partitions,
        ClusterMetrics::new(&registry),
    )
}

fn keys(owned: &agent_store::cluster::Owned) -> BTreeSet<Partition> {
    owned.keys().copied().collect()
}

#[tokio::test]
async fn the_manager_spreads_partitions_and_survivors_take_a_lost_nodes_share() {
    let Some(server) = NatsServer::start_or_skip("the_manager_spreads_partitions") else {
        return;
    };
    const N: u32 = 8;
    let (mut a, mut b) = (
        manager(&server.url, "a", N).await,
        manager(&server.url, "b", N).await,
    );
    let (a_owned, b_owned) = (a.subscribe(), b.subscribe());
    // Alone, a takes everything.
    a.tick().await;
    assert_eq!(keys(&a_owned.borrow()).len(), N as usize);

    // b joins: a releases what b should own, b takes it; together they hold every partition once.
    let deadline = Instant::now() + PATIENCE;
    loop {
        b.tick().await;
        a.tick().await;
        b.tick().await;
        let (x, y) = (keys(&a_owned.borrow()), keys(&b_owned.borrow()));
        if !x.is_empty() && !y.is_empty() && x.is_disjoint(&y) && x.len() + y.len() == N as usize {
            break;
        }
        assert!(Instant::now() < deadline, "not split: a {x:?}, b {y:?}");
        tokio::time::sleep(TTL / 3).await;
    }

    // a dies without a word (no release, no leave): b takes a's share once a's leases expire.
    drop(a);
    let deadline = Instant::now() + PATIENCE;
    loop {
        b.tick().await;
        if keys(&b_owned.borrow()).len() == N as usize {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "b holds only {:?}",
            keys(&b_owned.borrow())
        );
        tokio::time::sleep(TTL / 3).await;
    }
}

#[tokio::test]
async fn leases_live_on_through_the_loss_of_one_of_three_nats_servers() {
    let Some(mut cluster) = NatsCluster::start_or_skip("leases_live_on_through_the_loss") else {
        return;
    };
    let url = cluster.urls();
    // The cluster elects its JetStream leader in its own time; the bucket opens once it has.
    let store = eventually(Duration::from_secs(60), || {
        let url = url.clone();
        async move {
            let js = js(&url).await;
            Leases::open(js, "test_leases_r3", R3_TTL, 3).await.ok()
        }
    })
    .await;
    let me = holder("a");
    let lease = store
        .acquire(7, &me)
        .await
        .expect("acquired on three replicas");

    // The first server is the one the client most likely talks to; with it gone the client fails over
    // and the two remaining replicas still form a quorum.
    cluster.servers[0].kill();
    let renewed = eventually(PATIENCE, || {
        let (store, me, lease) = (store.clone(), me.clone(), lease.clone());
        async move { store.renew(&lease, &me).await.ok() }
    })
    .await;
    assert!(renewed.token > lease.token);
    let other = Leases::open(
        js(&cluster.servers[1].url).await,
        "test_leases_r3",
        R3_TTL,
        3,
    )
    .await
    .unwrap();
    // Another node is refused (held), once the store answers at all: right after the loss, a request may
    // still meet the election (unavailable), which says nothing about the lease. The holder keeps renewing
    // meanwhile, as it would, so the lease cannot simply expire while the other node waits.
    let latest = std::sync::Mutex::new(renewed);
    let refused = eventually(PATIENCE, || {
        let (other, store, me) = (other.clone(), store.clone(), me.clone());
        let latest = &latest;
        async move {
            let current = latest.lock().unwrap().clone();
            if let Ok(next) = store.renew(&current, &me).await {
                *latest.lock().unwrap() = next;
            }
            match other.acquire(7, &holder("b")).await {
                Err(LeaseError::Unavailable { .. }) => None,
                answer => Some(answer),
            }
        }
    })
    .await;
    assert!(
        matches!(refused, Err(LeaseError::Held { .. })),
        "{refused:?}"
    );
}
