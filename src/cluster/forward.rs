//! Requests for a project this node does not own, carried over NATS request/reply to the node that does.
//! The request crosses as it came (method, path and query, the headers that matter, the body) and the owner
//! answers it through its own HTTP API on loopback, so every route behaves the same on every node and the
//! owner applies its own authentication, validation and limits. The forwarded request is marked, so an owner
//! that has just lost the partition serves it rather than bouncing it on.

use std::net::SocketAddr;
use std::time::Duration;

use async_nats::HeaderMap;
use bytes::Bytes;
use futures_util::StreamExt;

use super::error::ClusterError;
use super::metrics::ClusterMetrics;

/// Marks a request forwarded by another node (its value names that node).
pub const FORWARDED_HEADER: &str = "x-agent-store-forwarded";
/// The request headers carried to the owner; the rest (hop-by-hop, Host, Origin) stay behind.
const CARRIED: [&str; 4] = ["authorization", "content-type", "accept", "last-event-id"];
const METHOD: &str = "X-Agent-Store-Method";
const PATH: &str = "X-Agent-Store-Path";
const STATUS: &str = "X-Agent-Store-Status";

/// The subject a node answers forwarded requests on.
pub fn subject(node_id: &str) -> String {
    format!("agent_store.node.{node_id}.http")
}

/// A request to forward.
#[derive(Debug, Clone)]
pub struct Forward {
    pub method: String,
    /// Path and query, e.g. `/v1/projects/p/session?limit=5`.
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// The owner's answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: Bytes,
}

/// Sends `request` to `node` and waits up to `timeout` for its answer.
pub async fn send(
    client: &async_nats::Client,
    node: &str,
    request: Forward,
    timeout: Duration,
    metrics: &ClusterMetrics,
) -> Result<Answer, ClusterError> {
    let mut headers = HeaderMap::new();
    headers.insert(METHOD, request.method.as_str());
    headers.insert(PATH, request.path.as_str());
    for (name, value) in &request.headers {
        if CARRIED.contains(&name.to_ascii_lowercase().as_str()) {
            headers.insert(name.as_str(), value.as_str());
        }
    }
    metrics.forwarded.with_label_values(&["sent"]).inc();
    let reply = client
        .send_request(
            subject(node),
            async_nats::Request::new()
                .headers(headers)
                .payload(request.body)
                .timeout(Some(timeout)),
        )
        .await
        .map_err(|e| {
            metrics.forwarded.with_label_values(&["failed"]).inc();
            ClusterError::Forward {
                node: node.into(),
                message: e.to_string(),
            }
        })?;
    let header = |name: &str| {
        reply
            .headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    let status =
        header(STATUS)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| ClusterError::Forward {
                node: node.into(),
                message: "the answer carries no status".into(),
            })?;
    metrics.forwarded.with_label_values(&["answered"]).inc();
    Ok(Answer {
        status,
        content_type: header("Content-Type"),
        body: reply.payload,
    })
}

/// Answers forwarded requests addressed to `node_id` by replaying them against this node's own API at
/// `local` (loopback), until the subscription ends (the connection closes).
pub async fn serve(
    client: async_nats::Client,
    node_id: String,
    local: SocketAddr,
    timeout: Duration,
    metrics: ClusterMetrics,
) -> Result<(), ClusterError> {
    let mut requests = client
        .subscribe(subject(&node_id))
        .await
        .map_err(|e| ClusterError::jetstream("subscribing to forwarded requests", e))?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(timeout)
        .build()
        .map_err(|e| ClusterError::jetstream("building the loopback client", e))?;
    let base = format!("http://{}", loopback(local));
    tokio::spawn(async move {
        while let Some(message) = requests.next().await {
            let (client, http, base, node_id, metrics) = (
                client.clone(),
                http.clone(),
                base.clone(),
                node_id.clone(),
                metrics.clone(),
            );
            tokio::spawn(async move {
                let Some(reply) = message.reply.clone() else {
                    return;
                };
                let (headers, body) = answer(&http, &base, &node_id, message).await;
                metrics.forwarded.with_label_values(&["served"]).inc();
                if let Err(e) = client.publish_with_headers(reply, headers, body).await {
                    tracing::warn!(error = %e, "cluster: cannot answer a forwarded request");
                }
            });
        }
    });
    Ok(())
}

/// Replays one forwarded request on loopback; any failure becomes a 502 answer naming it.
async fn answer(
    http: &reqwest::Client,
    base: &str,
    node_id: &str,
    message: async_nats::Message,
) -> (HeaderMap, Bytes) {
    let mut out = HeaderMap::new();
    let Some(headers) = message.headers.as_ref() else {
        out.insert(STATUS, "400");
        return (
            out,
            Bytes::from_static(b"{\"ok\":false,\"error\":\"forwarded request without headers\"}"),
        );
    };
    let method = headers
        .get(METHOD)
        .and_then(|m| reqwest::Method::from_bytes(m.as_str().as_bytes()).ok())
        .unwrap_or(reqwest::Method::GET);
    let path = headers
        .get(PATH)
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    if !path.starts_with('/') {
        out.insert(STATUS, "400");
        return (
            out,
            Bytes::from_static(b"{\"ok\":false,\"error\":\"forwarded request without a path\"}"),
        );
    }
    let mut request = http
        .request(method, format!("{base}{path}"))
        .header(FORWARDED_HEADER, node_id)
        .body(message.payload.clone());
    for name in CARRIED {
        if let Some(value) = headers.get(name) {
            request = request.header(name, value.as_str());
        }
    }
    match request.send().await {
        Ok(response) => {
            out.insert(STATUS, response.status().as_u16().to_string());
            if let Some(ct) = response
                .headers()
                .get(reqwest::header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
            {
                out.insert("Content-Type", ct);
            }
            let body = response.bytes().await.unwrap_or_default();
            (out, body)
        }
        Err(e) => {
            out.insert(STATUS, "502");
            out.insert("Content-Type", "application/json");
            let body = serde_json::json!({
                "ok": false,
                "error": format!("node {node_id} could not answer a forwarded request: {e}"),
            });
            (out, Bytes::from(body.to_string()))
        }
    }
}

/// Where this node's API answers on loopback: an unspecified bind address (0.0.0.0, ::) is reached through
/// the loopback address of its family.
fn loopback(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(ip) if ip.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(ip) if ip.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}
