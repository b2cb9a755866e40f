//! The HTTP target: a running `agent-store serve`, spoken to as `API.md` says, with one pooled
//! `reqwest::Client` (keep-alive connections, no Nagle delay) and the bearer token on every call. Given
//! several nodes of a cluster (`--target URL1,URL2,...`), requests go to them in turn and the live stream is
//! read from each (a node streams the events of the sessions it runs).

use std::borrow::Cow;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use futures_util::StreamExt;
use reqwest::{Client, Method, RequestBuilder, Url};
use serde::Deserialize;

use super::sse::SseReader;
use super::starter::Starter;
use super::{IngestAck, LiveItem, StoredMessage, TargetError};
use crate::loadtest::payload::Outgoing;

/// The provider name sessions are started with.
const PROVIDER: &str = "synthetic";

pub struct Http {
    client: Client,
    /// The nodes, first the one named first; requests take them in turn.
    bases: Vec<Url>,
    next: AtomicUsize,
    token: Option<String>,
}

fn request_error(what: impl Into<String>) -> impl FnOnce(reqwest::Error) -> TargetError {
    let what = what.into();
    move |source| TargetError::Request { what, source }
}

/// Turns a non-success answer into an error (`TargetError::answered`).
async fn check(what: &str, resp: reqwest::Response) -> Result<reqwest::Response, TargetError> {
    let status = resp.status();
    if status.is_success() {
        return Ok(resp);
    }
    let body = resp.bytes().await.unwrap_or_default();
    Err(TargetError::answered(what, status.as_u16(), &body))
}

#[derive(Deserialize)]
struct Accepted {
    accepted: usize,
    #[serde(default)]
    ignored: usize,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Summary {
    session_id: String,
    message_count: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SessionPage {
    messages: Vec<PageMessage>,
    #[serde(default)]
    last_seq_id: Option<u64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageMessage {
    id: String,
    seq_id: u64,
}

/// The parts of a `session.messages` event the probe reads; message contents are skipped unparsed.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct LiveMessages<'a> {
    #[serde(borrow)]
    session_id: Cow<'a, str>,
    #[serde(borrow)]
    messages: Vec<LiveId<'a>>,
}

#[derive(Deserialize)]
struct LiveId<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Lagged {
    missed: u64,
}

impl Http {
    /// `base` is the server's root URL (`http://127.0.0.1:7878`); `pool` the idle connections to keep.
    pub fn new(base: Url, token: Option<String>, pool: usize) -> Result<Http, TargetError> {
        let client = Client::builder()
            .pool_max_idle_per_host(pool)
            .tcp_nodelay(true)
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(request_error("building the HTTP client"))?;
        Ok(Http {
            client,
            bases: vec![base],
            next: AtomicUsize::new(0),
            token,
        })
    }

    /// Spreads the requests over `others` as well (the other nodes of a cluster).
    pub fn with_nodes(mut self, others: Vec<Url>) -> Http {
        self.bases.extend(others);
        self
    }

    /// `path` on the next node in turn.
    fn url(&self, path: &str) -> Url {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.bases.len();
        url_at(&self.bases[i], path)
    }

    fn call(&self, method: Method, url: Url) -> RequestBuilder {
        let req = self.client.request(method, url);
        match &self.token {
            Some(t) => req.bearer_auth(t),
            None => req,
        }
    }

    /// A GET, sent once more when the first attempt never got an answer: a pooled keep-alive connection
    /// the server closed just as it was reused fails that way, and a read is safe to repeat.
    async fn read(&self, url: Url) -> reqwest::Result<reqwest::Response> {
        match self.call(Method::GET, url.clone()).send().await {
            Err(e) if e.status().is_none() && !e.is_timeout() => {
                self.call(Method::GET, url).send().await
            }
            answer => answer,
        }
    }

    /// Starts a session for each project, `concurrency` at a time, on bare keep-alive connections driven
    /// by a thread of their own (src/loadtest/target/starter.rs), counting each in `done`; answers the
    /// session ids in the projects' order.
    pub async fn start_sessions(
        &self,
        project_ids: Arc<Vec<String>>,
        concurrency: usize,
        done: Arc<AtomicU64>,
    ) -> Result<Vec<String>, TargetError> {
        let (bases, token) = (self.bases.clone(), self.token.clone());
        // On that thread from the start: making the starter may look the nodes' names up.
        tokio::task::spawn_blocking(move || {
            Starter::new(&bases, token.as_deref(), PROVIDER)?.start_all(
                &project_ids,
                concurrency,
                &done,
            )
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
    }

    pub async fn ingest(
        &self,
        out: &Outgoing<'_>,
        durable: bool,
    ) -> Result<(IngestAck, usize), TargetError> {
        const WHAT: &str = "POST /v1/sidecar/events";
        let body = out.json();
        let len = body.len();
        let mut url = self.url("/v1/sidecar/events");
        if durable {
            url.set_query(Some("durable=true"));
        }
        let resp = self
            .call(Method::POST, url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
            .map_err(request_error(WHAT))?;
        let a: Accepted = check(WHAT, resp)
            .await?
            .json()
            .await
            .map_err(|e| TargetError::decode(WHAT, e))?;
        let ack = IngestAck {
            accepted: a.accepted,
            ignored: a.ignored,
        };
        Ok((ack, len))
    }

    /// Reads the live stream of every node, handing each event to `on`.
    pub async fn watch<F>(&self, on: F) -> Result<tokio::task::JoinHandle<()>, TargetError>
    where
        F: FnMut(LiveItem<'_>) + Send + 'static,
    {
        let on = Arc::new(Mutex::new(on));
        let mut readers = Vec::with_capacity(self.bases.len());
        for base in &self.bases {
            let on = on.clone();
            readers.push(
                self.watch_one(base, move |item| {
                    (on.lock().unwrap_or_else(|p| p.into_inner()))(item)
                })
                .await?,
            );
        }
        Ok(tokio::spawn(async move {
            for reader in readers {
                let _ = reader.await;
            }
        }))
    }

    async fn watch_one<F>(
        &self,
        base: &Url,
        mut on: F,
    ) -> Result<tokio::task::JoinHandle<()>, TargetError>
    where
        F: FnMut(LiveItem<'_>) + Send + 'static,
    {
        const WHAT: &str = "GET /v1/events";
        let resp = self
            .call(Method::GET, url_at(base, "/v1/events"))
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(request_error(WHAT))?;
        let resp = check(WHAT, resp).await?;
        Ok(tokio::spawn(async move {
            let mut stream = resp.bytes_stream();
            let mut reader = SseReader::default();
            while let Some(Ok(chunk)) = stream.next().await {
                reader.push(&chunk);
                while let Some(ev) = reader.next_event() {
                    match ev.event.as_str() {
                        "session.messages" => {
                            if let Ok(m) = serde_json::from_str::<LiveMessages>(&ev.data) {
                                for id in &m.messages {
                                    on(LiveItem::Message {
                                        session_id: &m.session_id,
                                        id: &id.id,
                                    });
                                }
                            }
                        }
                        "lagged" => {
                            if let Ok(l) = serde_json::from_str::<Lagged>(&ev.data) {
                                on(LiveItem::Lagged(l.missed));
                            }
                        }
                        _ => {}
                    }
                }
            }
        }))
    }

    /// The stored message counts of `(project, session)` pairs, requested concurrently (the server has no
    /// read of several projects at once).
    pub async fn stored_counts(
        &self,
        sessions: &[(&str, &str)],
    ) -> Result<Vec<Option<u64>>, TargetError> {
        join_all(sessions.iter().map(|(p, s)| self.stored_count(p, s)))
            .await
            .into_iter()
            .collect()
    }

    async fn stored_count(
        &self,
        project_id: &str,
        session_id: &str,
    ) -> Result<Option<u64>, TargetError> {
        let what = format!("GET /v1/projects/{project_id}/sessions");
        let resp = self
            .call(
                Method::GET,
                self.url(&format!("/v1/projects/{project_id}/sessions")),
            )
            .send()
            .await
            .map_err(request_error(&what))?;
        let sessions: Vec<Summary> = check(&what, resp)
            .await?
            .json()
            .await
            .map_err(|e| TargetError::decode(&what, e))?;
        Ok(sessions
            .into_iter()
            .find(|s| s.session_id == session_id)
            .map(|s| s.message_count))
    }

    pub async fn messages(&self, session_id: &str) -> Result<Vec<StoredMessage>, TargetError> {
        const PAGE: usize = 10_000;
        let what = format!("GET /v1/sessions/{session_id}");
        let mut out = Vec::new();
        let mut after = 0u64;
        loop {
            let mut url = self.url(&format!("/v1/sessions/{session_id}"));
            url.set_query(Some(&format!("afterSeq={after}&limit={PAGE}")));
            let resp = self.read(url).await.map_err(request_error(&what))?;
            let page: SessionPage = check(&what, resp)
                .await?
                .json()
                .await
                .map_err(|e| TargetError::decode(&what, e))?;
            let last = page.messages.last().map_or(0, |m| m.seq_id);
            let stored = page.messages.into_iter().map(|m| StoredMessage {
                seq_id: m.seq_id,
                id: m.id,
            });
            out.extend(stored);
            // A page that does not move forward would loop for ever; what it held is checked anyway.
            if last <= after || page.last_seq_id.is_some_and(|l| last >= l) {
                break;
            }
            after = last;
        }
        Ok(out)
    }

    /// The server's resident memory from `/metrics` (`process_resident_memory_bytes`), if it exports it.
    pub async fn metrics_rss(&self) -> Option<u64> {
        let resp = self
            .call(Method::GET, self.url("/metrics"))
            .send()
            .await
            .ok()?;
        let text = resp.error_for_status().ok()?.text().await.ok()?;
        parse_metric(&text, "process_resident_memory_bytes")
    }
}

/// `path` under `base`, keeping a base path (`http://host/store/` + `/v1/events`).
fn url_at(base: &Url, path: &str) -> Url {
    let mut url = base.clone();
    let joined = format!("{}{}", base.path().trim_end_matches('/'), path);
    url.set_path(&joined);
    url
}

/// The value of an unlabelled metric in Prometheus text exposition.
fn parse_metric(text: &str, name: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let rest = line.strip_prefix(name)?.strip_prefix(' ')?;
        rest.split_whitespace()
            .next()?
            .parse::<f64>()
            .ok()
            .map(|v| v as u64)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resident_memory_metric() {
        let text = "# TYPE process_resident_memory_bytes gauge\n\
                    process_resident_memory_bytes_total 1\n\
                    process_resident_memory_bytes 1.2345e7\n";
        assert_eq!(
            parse_metric(text, "process_resident_memory_bytes"),
            Some(12_345_000)
        );
        assert_eq!(parse_metric("", "process_resident_memory_bytes"), None);
    }

    #[test]
    fn urls_keep_a_base_path() {
        let h = Http::new(Url::parse("http://127.0.0.1:1/store/").unwrap(), None, 1).unwrap();
        assert_eq!(
            h.url("/v1/events").as_str(),
            "http://127.0.0.1:1/store/v1/events"
        );
    }
}
