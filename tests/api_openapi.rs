//! The OpenAPI document at `/v1/openapi.json` lists exactly the routes the app serves, is a valid OpenAPI
//! 3.1 document (`api_openapi/valid.rs`), and says what the server really answers (`api_openapi/contract.rs`).

mod common;
#[path = "api_openapi/contract.rs"]
mod contract;
#[path = "api_openapi/valid.rs"]
mod valid;

use std::collections::BTreeSet;

use agent_store::api::endpoints;
use common::{send, TestApp};
use reqwest::{Method, StatusCode};

const METHODS: [&str; 5] = ["get", "post", "put", "delete", "patch"];

#[actix_web::test]
async fn the_document_and_the_served_routes_are_the_same() {
    let app = TestApp::spawn().await;
    let (status, doc) = send(app.get("/v1/openapi.json")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );

    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                documented.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    let table: BTreeSet<_> = endpoints()
        .into_iter()
        .map(|e| (e.method.to_string(), e.path.to_owned()))
        .collect();
    assert_eq!(documented, table);

    // And each documented route is really served: the answer is never the router's own 404 or 405.
    for (method, path) in &documented {
        let concrete = path
            .replace("{projectId}", "doc-p")
            .replace("{sessionId}", "doc-p-1700000000000");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let response = app.request(method.clone(), &concrete).send().await.unwrap();
        let status = response.status();
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {concrete}"
        );
        if status == StatusCode::NOT_FOUND {
            let body: serde_json::Value = response.json().await.unwrap();
            let error = body["error"].as_str().unwrap();
            assert!(
                !error.starts_with("no route"),
                "{method} {concrete}: {error}"
            );
        }
    }
    app.stop().await;
}

#[test]
fn every_documented_operation_declares_its_responses() {
    let doc = agent_store::api::openapi();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}");
        }
    }
    let mut ids: Vec<_> = doc["paths"]
        .as_object()
        .unwrap()
        .values()
        .flat_map(|item| item.as_object().unwrap().values())
        .map(|op| op["operationId"].as_str().unwrap().to_owned())
        .collect();
    let count = ids.len();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), count, "operationIds are unique");
    assert_eq!(doc["security"], serde_json::json!([{"bearer": []}]));
    for probe in ["/healthz", "/readyz"] {
        assert_eq!(
            doc["paths"][probe]["get"]["security"],
            serde_json::json!([{}]),
            "{probe}"
        );
    }
    let schemas = doc["components"]["schemas"].as_object().unwrap();
    for name in [
        "AgentSession",
        "AgentMessage",
        "StartRequest",
        "SidecarEvent",
        "ErrorBody",
        "Settings",
    ] {
        assert!(schemas.contains_key(name), "schema {name}");
    }
}
