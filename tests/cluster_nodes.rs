//! Three agent-store nodes in cluster mode (each the real app: engine, redb in its own directory, HTTP on
//! an ephemeral port) on one real nats-server with JetStream. Partitions spread over the nodes; any node
//! answers a project's routes by forwarding to the owner; a sidecar batch posted to any node is stored in
//! JetStream before the 202 and applied by the owner, once; every node's live stream carries the events of
//! every project, once. A node not in cluster mode says so at
//! `/v1/cluster`.
//!
//! Skips without nats-server (see tests/cluster_support/nats.rs), except under `CI=true`.

mod common;
#[path = "cluster_support/nats.rs"]
mod nats;
#[path = "support/wait.rs"]
mod wait;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agent_store::cluster::partition;
use agent_store::loadtest::{self, Options, TargetSpec};
use async_nats::jetstream::consumer::pull;
use common::{assert_error, send, seq_ids, text_event, SseClient, TestApp};
use futures_util::StreamExt;
use nats::NatsServer;
use reqwest::StatusCode;
use serde_json::{json, Value};
use wait::eventually;

const PARTITIONS: u32 = 8;
const PATIENCE: Duration = Duration::from_secs(30);

async fn node(nats: &NatsServer, id: &str) -> TestApp {
    node_with(nats, id, |_| {}).await
}

/// A node whose owned partitions are snapshotted every `interval` (`cluster.snapshot_interval`).
async fn node_snapshotting(nats: &NatsServer, id: &str, interval: Duration) -> TestApp {
    node_with(nats, id, move |c| c.cluster.snapshot_interval = interval).await
}

/// A node of the test cluster, with `tweak` applied to its configuration last.
async fn node_with(
    nats: &NatsServer,
    id: &str,
    tweak: impl FnOnce(&mut agent_store::config::Config),
) -> TestApp {
    let (url, id) = (nats.url.clone(), id.to_owned());
    TestApp::spawn_with(move |c| {
        c.cluster.snapshot_interval = Duration::from_secs(30);
        c.cluster.enabled = true;
        c.cluster.nats_url = url;
        c.cluster.node_id = id;
        c.cluster.partitions = PARTITIONS;
        c.cluster.lease_ttl = Duration::from_secs(1);
        c.cluster.forward_timeout = Duration::from_secs(10);
        // JetStream refuses a stream larger than its store may grow (75% of the free disk).
        c.cluster.stream_max_bytes = bytesize::ByteSize::mib(64);
        tweak(c);
    })
    .await
}

/// `GET /v1/cluster`, checked against the schema the served OpenAPI document declares for it.
async fn cluster_view(app: &TestApp) -> Value {
    let (status, body) = send(app.get("/v1/cluster")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, mut root) = send(app.get("/v1/openapi.json")).await;
    root["$ref"] =
        json!("#/paths/~1v1~1cluster/get/responses/200/content/application~1json/schema");
    let validator = jsonschema::draft202012::new(&root).expect("the declared schema compiles");
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| e.to_string())
        .collect();
    assert!(errors.is_empty(), "{errors:?}: {body}");
    body
}

/// Nodes a, b and c on `nats`, once each sees all three alive, with the partitions each holds.
async fn three_nodes(nats: &NatsServer) -> (TestApp, TestApp, TestApp, Vec<BTreeSet<u32>>) {
    let (a, b, c) = (
        node(nats, "a").await,
        node(nats, "b").await,
        node(nats, "c").await,
    );
    let held = settled(&[&a, &b, &c]).await;
    (a, b, c, held)
}

/// Waits until the three nodes see each other and hold every partition exactly once between them;
/// answers each node's partitions.
async fn settled(nodes: &[&TestApp]) -> Vec<BTreeSet<u32>> {
    eventually(PATIENCE, || async {
        let mut held = Vec::new();
        for app in nodes {
            let view = cluster_view(app).await;
            let alive = view["nodes"]
                .as_array()?
                .iter()
                .filter(|n| n["alive"] == true)
                .count();
            if alive != nodes.len() {
                return None;
            }
            let mine: BTreeSet<u32> = view["partitions"]
                .as_array()?
                .iter()
                .filter_map(|p| p.as_u64().map(|p| p as u32))
                .collect();
            held.push(mine);
        }
        let total: usize = held.iter().map(BTreeSet::len).sum();
        let union: BTreeSet<u32> = held.iter().flatten().copied().collect();
        (total == PARTITIONS as usize && union.len() == total && held.iter().all(|h| !h.is_empty()))
            .then_some(held)
    })
    .await
}

/// A project whose partition is in `held`.
fn project_in(held: &BTreeSet<u32>, prefix: &str) -> String {
    (0..)
        .map(|i| format!("{prefix}-{i}"))
        .find(|p| held.contains(&partition::of_project(p, PARTITIONS)))
        .expect("some project hashes there")
}

#[actix_web::test]
async fn any_node_answers_for_any_project_and_ingest_goes_through_jetstream_to_the_owner() {
    let Some(nats) = NatsServer::start_or_skip("any_node_answers_for_any_project") else {
        return;
    };
    let (a, b, c, held) = three_nodes(&nats).await;
    let project = project_in(&held[2], "owned-by-c");

    // Started through a, run by c (the owner): a forwards it.
    let sid = a.start(&project, "synthetic").await;
    // Posted to b: stored in JetStream before the 202, then applied by c.
    let events: Vec<Value> = (0..5)
        .map(|i| text_event(&sid, &format!("m{i}"), &format!("text {i}")))
        .collect();
    let answer = b.ingest(Value::Array(events)).await;
    assert_eq!(answer, json!({"accepted": 5, "ignored": 0}));

    // Every node reads the same session, each message once, seqIds rising.
    for app in [&a, &b, &c] {
        let session = eventually(PATIENCE, || async {
            let session = app.session(&sid).await;
            (session["messages"].as_array()?.len() == 6).then_some(session)
        })
        .await;
        assert_eq!(session["projectId"], project.as_str());
        let messages = session["messages"].as_array().unwrap();
        let texts: Vec<&str> = messages[1..]
            .iter()
            .map(|m| m["content"].as_str().unwrap())
            .collect();
        assert_eq!(texts, ["text 0", "text 1", "text 2", "text 3", "text 4"]);
        let seqs: Vec<u64> = messages
            .iter()
            .map(|m| m["seqId"].as_u64().unwrap())
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "seqIds rise: {seqs:?}"
        );

        let (status, current) = send(app.get(&format!("/v1/projects/{project}/session"))).await;
        assert_eq!(status, StatusCode::OK, "{current}");
        assert_eq!(current["sessionId"], sid.as_str());
    }
    // The lists cover the cluster: from every node, both projects, each once, with its current session,
    // though each node's engine knows only its own.
    let other = project_in(&held[0], "owned-by-a");
    let other_sid = c.start(&other, "synthetic").await;
    for app in [&a, &b, &c] {
        let (status, projects) = send(app.get("/v1/projects")).await;
        assert_eq!(status, StatusCode::OK, "{projects}");
        let (status, health) = send(app.get("/v1/health")).await;
        assert_eq!(status, StatusCode::OK, "{health}");
        for (p, s) in [(&project, &sid), (&other, &other_sid)] {
            for list in [&projects, &health] {
                let found: Vec<&Value> = list
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|e| e["projectId"] == p.as_str())
                    .collect();
                assert_eq!(found.len(), 1, "{p} once in {list}");
                assert_eq!(found[0]["sessionId"], s.as_str());
            }
        }
    }
    assert!(!c.server().engine().has_session(&other).await.unwrap());

    // Only the owner holds it in its engine: the others forwarded.
    assert!(c.server().engine().has_session(&project).await.unwrap());
    assert!(!a.server().engine().has_session(&project).await.unwrap());
    assert!(!b.server().engine().has_session(&project).await.unwrap());

    // Commands too: stop through b, seen from a.
    let (status, body) = send(b.post(&format!("/v1/projects/{project}/stop"))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let metrics = a.metrics_text().await;
    assert!(
        metrics.contains("agent_store_cluster_forwarded_total{outcome=\"answered\"}"),
        "forwarding is counted"
    );
    for app in [a, b, c] {
        app.stop().await;
    }
}

/// The texts of a session as one node answers it; `None` while it answers 503 (retry).
async fn texts(app: &TestApp, sid: &str) -> Option<Vec<String>> {
    let (status, body) = send(app.get(&format!("/v1/sessions/{sid}"))).await;
    if status == StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }
    assert_eq!(status, StatusCode::OK, "{body}");
    let messages = body["messages"].as_array().unwrap();
    Some(
        messages[1..]
            .iter()
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect(),
    )
}

/// The ingest stream, and the consumers reading the partition of `project` (those its owner reads
/// through).
async fn partition_consumers(
    nats: &NatsServer,
    project: &str,
) -> (async_nats::jetstream::stream::Stream, Vec<String>) {
    let js = async_nats::jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let stream = js.get_stream("AGENT_STORE_INGEST").await.unwrap();
    let subject = format!(
        "agent_store.ingest.{}",
        partition::of_project(project, PARTITIONS)
    );
    let mut names = Vec::new();
    let mut consumers = stream.consumers();
    while let Some(info) = consumers.next().await {
        let info = info.unwrap();
        if info.config.filter_subject == subject {
            names.push(info.name);
        }
    }
    assert!(
        !names.is_empty(),
        "the owner reads the partition through a consumer"
    );
    (stream, names)
}

#[actix_web::test]
async fn a_read_after_a_202_never_answers_without_what_was_acknowledged() {
    let Some(nats) = NatsServer::start_or_skip("a_read_after_a_202_never_answers") else {
        return;
    };
    let (a, b, c, held) = three_nodes(&nats).await;
    let project = project_in(&held[2], "applied-by-c");
    let sid = a.start(&project, "synthetic").await;
    b.ingest(json!([text_event(&sid, "m0", "first")])).await;
    // Read right after the 202, from a node that did not take the write: the first answer that is not a
    // 503 (retry) holds it.
    assert_eq!(eventually(PATIENCE, || texts(&a, &sid)).await, ["first"]);

    // The owner cannot apply the partition for now (its consumer paused in JetStream), as when it is
    // slow or between leases; JetStream still acknowledges the next batch.
    let (stream, consumers) = partition_consumers(&nats, &project).await;
    let client = async_nats::connect(&nats.url).await.unwrap();
    for consumer in &consumers {
        let pause = client
            .request(
                format!("$JS.API.CONSUMER.PAUSE.AGENT_STORE_INGEST.{consumer}"),
                r#"{"pause_until":"2100-01-01T00:00:00Z"}"#.into(),
            )
            .await
            .unwrap();
        let answer = String::from_utf8_lossy(&pause.payload);
        assert!(answer.contains(r#""paused":true"#), "{answer}");
    }
    b.ingest(json!([text_event(&sid, "m1", "second")])).await;

    // Refused (503, retry), never answered without the acknowledged message, through any node. (Should
    // the lease move meanwhile, the new owner applies through a consumer of its own, not paused: then
    // the answer holds both.)
    for app in [&a, &b, &c] {
        let answer = texts(app, &sid).await;
        assert!(
            answer.is_none() || answer == Some(vec!["first".into(), "second".into()]),
            "{answer:?}"
        );
    }
    for consumer in &consumers {
        // A consumer gone meanwhile was its owner's before the lease moved (a holder that loses its lease
        // deletes it): nothing of it is left to resume, and the new owner reads through its own.
        if let Err(e) = stream.resume_consumer(consumer).await {
            assert!(
                stream.consumer_info(consumer).await.is_err(),
                "resuming {consumer}: {e}"
            );
        }
    }
    for app in [&a, &b, &c] {
        let texts = eventually(PATIENCE, || texts(app, &sid)).await;
        assert_eq!(texts, ["first", "second"]);
    }
    for app in [a, b, c] {
        app.stop().await;
    }
}

/// A second applier on the partition, as a holder that lost its lease mid-apply still is: it reads every
/// consumer of the partition's subject there is (those its owner reads through) and acknowledges what it
/// gets. Answers how many messages it took; stops when the consumers it found are gone.
fn second_applier(
    stream: async_nats::jetstream::stream::Stream,
    names: Vec<String>,
) -> Arc<AtomicUsize> {
    let taken = Arc::new(AtomicUsize::new(0));
    for name in names {
        let (stream, taken) = (stream.clone(), taken.clone());
        tokio::spawn(async move {
            while let Ok(consumer) = stream.get_consumer::<pull::Config>(&name).await {
                let Ok(mut batch) = consumer
                    .fetch()
                    .max_messages(10)
                    .expires(Duration::from_millis(500))
                    .messages()
                    .await
                else {
                    break;
                };
                while let Some(Ok(message)) = batch.next().await {
                    let _ = message.ack().await;
                    taken.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
    }
    taken
}

#[actix_web::test]
async fn the_owner_applies_every_acknowledged_message_while_another_applier_reads_its_partition() {
    let Some(nats) = NatsServer::start_or_skip("the_owner_applies_every_acknowledged_message")
    else {
        return;
    };
    let (a, b, c, held) = three_nodes(&nats).await;
    let project = project_in(&held[2], "contested-on-c");
    let sid = a.start(&project, "synthetic").await;
    b.ingest(json!([text_event(&sid, "m0", "text 0")])).await;
    assert_eq!(eventually(PATIENCE, || texts(&a, &sid)).await, ["text 0"]);

    let (stream, names) = partition_consumers(&nats, &project).await;
    let taken = second_applier(stream, names);

    // 202-acknowledged one by one through b, until the second applier took some of them (it competes
    // with the owner for each delivery) and at least 20 were sent.
    let mut sent = vec!["text 0".to_owned()];
    for i in 1.. {
        let text = format!("text {i}");
        b.ingest(json!([text_event(&sid, &format!("m{i}"), &text)]))
            .await;
        sent.push(text);
        if i >= 20 && taken.load(Ordering::SeqCst) > 0 {
            break;
        }
        assert!(i < 1000, "the second applier never took a message");
    }

    // Every node's first answer that is not a 503 (retry) holds every acknowledged message, once, in
    // order, with seqIds rising and none reused.
    for app in [&a, &b, &c] {
        assert_eq!(eventually(PATIENCE, || texts(app, &sid)).await, sent);
        let (status, body) = send(app.get(&format!("/v1/sessions/{sid}"))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let seqs = seq_ids(&body);
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    }
    for app in [a, b, c] {
        app.stop().await;
    }
}

/// Reads `stream` until `session`'s message `last` arrived; answers the seqIds it was sent (each at most
/// once, with the contract's `<sessionId>:<seqId>` id) and the names of the events it saw for `session`.
async fn live_until(stream: &mut SseClient, session: &str, last: u64) -> (Vec<u64>, Vec<String>) {
    let (mut seqs, mut names) = (Vec::new(), Vec::new());
    while seqs.last() != Some(&last) {
        let (event, id, data) = stream.next_event().await;
        if data["sessionId"] != session {
            continue;
        }
        if event == "session.messages" {
            let batch = seq_ids(&data);
            assert_eq!(
                id.as_deref(),
                Some(format!("{session}:{}", batch.last().unwrap()).as_str())
            );
            for seq in batch {
                assert!(!seqs.contains(&seq), "seqId {seq} sent twice");
                seqs.push(seq);
            }
        } else {
            assert!(id.is_some(), "every event carries an id");
        }
        names.push(event);
    }
    (seqs, names)
}

/// `agent_store_cluster_events_total{outcome}` on `app`; 0 before the first.
async fn events_counted(app: &TestApp, outcome: &str) -> f64 {
    let line = format!("agent_store_cluster_events_total{{outcome=\"{outcome}\"}} ");
    app.metrics_text()
        .await
        .lines()
        .find_map(|l| l.strip_prefix(line.as_str())?.parse().ok())
        .unwrap_or(0.0)
}

#[actix_web::test]
async fn every_node_streams_the_live_events_of_a_project_another_node_runs() {
    let Some(nats) = NatsServer::start_or_skip("every_node_streams_the_live_events") else {
        return;
    };
    let (a, b, c, held) = three_nodes(&nats).await;
    let project = project_in(&held[2], "live-on-c");
    // Subscribed before anything happens: a to everything, b to the project alone, c (the owner) too.
    let mut on_a = a.events("", None).await;
    let mut on_b = b.events(&format!("?projectId={project}"), None).await;
    let mut on_c = c.events("", None).await;

    // Started and fed through b; c runs it.
    let sid = b.start(&project, "synthetic").await;
    let events: Vec<Value> = (0..4)
        .map(|i| text_event(&sid, &format!("m{i}"), &format!("text {i}")))
        .collect();
    b.ingest(Value::Array(events)).await;
    let stored = eventually(PATIENCE, || async {
        let session = c.session(&sid).await;
        (session["messages"].as_array()?.len() == 5).then_some(seq_ids(&session))
    })
    .await;
    let last = *stored.last().unwrap();

    // Each node's stream carries the session's status and every message, once, with the contract's ids.
    let (on_owner, _) = live_until(&mut on_c, &sid, last).await;
    for stream in [&mut on_a, &mut on_b] {
        let (seqs, names) = live_until(stream, &sid, last).await;
        assert_eq!(seqs, on_owner, "the same messages as on the owner");
        assert!(names.iter().any(|n| n == "session.status"), "{names:?}");
    }
    assert_eq!(on_owner, stored);

    // No loops: nodes that run nothing published nothing, not even what they received and re-streamed.
    let marker = text_event(&sid, "marker", "marker");
    c.ingest(marker).await;
    let marked = eventually(PATIENCE, || async {
        let seqs = seq_ids(&c.session(&sid).await);
        (seqs.len() == 6).then(|| *seqs.last().unwrap())
    })
    .await;
    for stream in [&mut on_a, &mut on_b, &mut on_c] {
        let (seqs, _) = live_until(stream, &sid, marked).await;
        assert_eq!(seqs, [marked], "nothing came twice before the marker");
    }
    for idle in [&a, &b] {
        assert_eq!(events_counted(idle, "published").await, 0.0);
        assert!(events_counted(idle, "received").await > 0.0);
    }
    assert!(events_counted(&c, "published").await > 0.0);
    assert_eq!(events_counted(&c, "received").await, 0.0);
    for app in [a, b, c] {
        app.stop().await;
    }
}

#[actix_web::test]
async fn a_node_that_stops_hands_its_partitions_to_the_others() {
    let Some(nats) = NatsServer::start_or_skip("a_node_that_stops_hands_its_partitions") else {
        return;
    };
    let (a, b) = (node(&nats, "a").await, node(&nats, "b").await);
    settled(&[&a, &b]).await;
    b.stop().await;
    eventually(PATIENCE, || async {
        let view = cluster_view(&a).await;
        (view["partitions"].as_array()?.len() == PARTITIONS as usize).then_some(())
    })
    .await;
    let view = cluster_view(&a).await;
    let b_view = view["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["nodeId"] == "b")
        .cloned();
    if let Some(b_view) = b_view {
        assert_eq!(b_view["alive"], false, "{view}");
    }
    a.stop().await;
}

#[actix_web::test]
async fn a_node_that_stops_cleanly_leaves_a_snapshot_of_all_it_applied() {
    let Some(nats) = NatsServer::start_or_skip("a_node_that_stops_cleanly_leaves_a_snapshot")
    else {
        return;
    };
    // No periodic snapshot in this test's time.
    let hour = Duration::from_secs(3600);
    let (a, b, c) = (
        node_snapshotting(&nats, "a", hour).await,
        node_snapshotting(&nats, "b", hour).await,
        node_snapshotting(&nats, "c", hour).await,
    );
    let held = settled(&[&a, &b, &c]).await;
    let project = project_in(&held[2], "stopped-on-c");
    let partition = partition::of_project(&project, PARTITIONS);
    let sid = a.start(&project, "synthetic").await;
    for i in 0..3 {
        b.ingest(json!([text_event(
            &sid,
            &format!("m{i}"),
            &format!("text {i}")
        )]))
        .await;
    }
    assert_eq!(
        eventually(PATIENCE, || texts(&a, &sid)).await,
        ["text 0", "text 1", "text 2"]
    );
    c.stop().await;

    // Its snapshot of the partition holds the session, through the last message the stream has for it:
    // a successor replays nothing.
    let js = async_nats::jetstream::new(async_nats::connect(&nats.url).await.unwrap());
    let last = js
        .get_stream("AGENT_STORE_INGEST")
        .await
        .unwrap()
        .get_last_raw_message_by_subject(&format!("agent_store.ingest.{partition}"))
        .await
        .unwrap()
        .sequence;
    let mut object = js
        .get_object_store("agent_store_snapshots")
        .await
        .unwrap()
        .get(format!("p{partition}"))
        .await
        .expect("a snapshot of the partition");
    let mut bytes = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut object, &mut bytes)
        .await
        .unwrap();
    let snapshot: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(snapshot["through"], last);
    let session = snapshot["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["record"]["session_id"] == sid.as_str())
        .expect("the session is in the snapshot");
    assert_eq!(
        session["messages"].as_array().unwrap().len(),
        4,
        "{session}"
    );
    // And the survivors serve it.
    settled(&[&a, &b]).await;
    assert_eq!(
        eventually(PATIENCE, || texts(&b, &sid)).await,
        ["text 0", "text 1", "text 2"]
    );
    for app in [a, b] {
        app.stop().await;
    }
}

#[actix_web::test]
async fn a_node_alone_says_cluster_mode_is_off() {
    let app = TestApp::spawn().await;
    let (status, body) = send(app.get("/v1/cluster")).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "cluster mode is off");
    app.stop().await;
}

#[actix_web::test]
async fn the_load_generator_spreads_over_the_nodes_and_loses_nothing() {
    let Some(nats) = NatsServer::start_or_skip("the_load_generator_spreads_over_the_nodes") else {
        return;
    };
    let (a, b, c, _) = three_nodes(&nats).await;
    let url = |app: &TestApp| reqwest::Url::parse(&app.url("/")).unwrap();
    let spec = TargetSpec::Http {
        url: url(&a),
        others: vec![url(&b), url(&c)],
        token: None,
        server_pid: None,
    };
    let options = Options {
        projects: 12,
        messages: 30,
        batch: 40,
        per_event: 5,
        concurrency: 4,
        quiet: true,
        ..Options::default()
    };
    let report = loadtest::run(spec, options).await.expect("the run passes");
    assert_eq!((report.acked, report.stored, report.errors), (360, 360, 0));
    assert!(report.loss_check.passed, "{:?}", report.loss_check);
    // Every node took requests.
    for app in [&a, &b, &c] {
        let metrics = app.metrics_text().await;
        let published = metrics
            .lines()
            .find(|l| l.starts_with("agent_store_cluster_ingest_total{stage=\"published\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or(0.0);
        assert!(published > 0.0, "a node published nothing");
    }
    for app in [a, b, c] {
        app.stop().await;
    }
}

/// A start the owner cannot put into the ingest stream is refused whole: a node taking the partition over
/// before the next snapshot would not know the session and would ignore every message acknowledged for
/// it. Here the stream refuses the start because its prompt is over NATS's 1 MB payload limit (prompts
/// may be 4 MiB on this node), while the same project's next, smaller start goes through.
#[actix_web::test]
async fn a_start_the_stream_refuses_is_refused_and_leaves_no_session() {
    let Some(nats) = NatsServer::start_or_skip("a_start_the_stream_refuses") else {
        return;
    };
    let a = node_with(&nats, "a", |c| {
        c.limits.max_prompt_bytes = bytesize::ByteSize::mib(4)
    })
    .await;
    settled(&[&a]).await;

    let big = "p".repeat(2 * 1024 * 1024);
    let (status, body) = send(
        a.post("/v1/projects/refused/sessions")
            .json(&json!({"provider": "synthetic", "prompt": big})),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::SERVICE_UNAVAILABLE,
        "the session could not be recorded in the cluster's ingest stream",
    );
    let (status, body) = send(a.get("/v1/projects/refused/session")).await;
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "nothing of it is left: {body}"
    );

    let (status, body) = send(
        a.post("/v1/projects/refused/sessions")
            .json(&json!({"provider": "synthetic", "prompt": "small"})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
}
