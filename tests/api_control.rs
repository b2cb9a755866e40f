//! Agents under control over HTTP (issue 15): the policy endpoints, budgets crossed by sidecar cost
//! events, the cost ledger across retention and purges, and the approval answers' refusals. The real
//! server on an ephemeral port, real redb files; sessions of the synthetic provider get their cost from
//! posted `agent.cost` events, as an external sidecar's would.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn put_policy(app: &TestApp, project: &str, body: Value) -> (StatusCode, Value) {
    send(
        app.put(&format!("/v1/projects/{project}/policy"))
            .json(&body),
    )
    .await
}

#[actix_rt::test]
async fn the_policy_reads_its_defaults_takes_fields_one_by_one_and_survives_a_restart() {
    let mut app = TestApp::spawn().await;
    let (status, p) = send(app.get("/v1/projects/p/policy")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        p,
        json!({"approvals": "auto", "approvalTimeout": "10m",
               "budget": {"sessionUsd": null, "dailyUsd": null},
               "stall": {"after": "15m", "action": "notify"}})
    );

    let (status, p) = put_policy(
        &app,
        "p",
        json!({"approvals": "ask", "approvalTimeout": "90s", "budget": {"dailyUsd": 5},
               "stall": {"action": "interrupt"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{p}");
    assert_eq!(p["approvals"], "ask");
    assert_eq!(p["approvalTimeout"], "1m 30s");
    assert_eq!(p["budget"], json!({"sessionUsd": null, "dailyUsd": 5.0}));
    assert_eq!(p["stall"], json!({"after": "15m", "action": "interrupt"}));

    // Each field is checked and named; a refused body changes nothing.
    for (body, field) in [
        (json!({"approvals": "sometimes"}), "approvals"),
        (json!({"approvalTimeout": "0s"}), "approvalTimeout"),
        (json!({"budget": {"sessionUsd": -2}}), "budget.sessionUsd"),
        (json!({"budget": {"dailyUsd": "ten"}}), "budget.dailyUsd"),
        (json!({"budget": {"weeklyUsd": 1}}), "budget"),
        (json!({"stall": {"after": "soon"}}), "stall.after"),
        (json!({"stall": {"action": "panic"}}), "stall.action"),
        (json!({"colour": "red"}), ""),
    ] {
        let (status, err) = put_policy(&app, "p", body.clone()).await;
        assert_error(status, &err, StatusCode::BAD_REQUEST, field);
        let text = err["error"].as_str().unwrap();
        assert!(text.contains(field), "{body}: {text}");
    }
    let (_, same) = send(app.get("/v1/projects/p/policy")).await;
    assert_eq!(same, p);

    // null: back to the configured default; the stall-threshold shorthand sets stall.after.
    let (_, p) = put_policy(
        &app,
        "p",
        json!({"approvals": null, "budget": {"dailyUsd": null}, "stall": {"action": "resume"}}),
    )
    .await;
    assert_eq!(p["approvals"], "auto");
    assert_eq!(p["stall"]["action"], "resume");
    assert_eq!(p["budget"]["dailyUsd"], Value::Null);
    let (status, _) = send(
        app.put("/v1/projects/p/stall-threshold")
            .json(&json!({"stallAfter": "20m"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK);

    app.restart().await;
    let (_, p) = send(app.get("/v1/projects/p/policy")).await;
    assert_eq!(p["approvalTimeout"], "1m 30s", "stored: {p}");
    assert_eq!(p["stall"], json!({"after": "20m", "action": "resume"}));
    app.stop().await;
}

#[actix_rt::test]
async fn a_session_budget_crossed_by_sidecar_cost_stops_the_agent_and_says_so_everywhere() {
    let app = TestApp::spawn().await;
    put_policy(&app, "b", json!({"budget": {"sessionUsd": 0.5}})).await;
    let mut events = app.events("?projectId=b", None).await;
    let s = app.start("b", "synthetic").await;
    app.ingest(cost_event(&s, 0.3, 1000, 100)).await;
    app.ingest(cost_event(&s, 0.6, 2000, 200)).await;

    let (_, exceeded) = events.next_named("budget.exceeded").await;
    assert_eq!(
        exceeded,
        json!({"projectId": "b", "sessionId": s, "spentUsd": 0.6, "limitUsd": 0.5, "period": "session"})
    );
    let (_, status) = events.next_named("session.status").await;
    let status = if status["status"] == "running" {
        events.next_named("session.status").await.1
    } else {
        status
    };
    assert_eq!(status["status"], "error");
    assert_eq!(status["error"], "Budget exceeded: $0.60 of $0.50 (session)");

    let session = app.session(&s).await;
    assert_eq!(session["status"], "error");
    assert_eq!(session["costUsd"], 0.6);
    let (_, health) = send(app.get("/v1/health")).await;
    let h = health
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["projectId"] == "b")
        .unwrap()
        .clone();
    assert_eq!(h["attentionReason"], "budget exceeded", "{h}");
    let text = app.metrics_text().await;
    assert_eq!(sample(&text, "agent_store_budget_exceeded_total", &[]), 1.0);
    let spent = sample(
        &text,
        "agent_store_cost_usd_total",
        &[("provider", "synthetic")],
    );
    assert!((spent - 0.6).abs() < 1e-9, "{spent}");
    app.stop().await;
}

#[actix_rt::test]
async fn a_daily_budget_counts_every_session_of_the_day_and_refuses_new_starts() {
    let app = TestApp::spawn().await;
    put_policy(&app, "d", json!({"budget": {"dailyUsd": 1.0}})).await;
    let first = app.start("d", "synthetic").await;
    app.ingest(json!([
        cost_event(&first, 0.7, 10, 1),
        status_event(&first, "done")
    ]))
    .await;
    let mut events = app.events("?projectId=d", None).await;
    let second = app.start("d", "synthetic").await;
    app.ingest(cost_event(&second, 0.4, 10, 1)).await;
    let (_, exceeded) = events.next_named("budget.exceeded").await;
    assert_eq!(exceeded["period"], "daily");
    assert_eq!(exceeded["sessionId"], second);
    let spent = exceeded["spentUsd"].as_f64().unwrap();
    assert!((spent - 1.1).abs() < 1e-9, "{exceeded}");
    let session = app.session(&second).await;
    assert_eq!(session["error"], "Budget exceeded: $1.10 of $1.00 (daily)");

    let (status, body) = send(
        app.post("/v1/projects/d/sessions")
            .json(&json!({"provider": "synthetic", "prompt": "more"})),
    )
    .await;
    assert_error(
        status,
        &body,
        StatusCode::FORBIDDEN,
        "budget.dailyUsd: Budget exceeded",
    );
    app.stop().await;
}

fn total(cost: &Value) -> f64 {
    cost["totalUsd"].as_f64().unwrap()
}

#[actix_rt::test]
async fn the_ledger_is_the_sum_of_the_sessions_and_outlives_retention_and_purges() {
    let app = TestApp::spawn_with(|c| c.retention.count = 1).await;
    let mut spent = 0.0;
    for (i, cost) in [0.25, 0.5, 1.25].into_iter().enumerate() {
        let s = app.start("l", "synthetic").await;
        // Two snapshots of the same session: the ledger takes the increase, not the sum of snapshots.
        app.ingest(cost_event(&s, cost / 2.0, 100, 10)).await;
        app.ingest_durable(json!([
            cost_event(&s, cost, 200, 20),
            status_event(&s, "done")
        ]))
        .await;
        spent += cost;
        let (_, sessions) = send(app.get("/v1/projects/l/sessions")).await;
        let listed: f64 = sessions
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["costUsd"].as_f64().unwrap())
            .sum();
        if i == 0 {
            assert_eq!(
                listed, spent,
                "the ledger equals the sessions while they exist"
            );
        }
        let (status, cost) = send(app.get("/v1/projects/l/cost")).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(total(&cost), spent, "{cost}");
        assert_eq!(cost["sessions"], i + 1);
        assert_eq!(cost["inputTokens"], 200 * (i + 1));
    }
    // Retention (which runs once a finished session is stored) keeps one session; the ledger kept all.
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let (_, sessions) = send(app.get("/v1/projects/l/sessions")).await;
        if sessions.as_array().unwrap().len() == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "retention never ran: {sessions}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let (_, cost) = send(app.get("/v1/projects/l/cost")).await;
    assert_eq!((total(&cost), &cost["sessions"]), (spent, &json!(3)));

    let other = app.start("m", "synthetic").await;
    app.ingest_durable(json!([
        cost_event(&other, 2.0, 1, 1),
        status_event(&other, "done")
    ]))
    .await;
    let (_, all) = send(app.get("/v1/cost")).await;
    assert_eq!(total(&all), spent + 2.0, "{all}");
    assert_eq!(all["projects"].as_array().unwrap().len(), 2);

    // A day range: today's spend is in today, none is in 2000.
    let (_, cost) = send(app.get("/v1/projects/l/cost?from=2000-01-01&to=2000-12-31")).await;
    assert_eq!(total(&cost), 0.0);
    assert_eq!(cost["days"], json!([]));
    let (status, err) = send(app.get("/v1/projects/l/cost?from=yesterday")).await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, "from: ");

    // A purge deletes the sessions, not the ledger; only ?ledger=true does.
    let (status, _) = send(app.delete("/v1/projects/l")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, cost) = send(app.get("/v1/projects/l/cost")).await;
    assert_eq!(total(&cost), spent);
    let (status, _) = send(app.delete("/v1/projects/l?ledger=true")).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, cost) = send(app.get("/v1/projects/l/cost")).await;
    assert_eq!(total(&cost), 0.0);
    let (_, all) = send(app.get("/v1/cost")).await;
    assert_eq!(total(&all), 2.0, "the other project's ledger stays");
    app.stop().await;
}

#[actix_rt::test]
async fn approvals_list_empty_and_answers_to_nothing_are_refused_by_name() {
    let app = TestApp::spawn().await;
    let (status, list) = send(app.get("/v1/approvals")).await;
    assert_eq!((status, list), (StatusCode::OK, json!([])));
    let (status, err) = send(app.get("/v1/approvals?projectId=no%20such")).await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, "projectId");

    let s = app.start("a", "synthetic").await;
    let path = format!("/v1/sessions/{s}/approvals/r1");
    let (status, err) = send(app.post(&path).json(&json!({"decision": "allow"}))).await;
    assert_error(status, &err, StatusCode::NOT_FOUND, "Approval not found");
    let (status, err) = send(app.post(&path).json(&json!({"decision": "maybe"}))).await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, "decision");
    let (status, err) = send(
        app.post(&path)
            .json(&json!({"decision": "deny", "updatedInput": {}})),
    )
    .await;
    assert_error(status, &err, StatusCode::BAD_REQUEST, "updatedInput");
    app.ingest_durable(status_event(&s, "done")).await;
    let (status, err) = send(app.post(&path).json(&json!({"decision": "allow"}))).await;
    assert_error(status, &err, StatusCode::CONFLICT, "Session no longer runs");
    app.stop().await;
}

#[actix_rt::test]
async fn a_stall_interrupts_the_agent_when_the_policy_says_so_and_retries_do_not_hold_it_off() {
    let app = TestApp::spawn().await;
    let (status, _) = put_policy(
        &app,
        "st",
        json!({"stall": {"after": "300ms", "action": "interrupt"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut events = app.events("?projectId=st", None).await;
    let s = app.start("st", "synthetic").await;
    app.ingest(text_event(&s, "t1", "working")).await;
    // An agent retrying its API without end: retries are activity to a reader, not progress. Were they
    // progress, this loop would keep the session alive and the test would never see the stop.
    let retrying = {
        let (client, url, session) = (client(), app.url("/v1/sidecar/events"), s.clone());
        tokio::spawn(async move {
            for i in 0.. {
                let retry = json!({"event": "agent.message", "payload": {"sessionId": session, "messages": [
                    {"id": format!("r{i}"), "type": "retry", "content": {"message": "API retry: 529 overloaded"}}
                ]}});
                if client.post(&url).json(&retry).send().await.is_err() {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        })
    };
    let error = loop {
        let (_, status) = events.next_named("session.status").await;
        if status["status"] == "error" {
            break status["error"].clone();
        }
    };
    retrying.abort();
    assert_eq!(error, "Stalled: no progress for 0 min");
    let session = app.session(&s).await;
    assert_eq!(session["status"], "error");
    let retries = session["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "system")
        .count();
    assert!(retries >= 1, "the retries were taken: {session}");

    // notify (the default) only warns.
    let (status, _) = put_policy(
        &app,
        "st",
        json!({"stall": {"action": "notify", "after": "300ms"}}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let mut events = app.events("?projectId=st", None).await;
    let s = app.start("st", "synthetic").await;
    let (_, note) = events.next_named("notification").await;
    assert_eq!(
        note["message"],
        "Agent stalled on st (no activity for 0 min)"
    );
    assert_eq!(app.session(&s).await["status"], "running");
    app.stop().await;
}
