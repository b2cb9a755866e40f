//! Failures of a cluster built from the real parts: three `agent-store serve --cluster` processes and real
//! nats-server processes. A node paused past its lease (SIGSTOP) loses its partitions to the survivors,
//! which serve new work for them at once, and when it wakes (SIGCONT) its stale leases are fenced: it
//! stops applying and renewing them, and takes back only partitions that are free. One of three
//! nats-servers killed (SIGKILL) under ingest load loses no message JetStream acknowledged: each is read
//! back, exactly once, from every node. An owner SIGKILLed during ingest is rebuilt from JetStream on the
//! survivors (its snapshot plus the stream after it): every acknowledged message readable from each of
//! them, once, seqIds continuing without reuse.
//!
//! Skips without nats-server (see tests/cluster_support/nats.rs), except under `CI=true`.

#[path = "cluster_support/nats.rs"]
mod nats;
#[path = "cluster_support/node.rs"]
mod node;
#[path = "support/wait.rs"]
mod wait;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use agent_store::cluster::partition;
use nats::{NatsCluster, NatsServer};
use nix::sys::signal::Signal;
use node::{Node, NodeConfig};
use reqwest::StatusCode;
use serde_json::{json, Value};
use wait::eventually;

const PARTITIONS: u32 = 8;

/// Three nodes on one nats-server (no replicas), 2 s leases, snapshots every `snapshot_interval_secs`.
fn one_nats(nats_url: &str, snapshot_interval_secs: u64) -> NodeConfig<'_> {
    NodeConfig {
        nats_url,
        partitions: PARTITIONS,
        lease_ttl_secs: 2,
        replicas: 1,
        snapshot_interval_secs,
        extra: "",
    }
}

const PATIENCE: Duration = Duration::from_secs(60);

fn text_event(session_id: &str, id: &str, text: &str) -> Value {
    json!({"event": "agent.message", "payload": {"sessionId": session_id, "messages": [
        {"id": id, "type": "text", "content": {"text": text}, "timestamp": 1_700_000_000_000i64}]}})
}

/// Nodes a, b and c, once each sees all three alive, with the partitions each holds by node id.
async fn three_nodes(
    config: &NodeConfig<'_>,
) -> (Node, Node, Node, BTreeMap<String, BTreeSet<u32>>) {
    let (a, b, c) = (
        Node::start("a", config).await,
        Node::start("b", config).await,
        Node::start("c", config).await,
    );
    let held = settled(&[&a, &b, &c]).await;
    (a, b, c, held)
}

/// Waits until every node sees all of them alive and their partitions cover each partition once.
async fn settled(nodes: &[&Node]) -> BTreeMap<String, BTreeSet<u32>> {
    eventually(PATIENCE, || async {
        let mut held = BTreeMap::new();
        for node in nodes {
            let (status, view) = node.get("/v1/cluster").await;
            if status != StatusCode::OK {
                return None;
            }
            let alive = view["nodes"]
                .as_array()?
                .iter()
                .filter(|n| n["alive"] == true)
                .count();
            if alive != nodes.len() {
                return None;
            }
            held.insert(
                node.id.clone(),
                node.partitions().await.into_iter().collect(),
            );
        }
        covers(&held).then_some(held)
    })
    .await
}

/// Waits until the given nodes' partitions cover each partition once (the others are gone).
async fn survivors_own_everything(nodes: &[&Node]) -> BTreeMap<String, BTreeSet<u32>> {
    eventually(PATIENCE, || async {
        let mut held = BTreeMap::new();
        for node in nodes {
            held.insert(
                node.id.clone(),
                node.partitions().await.into_iter().collect(),
            );
        }
        covers(&held).then_some(held)
    })
    .await
}

fn covers(held: &BTreeMap<String, BTreeSet<u32>>) -> bool {
    let total: usize = held.values().map(BTreeSet::len).sum();
    let union: BTreeSet<u32> = held.values().flatten().copied().collect();
    total == union.len() && union.len() == PARTITIONS as usize
}

fn project_in(held: &BTreeSet<u32>, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|p| held.contains(&partition::of_project(p, PARTITIONS)))
        .expect("some project hashes there")
}

async fn start_session(node: &Node, project: &str) -> String {
    let (status, body) = node
        .post(
            &format!("/v1/projects/{project}/sessions"),
            &json!({"provider": "synthetic", "prompt": "hello"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "start {project}: {body}");
    body["sessionId"].as_str().unwrap().to_owned()
}

/// The texts of a session's messages after the prompt, as `node` reads them.
async fn texts(node: &Node, session: &str) -> Option<Vec<String>> {
    let numbered = numbered(node, session).await?;
    Some(numbered.into_iter().map(|(_, text)| text).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_owner_loses_its_partitions_and_is_fenced_when_it_wakes() {
    let Some(nats) = NatsServer::start_or_skip("a_paused_owner_loses_its_partitions") else {
        return;
    };
    let config = one_nats(&nats.url, 1);
    let (a, b, c, held) = three_nodes(&config).await;
    let c_partitions = held["c"].clone();

    // c is partitioned away: paused, it renews nothing. The survivors own everything within the TTL.
    c.signal(Signal::SIGSTOP);
    let survivors = survivors_own_everything(&[&a, &b]).await;
    let (taker, other) = if survivors["a"].contains(c_partitions.first().unwrap()) {
        (&a, &b)
    } else {
        (&b, &a)
    };

    // Work for a partition c held goes to its new owner at once, through either survivor.
    let project = project_in(&c_partitions, "moved");
    let session = start_session(other, &project).await;
    let events: Vec<Value> = (0..3)
        .map(|i| text_event(&session, &format!("m{i}"), &format!("t{i}")))
        .collect();
    let (status, body) = taker
        .post("/v1/sidecar/events", &Value::Array(events))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    for node in [&a, &b] {
        let got = eventually(PATIENCE, || async {
            texts(node, &session).await.filter(|t| t.len() == 3)
        })
        .await;
        assert_eq!(got, ["t0", "t1", "t2"]);
    }

    // c wakes with leases it no longer holds: its renewals are refused, it drops them (counted as lost)
    // and it never holds a partition a survivor holds.
    c.signal(Signal::SIGCONT);
    eventually(PATIENCE, || async {
        (c.metric("agent_store_cluster_lease_changes_total{event=\"lost\"}")
            .await
            >= 1.0)
            .then_some(())
    })
    .await;
    let settled_again = settled(&[&a, &b, &c]).await;
    // The partition holding the moved project's session stays with the node that stores it.
    let moved = partition::of_project(&project, PARTITIONS);
    assert!(
        settled_again[&taker.id].contains(&moved),
        "the partition with data stayed: {settled_again:?}"
    );
    // And every node, c included, reads the session through its owner.
    let got = eventually(PATIENCE, || async {
        texts(&c, &session).await.filter(|t| t.len() == 3)
    })
    .await;
    assert_eq!(got, ["t0", "t1", "t2"]);
}

/// A session's (seqId, text) pairs after the prompt, as `node` reads them.
async fn numbered(node: &Node, session: &str) -> Option<Vec<(u64, String)>> {
    let (status, body) = node.get(&format!("/v1/sessions/{session}")).await;
    (status == StatusCode::OK).then(|| {
        body["messages"].as_array().unwrap()[1..]
            .iter()
            .map(|m| {
                let seq = m["seqId"].as_u64().unwrap();
                (seq, m["content"].as_str().unwrap().to_owned())
            })
            .collect()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_owner_killed_during_ingest_is_rebuilt_from_jetstream_and_loses_nothing_acknowledged() {
    let Some(nats) = NatsServer::start_or_skip("an_owner_killed_during_ingest") else {
        return;
    };
    let config = one_nats(&nats.url, 1);
    let (a, b, c, held) = three_nodes(&config).await;
    let project = project_in(&held["c"], "killed");
    // Started through a, run by c; two of c's snapshots later it is surely in one (the first may have
    // begun before the start).
    const SNAPSHOTS: &str = "agent_store_cluster_ingest_total{stage=\"snapshot\"}";
    let before = c.metric(SNAPSHOTS).await;
    let session = start_session(&a, &project).await;
    // An agent c runs as its child (a fake Claude CLI that names its conversation, then hangs).
    let agent_project = project_in(&held["c"], "agent");
    let pids = tempfile::NamedTempFile::new().unwrap();
    let (status, body) = a
        .post(
            &format!("/v1/projects/{agent_project}/sessions"),
            &json!({"provider": "claude", "prompt": "go", "options": {"extraEnv": {
                "FAKE_MODE": "hang", "FAKE_PIDS": pids.path().to_string_lossy()}}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let agent = body["sessionId"].as_str().unwrap().to_owned();
    eventually(PATIENCE, || async {
        let (_, s) = a.get(&format!("/v1/sessions/{agent}")).await;
        (s["status"] == "running" && s["messages"].as_array()?.len() >= 2).then_some(())
    })
    .await;
    eventually(PATIENCE, || async {
        (c.metric(SNAPSHOTS).await >= before + 2.0).then_some(())
    })
    .await;

    // One event a post, alternately through a and b; c is SIGKILLed after 20 acknowledged, while it
    // applies them, and the posts go on: JetStream, not the owner, acknowledges them.
    let mut acknowledged: Vec<String> = Vec::new();
    let mut seen_before_kill = 0;
    for i in 0..50 {
        if i == 20 {
            seen_before_kill = numbered(&a, &session)
                .await
                .and_then(|m| m.iter().map(|(seq, _)| *seq).max())
                .unwrap_or(0);
            c.signal(Signal::SIGKILL);
        }
        let via = if i % 2 == 0 { &a } else { &b };
        let text = format!("load {i}");
        let (status, body) = via
            .post(
                "/v1/sidecar/events",
                &text_event(&session, &format!("m{i}"), &text),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        acknowledged.push(text);
    }

    // The survivors own every partition, c's included.
    survivors_own_everything(&[&a, &b]).await;
    // Every acknowledged message is readable from every survivor, exactly once, in order, and seqIds
    // rise without reuse: those handed out after the kill are above any read before it.
    for node in [&a, &b] {
        let got = eventually(PATIENCE, || async {
            numbered(node, &session)
                .await
                .filter(|m| m.len() >= acknowledged.len())
        })
        .await;
        let texts: Vec<&String> = got.iter().map(|(_, t)| t).collect();
        assert_eq!(
            texts,
            acknowledged.iter().collect::<Vec<_>>(),
            "each once, in order"
        );
        let seqs: Vec<u64> = got.iter().map(|(seq, _)| *seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "seqIds rise: {seqs:?}"
        );
        assert!(
            got[20..].iter().all(|(seq, _)| *seq > seen_before_kill),
            "no seqId read before the kill is reused: {seqs:?} (read before: {seen_before_kill})"
        );
        // The session itself came over: its prompt and its project.
        let (_, body) = node.get(&format!("/v1/sessions/{session}")).await;
        assert_eq!(body["projectId"], project.as_str());
        assert_eq!(body["messages"][0]["content"], "hello");
    }
    // c's agent died with it: on the new owner its session is interrupted, as after a restart.
    for node in [&a, &b] {
        let (status, s) = node.get(&format!("/v1/sessions/{agent}")).await;
        assert_eq!(status, StatusCode::OK, "{s}");
        assert_eq!(s["status"], "error", "{s}");
        assert_eq!(s["error"], "Interrupted: service restarted", "{s}");
    }
    // The fake CLI outlived its parent's SIGKILL (nothing else would end it).
    for pid in std::fs::read_to_string(pids.path())
        .unwrap_or_default()
        .lines()
    {
        if let Ok(pid) = pid.trim().parse::<i32>() {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
    let rebuilt = a
        .metric("agent_store_cluster_ingest_total{stage=\"rebuilt\"}")
        .await
        + b.metric("agent_store_cluster_ingest_total{stage=\"rebuilt\"}")
            .await;
    assert!(rebuilt >= 1.0, "the partition was rebuilt from JetStream");
}

/// The consumers on the ingest stream with no durable name, filtered to `project`'s partition: those a
/// takeover's rebuild reads the partition's tail through (the appliers' are durable).
async fn rebuild_consumers(nats_url: &str, project: &str) -> Vec<String> {
    use futures_util::StreamExt;
    let js = async_nats::jetstream::new(async_nats::connect(nats_url).await.unwrap());
    let stream = js.get_stream("AGENT_STORE_INGEST").await.unwrap();
    let subject = format!(
        "agent_store.ingest.{}",
        partition::of_project(project, PARTITIONS)
    );
    let mut out = Vec::new();
    let mut consumers = stream.consumers();
    while let Some(info) = consumers.next().await {
        let info = info.unwrap();
        if info.config.filter_subject == subject && info.config.durable_name.is_none() {
            out.push(info.name);
        }
    }
    out
}

/// The new owner rebuilds the partition from the stream alone, and deletes the consumer it read the
/// stream through once the rebuild is done (it does not linger until it expires).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_started_after_the_owners_last_snapshot_comes_over_whole_when_the_owner_dies() {
    let Some(nats) = NatsServer::start_or_skip("a_session_started_after_the_owners_last_snapshot")
    else {
        return;
    };
    // No snapshot in this test's time: the new owner knows the session from the ingest stream alone.
    let config = one_nats(&nats.url, 3600);
    let (a, b, c, held) = three_nodes(&config).await;
    let project = project_in(&held["c"], "unsnapshotted");
    let session = start_session(&a, &project).await;
    let sent: Vec<String> = (0..5).map(|i| format!("text {i}")).collect();
    for (i, text) in sent.iter().enumerate() {
        let via = if i % 2 == 0 { &a } else { &b };
        let (status, body) = via
            .post(
                "/v1/sidecar/events",
                &text_event(&session, &format!("m{i}"), text),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    assert_eq!(eventually(PATIENCE, || texts(&b, &session)).await, sent);
    c.signal(Signal::SIGKILL);

    survivors_own_everything(&[&a, &b]).await;
    // On the survivors the session is the one c started (its provider, its prompt), with every
    // acknowledged message once.
    for node in [&a, &b] {
        let texts = eventually(PATIENCE, || async {
            texts(node, &session)
                .await
                .filter(|t| t.len() >= sent.len())
        })
        .await;
        assert_eq!(texts, sent);
        let (_, body) = node.get(&format!("/v1/sessions/{session}")).await;
        assert_eq!(body["projectId"], project.as_str(), "{body}");
        assert_eq!(body["provider"], "synthetic", "{body}");
        assert_eq!(body["messages"][0]["content"], "hello", "{body}");
    }
    // The messages are applied on the new owner, so its rebuild of the partition is over.
    assert_eq!(
        rebuild_consumers(&nats.url, &project).await,
        Vec::<String>::new()
    );
}

/// `node`'s first answer to a GET that is not a 503 (a takeover under way, a read waiting for the replay).
async fn settled_answer(node: &Node, path: &str) -> (StatusCode, Value) {
    eventually(PATIENCE, || async {
        let (status, body) = node.get(path).await;
        (status != StatusCode::SERVICE_UNAVAILABLE).then_some((status, body))
    })
    .await
}

/// A purge and a stop the owner carried out after its last snapshot outlive it: the survivors rebuild
/// the partition from the ingest stream, which holds each session's start and events, and the purge and
/// the stop after them. Without the purge in the stream the purged session came back whole; without the
/// stop, the stopped one came back running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_purge_and_a_stop_on_the_owner_outlive_it_when_it_dies_before_a_snapshot() {
    let Some(nats) = NatsServer::start_or_skip("a_purge_and_a_stop_on_the_owner_outlive_it") else {
        return;
    };
    let config = one_nats(&nats.url, 3600);
    let (a, b, c, held) = three_nodes(&config).await;
    let purged_project = project_in(&held["c"], "purged");
    let stopped_project = project_in(&held["c"], "stopped");
    let purged = start_session(&a, &purged_project).await;
    let stopped = start_session(&b, &stopped_project).await;
    for session in [&purged, &stopped] {
        let (status, body) = b
            .post("/v1/sidecar/events", &text_event(session, "m0", "text 0"))
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(
            eventually(PATIENCE, || texts(&a, session)).await,
            ["text 0"]
        );
    }
    let (status, body) = a.delete(&format!("/v1/sessions/{purged}")).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "purge: {body}");
    let (status, body) = b
        .post(&format!("/v1/projects/{stopped_project}/stop"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "stop: {body}");
    let (status, _) = a.get(&format!("/v1/sessions/{purged}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    c.signal(Signal::SIGKILL);
    let held = survivors_own_everything(&[&a, &b]).await;
    for node in [&a, &b] {
        let name = format!("on {}", node.id);
        let (status, body) = settled_answer(node, &format!("/v1/sessions/{purged}")).await;
        assert_eq!(
            status,
            StatusCode::NOT_FOUND,
            "the purged session came back {name}: {body}"
        );
        let (status, body) = settled_answer(node, &format!("/v1/sessions/{stopped}")).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "done", "the stopped session {name}: {body}");
    }

    // Events sent for the purged session later are acknowledged at the edge and name it in vain.
    let (status, body) = a
        .post("/v1/sidecar/events", &text_event(&purged, "m1", "late"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Its next owner rebuilds the partition from the stream again (no snapshot yet): still gone.
    let part = partition::of_project(&purged_project, PARTITIONS);
    let (owner, last) = if held["a"].contains(&part) {
        (&a, &b)
    } else {
        (&b, &a)
    };
    owner.signal(Signal::SIGKILL);
    survivors_own_everything(&[last]).await;
    let (status, body) = settled_answer(last, &format!("/v1/sessions/{purged}")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "the purged session came back on the last node: {body}"
    );
    let (status, body) =
        settled_answer(last, &format!("/v1/projects/{purged_project}/session")).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, body) = settled_answer(last, &format!("/v1/sessions/{stopped}")).await;
    assert_eq!(body["status"], "done", "{body}");
}

/// An owner dies, with no snapshot, after `stream_max_age` dropped what it applied: the node taking its
/// partition over finds its progress (none) older than the oldest message the stream keeps, and says so
/// (`agent_store_cluster_replay_gaps_total` for that partition) instead of going on as if nothing were
/// missing. A partition the survivor applied all along shows no gap.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_whose_messages_the_stream_dropped_before_a_takeover_is_counted_as_a_gap() {
    let Some(nats) = NatsServer::start_or_skip("a_partition_whose_messages_the_stream_dropped")
    else {
        return;
    };
    let config = NodeConfig {
        extra: r#"stream_max_age = "2s""#,
        ..one_nats(&nats.url, 3600)
    };
    let (a, c) = (
        Node::start("a", &config).await,
        Node::start("c", &config).await,
    );
    let held = settled(&[&a, &c]).await;
    let project = project_in(&held["c"], "aged");
    let session = start_session(&a, &project).await;
    let (status, body) = a
        .post("/v1/sidecar/events", &text_event(&session, "m0", "text 0"))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        eventually(PATIENCE, || texts(&a, &session)).await,
        ["text 0"]
    );
    // Wait until the stream has dropped everything (max age), then lose the owner and its disk.
    let client = async_nats::ConnectOptions::new()
        .connect(nats.url.as_str())
        .await
        .expect("connected");
    let stream = async_nats::jetstream::new(client)
        .get_stream("AGENT_STORE_INGEST")
        .await
        .expect("the ingest stream");
    eventually(PATIENCE, || async {
        let state = stream.get_info().await.ok()?.state;
        (state.messages == 0 && state.last_sequence > 0).then_some(())
    })
    .await;
    c.signal(Signal::SIGKILL);
    survivors_own_everything(&[&a]).await;

    let gap = |p: u32| format!("agent_store_cluster_replay_gaps_total{{partition=\"{p}\"}}");
    let taken = partition::of_project(&project, PARTITIONS);
    eventually(PATIENCE, || async {
        (a.metric(&gap(taken)).await >= 1.0).then_some(())
    })
    .await;
    let own = *held["a"].iter().next().expect("a holds a partition");
    assert_eq!(
        a.metric(&gap(own)).await,
        0.0,
        "no gap where a applied all along"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acknowledged_message_is_lost_when_one_of_three_nats_servers_dies() {
    let Some(mut servers) = NatsCluster::start_or_skip("no_acknowledged_message_is_lost") else {
        return;
    };
    let urls = servers.urls();
    // JetStream elects its meta leader in its own time; nodes start once a replicated bucket can be made.
    eventually(PATIENCE, || {
        let urls = urls.clone();
        async move {
            let list: Vec<&str> = urls.split(',').collect();
            let client = async_nats::ConnectOptions::new()
                .connect(list.as_slice())
                .await
                .ok()?;
            let js = async_nats::jetstream::new(client);
            js.create_key_value(async_nats::jetstream::kv::Config {
                bucket: "ready".into(),
                num_replicas: 3,
                ..Default::default()
            })
            .await
            .ok()
        }
    })
    .await;
    let config = NodeConfig {
        nats_url: &urls,
        partitions: PARTITIONS,
        // Longer than a JetStream leader election, so no lease moves while NATS recovers.
        lease_ttl_secs: 10,
        replicas: 3,
        snapshot_interval_secs: 1,
        extra: "",
    };
    let (a, b, c, held) = three_nodes(&config).await;
    let project = project_in(&held["a"], "load");
    let session = start_session(&b, &project).await;

    // Post one event a request, alternately through b and c: 40 acknowledged, then kill a nats-server and
    // go on until 40 more are acknowledged (posts refused while JetStream elects new leaders are retried
    // as new messages, as a client would).
    const BEFORE: usize = 40;
    const AFTER: usize = 40;
    let mut acknowledged = Vec::new();
    let mut after_kill = 0;
    let deadline = std::time::Instant::now() + PATIENCE * 2;
    let mut i = 0;
    while after_kill < AFTER {
        if acknowledged.len() == BEFORE && servers.servers[0].is_running() {
            servers.servers[0].kill();
        }
        let via = if i % 2 == 0 { &b } else { &c };
        let text = format!("load {i}");
        let (status, _) = via
            .post(
                "/v1/sidecar/events",
                &text_event(&session, &format!("m{i}"), &text),
            )
            .await;
        if status == StatusCode::ACCEPTED {
            acknowledged.push(text);
            if !servers.servers[0].is_running() {
                after_kill += 1;
            }
        } else {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "ingest did not resume after a nats-server was lost ({after_kill} acknowledged since)"
        );
        i += 1;
    }

    // Every acknowledged message is there, once, whichever node is asked.
    for node in [&a, &b, &c] {
        let got = eventually(PATIENCE, || async {
            let texts = texts(node, &session).await?;
            acknowledged
                .iter()
                .all(|t| texts.contains(t))
                .then_some(texts)
        })
        .await;
        let unique: BTreeSet<&String> = got.iter().collect();
        assert_eq!(unique.len(), got.len(), "a message applied twice: {got:?}");
    }
}
