//! The document is valid OpenAPI 3.1: every schema in it is a valid JSON Schema 2020-12 (checked against the
//! meta-schema by the `jsonschema` crate), every `$ref` resolves, every path template's parameters are
//! declared, and the OpenAPI fields a validator requires are there. This is what `openapi-spec-validator`
//! refused before (`#/components/schemas/TopBy` did not exist).

use serde_json::{json, Value};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Follows a local `$ref` (`#/components/schemas/X`) in `doc`.
pub fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

/// Every `$ref` in `value`, with where it was found.
fn refs(value: &Value, at: String, out: &mut Vec<(String, String)>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    out.push((at.clone(), v.as_str().unwrap_or_default().to_owned()));
                } else {
                    refs(v, format!("{at}/{k}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                refs(v, format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Every schema object the document holds, with where it is.
fn schemas(doc: &Value) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        out.push((format!("components/schemas/{name}"), schema.clone()));
    }
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, op) in item.as_object().expect("path item") {
            let at = format!("{method} {path}");
            for p in op["parameters"].as_array().into_iter().flatten() {
                out.push((format!("{at} parameter {}", p["name"]), p["schema"].clone()));
            }
            for (kind, media) in op["requestBody"]["content"]
                .as_object()
                .into_iter()
                .flatten()
            {
                out.push((format!("{at} body {kind}"), media["schema"].clone()));
            }
            for (status, r) in op["responses"].as_object().expect("responses") {
                for (kind, media) in r["content"].as_object().into_iter().flatten() {
                    out.push((format!("{at} {status} {kind}"), media["schema"].clone()));
                }
                for (name, h) in r["headers"].as_object().into_iter().flatten() {
                    out.push((format!("{at} {status} header {name}"), h["schema"].clone()));
                }
            }
        }
    }
    out
}

fn check(doc: &Value) {
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1."),
        "{}",
        doc["openapi"]
    );
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());

    let mut found = Vec::new();
    refs(doc, String::new(), &mut found);
    assert!(!found.is_empty());
    for (at, reference) in &found {
        assert!(
            resolve(doc, reference).is_some(),
            "{at}: $ref {reference} does not resolve"
        );
    }

    for (at, schema) in schemas(doc) {
        assert!(schema.is_object(), "{at}: no schema");
        let mut schema = schema;
        schema["$schema"] = json!("https://json-schema.org/draft/2020-12/schema");
        if let Err(e) = jsonschema::meta::validate(&schema) {
            panic!("{at}: not a valid JSON Schema 2020-12: {e}\n{schema:#}");
        }
    }

    let mut ids = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        assert!(path.starts_with('/'), "{path}");
        let templated: Vec<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        for (method, op) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            assert!(ids.insert(op["operationId"].as_str().unwrap().to_owned()));
            let params = op["parameters"].as_array().cloned().unwrap_or_default();
            let in_path: Vec<&str> = params
                .iter()
                .filter(|p| p["in"] == "path")
                .map(|p| {
                    assert_eq!(
                        p["required"], true,
                        "{method} {path}: path parameters are required"
                    );
                    p["name"].as_str().unwrap()
                })
                .collect();
            assert_eq!(in_path, templated, "{method} {path}: path parameters");
            for p in &params {
                assert!(
                    ["query", "header", "path", "cookie"].contains(&p["in"].as_str().unwrap()),
                    "{method} {path}: {p}"
                );
            }
            let responses = op["responses"].as_object().unwrap();
            assert!(!responses.is_empty(), "{method} {path}");
            for (status, r) in responses {
                assert!(
                    status.len() == 3
                        && status.parse::<u16>().is_ok_and(|s| (100..600).contains(&s)),
                    "{method} {path}: status {status}"
                );
                assert!(
                    r["description"].is_string(),
                    "{method} {path} {status}: description"
                );
            }
        }
    }
}

#[test]
fn the_document_is_valid_openapi_3_1() {
    check(&agent_store::api::openapi());
}

#[test]
fn a_broken_document_is_caught() {
    // The checks above would have refused the document of issue 17: a reference to a missing schema.
    let mut doc = agent_store::api::openapi();
    doc["components"]["schemas"]
        .as_object_mut()
        .unwrap()
        .remove("TopBy");
    let refused = std::panic::catch_unwind(|| check(&doc));
    assert!(refused.is_err());
}
