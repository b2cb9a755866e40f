//! The setup phase over HTTP: one session started per project, as lean on the client as it can be.
//!
//! The 100,000-session start measures the server, but on a two-core machine every CPU second the load
//! generator spends is taken from the server it measures. Through `reqwest` a start cost the client
//! ~30 µs: a pooled connection checked out under a lock, a `Url` parsed (and an IDNA pass) per request,
//! the request handed to a connection task on another worker thread and the answer sent back through a
//! channel, each hop a wake-up across threads. Here each of `concurrency` workers owns one keep-alive
//! HTTP/1.1 connection (hyper's client connection), builds its request from parts made once, and all
//! workers run on one current-thread runtime on a thread of their own, whose I/O driver is polled by the
//! same thread that runs them: no request wakes another thread.
//!
//! What the server sees is unchanged: the same `POST /v1/projects/{id}/sessions` with the same body and
//! bearer token, `concurrency` at a time on keep-alive connections.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::{self, SendRequest};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::Request;
use hyper_util::rt::TokioIo;
use reqwest::Url;
use serde::Deserialize;

use super::TargetError;
use crate::loadtest::driver::BUSY_RETRIES;

/// Where and how to start sessions: the nodes in turn, the token on every request.
pub struct Starter {
    nodes: Vec<Node>,
    auth: Option<HeaderValue>,
    provider: &'static str,
}

/// One node: where to connect, its `Host` header, and the path its API lives under.
struct Node {
    addr: std::net::SocketAddr,
    host: HeaderValue,
    base_path: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Started {
    session_id: String,
}

impl Starter {
    pub fn new(
        bases: &[Url],
        token: Option<&str>,
        provider: &'static str,
    ) -> Result<Starter, TargetError> {
        let nodes = bases
            .iter()
            .map(|base| {
                // Bare TCP: an https target needs reqwest's TLS, which this client does not speak.
                if base.scheme() != "http" {
                    return Err(TargetError::decode(
                        base.as_str(),
                        "the setup speaks plain http only",
                    ));
                }
                let host = base.host_str().unwrap_or("localhost");
                let authority = match base.port() {
                    Some(p) => format!("{host}:{p}"),
                    None => host.to_owned(),
                };
                // Looked up once here, not at every (re)connect.
                let addr = base
                    .socket_addrs(|| None)
                    .map_err(|e| TargetError::decode(base.as_str(), e))?
                    .into_iter()
                    .next()
                    .ok_or_else(|| TargetError::decode(base.as_str(), "no address"))?;
                Ok(Node {
                    addr,
                    host: HeaderValue::from_str(&authority)
                        .map_err(|e| TargetError::decode(base.as_str(), e))?,
                    base_path: base.path().trim_end_matches('/').to_owned(),
                })
            })
            .collect::<Result<Vec<_>, TargetError>>()?;
        let auth = token
            .map(|t| HeaderValue::from_str(&format!("Bearer {t}")))
            .transpose()
            .map_err(|e| TargetError::decode("the token", e))?;
        Ok(Starter {
            nodes,
            auth,
            provider,
        })
    }

    /// Starts a session for each of `project_ids`, `concurrency` at a time, counting each started one in
    /// `done`; answers the session ids in the projects' order. Blocks the calling thread, which runs the
    /// workers, until all are started: call it on a thread of its own (`spawn_blocking`).
    pub fn start_all(
        &self,
        project_ids: &[String],
        concurrency: usize,
        done: &AtomicU64,
    ) -> Result<Vec<String>, TargetError> {
        if let Some(bad) = project_ids.iter().find(|id| !path_safe(id)) {
            return Err(TargetError::decode(
                bad,
                "a project id the path cannot carry unescaped",
            ));
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| TargetError::Connect {
                what: "the setup's runtime".to_owned(),
                source: e,
            })?;
        let next = AtomicUsize::new(0);
        let workers = concurrency.clamp(1, project_ids.len().max(1));
        let started = runtime.block_on(async {
            let runs = (0..workers).map(|w| {
                let node = &self.nodes[w % self.nodes.len()];
                self.worker(node, project_ids, &next, done)
            });
            futures_util::future::try_join_all(runs).await
        })?;
        let mut sessions = vec![String::new(); project_ids.len()];
        for (i, session) in started.into_iter().flatten() {
            sessions[i] = session;
        }
        Ok(sessions)
    }

    /// Takes the next project until none is left, on one connection; answers (index, session id) pairs.
    async fn worker(
        &self,
        node: &Node,
        project_ids: &[String],
        next: &AtomicUsize,
        done: &AtomicU64,
    ) -> Result<Vec<(usize, String)>, TargetError> {
        let mut conn = None;
        let mut started = Vec::new();
        loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(project) = project_ids.get(i) else {
                return Ok(started);
            };
            started.push((i, self.start(node, &mut conn, project).await?));
            done.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// One start, sent again while the server answers busy.
    async fn start(
        &self,
        node: &Node,
        conn: &mut Option<SendRequest<Full<Bytes>>>,
        project: &str,
    ) -> Result<String, TargetError> {
        let what = || format!("POST /v1/projects/{project}/sessions");
        let path = format!("{}/v1/projects/{project}/sessions", node.base_path);
        let body = Bytes::from(format!(
            r#"{{"provider":"{}","prompt":"load test of {project}"}}"#,
            self.provider
        ));
        let mut backoff = Duration::from_millis(5);
        let mut attempt = 0;
        loop {
            let sender = ready(node, conn).await.map_err(|e| e.named(what()))?;
            let mut req = Request::post(path.as_str())
                .header(HOST, node.host.clone())
                .header(CONTENT_TYPE, "application/json")
                .body(Full::new(body.clone()))
                .expect("a request of valid parts");
            if let Some(auth) = &self.auth {
                req.headers_mut().insert(AUTHORIZATION, auth.clone());
            }
            let answer = sender.send_request(req).await.map_err(|source| {
                *conn = None;
                TargetError::Http {
                    what: what(),
                    source,
                }
            })?;
            let status = answer.status();
            let body = answer
                .into_body()
                .collect()
                .await
                .map_err(|source| TargetError::Http {
                    what: what(),
                    source,
                })?
                .to_bytes();
            if status.is_success() {
                let started: Started =
                    serde_json::from_slice(&body).map_err(|e| TargetError::decode(&what(), e))?;
                return Ok(started.session_id);
            }
            let refused = TargetError::answered(&what(), status.as_u16(), &body);
            if !refused.is_busy() || attempt == BUSY_RETRIES {
                return Err(refused);
            }
            attempt += 1;
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(500));
        }
    }
}

/// Why a connection could not be had, before the request it was for is named.
enum ConnectError {
    Io(std::io::Error),
    Http(hyper::Error),
}

impl ConnectError {
    fn named(self, what: String) -> TargetError {
        match self {
            ConnectError::Io(source) => TargetError::Connect { what, source },
            ConnectError::Http(source) => TargetError::Http { what, source },
        }
    }
}

/// The worker's connection, ready for a request: (re)connected when there is none or the server closed
/// the idle one (a keep-alive timeout). Nothing was sent on a connection that was not ready, so a start
/// is never sent twice.
async fn ready<'c>(
    node: &Node,
    conn: &'c mut Option<SendRequest<Full<Bytes>>>,
) -> Result<&'c mut SendRequest<Full<Bytes>>, ConnectError> {
    if let Some(sender) = conn.as_mut() {
        if sender.ready().await.is_err() {
            *conn = None;
        }
    }
    if conn.is_none() {
        let stream = tokio::net::TcpStream::connect(node.addr)
            .await
            .map_err(ConnectError::Io)?;
        stream.set_nodelay(true).map_err(ConnectError::Io)?;
        let (sender, connection) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(ConnectError::Http)?;
        // Driven on this same thread; it ends when the sender is dropped or the server closes.
        tokio::spawn(connection);
        *conn = Some(sender);
    }
    Ok(conn.as_mut().expect("connected above"))
}

/// Characters a path segment carries as they are (RFC 3986 unreserved); the load test's ids are made of
/// them.
fn path_safe(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

#[cfg(test)]
mod tests {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::TcpListener;
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A server that answers one request per connection and then closes it, and answers a project's
    /// first start 503 (busy) when its id says `busy`; records the paths it was asked.
    fn closing_server() -> (Url, Arc<Mutex<Vec<String>>>) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let url = Url::parse(&format!("http://{}/", listener.local_addr().unwrap())).unwrap();
        let seen = Arc::new(Mutex::new(Vec::<String>::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.expect("a connection");
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut head = String::new();
                let mut length = 0;
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                        length = v.trim().parse().unwrap();
                    }
                    if head.is_empty() {
                        head = line;
                    }
                }
                if head.is_empty() {
                    continue;
                }
                let mut body = vec![0; length];
                reader.read_exact(&mut body).unwrap();
                let path = head.split(' ').nth(1).unwrap().to_owned();
                let project = path.split('/').nth(3).unwrap().to_owned();
                let mut seen = log.lock().unwrap();
                let first = !seen.contains(&path);
                seen.push(path);
                drop(seen);
                let (status, answer) = if project.contains("busy") && first {
                    ("503 Service Unavailable", r#"{"ok":false}"#.to_owned())
                } else {
                    ("200 OK", format!(r#"{{"sessionId":"s-{project}"}}"#))
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{answer}",
                    answer.len()
                );
            }
        });
        (url, seen)
    }

    #[test]
    fn starts_come_back_in_project_order_across_closed_connections_and_busy_answers() {
        let (url, seen) = closing_server();
        let starter = Starter::new(&[url], Some("t"), "synthetic").unwrap();
        let ids: Vec<String> = ["a", "busy-b", "c", "d"].map(String::from).into();
        let done = AtomicU64::new(0);
        let sessions = starter.start_all(&ids, 2, &done).expect("all started");
        assert_eq!(sessions, ["s-a", "s-busy-b", "s-c", "s-d"]);
        assert_eq!(done.load(Ordering::Relaxed), 4);
        // Every start once, the busy one twice: nothing sent twice on a connection the server closed.
        let mut seen = seen.lock().unwrap().clone();
        seen.sort();
        assert_eq!(
            seen,
            [
                "/v1/projects/a/sessions",
                "/v1/projects/busy-b/sessions",
                "/v1/projects/busy-b/sessions",
                "/v1/projects/c/sessions",
                "/v1/projects/d/sessions",
            ]
        );
    }

    #[test]
    fn a_project_id_the_path_cannot_carry_is_refused_by_name() {
        let url = Url::parse("http://127.0.0.1:1/").unwrap();
        let starter = Starter::new(&[url], None, "synthetic").unwrap();
        let err = starter
            .start_all(&["a/b".to_owned()], 1, &AtomicU64::new(0))
            .expect_err("refused before any request");
        assert!(err.to_string().contains("a/b"), "{err}");
    }

    #[test]
    fn an_https_target_is_refused_by_name_not_spoken_to_in_plain_text() {
        let url = Url::parse("https://127.0.0.1:1/").unwrap();
        let Err(err) = Starter::new(&[url], None, "synthetic") else {
            panic!("a plain-TCP client must not take an https target");
        };
        assert!(err.to_string().contains("https://127.0.0.1:1/"), "{err}");
    }
}
