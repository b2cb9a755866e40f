//! The setup phase over HTTP: one session started per project, as lean on the client as it can be.
//!
//! The 100,000-session start measures the server, but on a two-core machine every CPU second the load
//! generator spends is taken from the server it measures. Through `reqwest` a start cost the client
//! ~30 µs: a pooled connection checked out under a lock, a `Url` parsed (and an IDNA pass) per request,
//! the request handed to a connection task on another worker thread and the answer sent back through a
//! channel, each hop a wake-up across threads. Through hyper's client connection it still cost ~11 µs: a
//! header map, a request and a body channel made per request, and a connection task of its own that the
//! request and its answer were handed to and back. Here each of `concurrency` workers owns one keep-alive
//! HTTP/1.1 connection and two buffers: it writes its request's bytes (formatted into the reused buffer)
//! and reads the answer into the other, parsing only what it checks: the status, `Content-Length`,
//! `Connection: close`, and the body's `sessionId`. All workers run on one current-thread runtime on a
//! thread of their own, whose I/O driver is polled by the same thread that runs them: no request wakes
//! another thread.
//!
//! What the server sees is unchanged: the same `POST /v1/projects/{id}/sessions` with the same body and
//! bearer token, `concurrency` at a time on keep-alive connections.

use std::io::ErrorKind;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use reqwest::Url;
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::TargetError;
use crate::loadtest::driver::BusyBackoff;

/// Where and how to start sessions: the nodes in turn, the token on every request.
pub struct Starter {
    nodes: Vec<Node>,
    /// `authorization: Bearer …\r\n`, or empty without a token.
    auth: String,
    provider: &'static str,
}

/// One node: where to connect, its `Host` header, and the path its API lives under.
struct Node {
    addr: std::net::SocketAddr,
    host: String,
    base_path: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Started<'a> {
    #[serde(borrow)]
    session_id: std::borrow::Cow<'a, str>,
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
                    host: authority,
                    base_path: base.path().trim_end_matches('/').to_owned(),
                })
            })
            .collect::<Result<Vec<_>, TargetError>>()?;
        let auth = match token {
            // Written into every request's head as it is: a line break in it would forge headers.
            Some(t) if t.bytes().any(|b| b.is_ascii_control()) => {
                return Err(TargetError::decode("the token", "a control character"))
            }
            Some(t) => format!("authorization: Bearer {t}\r\n"),
            None => String::new(),
        };
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
        let mut conn = Conn {
            stream: None,
            request: Vec::with_capacity(512),
            answer: Vec::with_capacity(1024),
        };
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
        conn: &mut Conn,
        project: &str,
    ) -> Result<String, TargetError> {
        let what = || format!("POST /v1/projects/{project}/sessions");
        self.request(node, project, &mut conn.request);
        let mut backoff = BusyBackoff::new();
        loop {
            let answer = conn.exchange(node).await.map_err(|e| e.named(what()))?;
            let body = &conn.answer[answer.body.clone()];
            if (200..300).contains(&answer.status) {
                let started: Started =
                    serde_json::from_slice(body).map_err(|e| TargetError::decode(&what(), e))?;
                return Ok(started.session_id.into_owned());
            }
            let refused = TargetError::answered(&what(), answer.status, body);
            if !refused.is_busy() || !backoff.wait().await {
                return Err(refused);
            }
        }
    }

    /// The start's request, head and body, written into `out` (cleared first).
    fn request(&self, node: &Node, project: &str, out: &mut Vec<u8>) {
        const BODY: [&str; 3] = [r#"{"provider":""#, r#"","prompt":"load test of "#, r#""}"#];
        let body_len =
            BODY.iter().map(|s| s.len()).sum::<usize>() + self.provider.len() + project.len();
        out.clear();
        for part in [
            "POST ",
            &node.base_path,
            "/v1/projects/",
            project,
            "/sessions HTTP/1.1\r\nhost: ",
            &node.host,
            "\r\ncontent-type: application/json\r\n",
            &self.auth,
            "content-length: ",
        ] {
            out.extend_from_slice(part.as_bytes());
        }
        use std::io::Write as _;
        let _ = write!(out, "{body_len}\r\n\r\n");
        for part in [BODY[0], self.provider, BODY[1], project, BODY[2]] {
            out.extend_from_slice(part.as_bytes());
        }
    }
}

/// A worker's connection (none until the first request, or after the server closed it) and its buffers.
struct Conn {
    stream: Option<TcpStream>,
    /// The request to send, formatted once per start (a busy answer sends it again).
    request: Vec<u8>,
    /// The last answer, head and body.
    answer: Vec<u8>,
}

/// What was answered: the status and where the body lies in `Conn::answer`.
struct Answer {
    status: u16,
    body: std::ops::Range<usize>,
}

/// Why an exchange failed, before the request it was for is named.
enum ExchangeError {
    Io(std::io::Error),
    /// The answer is not one this client reads (`Content-Length` framed HTTP/1.1).
    Malformed(&'static str),
}

impl ExchangeError {
    fn named(self, what: String) -> TargetError {
        match self {
            ExchangeError::Io(source) => TargetError::Connect { what, source },
            ExchangeError::Malformed(message) => TargetError::decode(&what, message),
        }
    }
}

impl Conn {
    /// Sends the request and reads its whole answer into `answer`. A connection the server closed while
    /// it was idle (a keep-alive timeout) is replaced before anything is sent on it, so a start is never
    /// sent twice; one the answer asks to close (`Connection: close`) is dropped after it.
    async fn exchange(&mut self, node: &Node) -> Result<Answer, ExchangeError> {
        let stream = match self.stream.take().filter(still_open) {
            Some(stream) => stream,
            None => {
                let stream = TcpStream::connect(node.addr)
                    .await
                    .map_err(ExchangeError::Io)?;
                stream.set_nodelay(true).map_err(ExchangeError::Io)?;
                stream
            }
        };
        let stream = self.stream.insert(stream);
        stream
            .write_all(&self.request)
            .await
            .map_err(ExchangeError::Io)?;
        self.answer.clear();
        let mut head: Option<Head> = None;
        loop {
            if let Some(h) = &head {
                if self.answer.len() >= h.end + h.length {
                    break;
                }
            }
            self.answer.reserve(1024);
            let n = stream
                .read_buf(&mut self.answer)
                .await
                .map_err(ExchangeError::Io)?;
            if n == 0 {
                self.stream = None;
                return Err(ExchangeError::Io(ErrorKind::UnexpectedEof.into()));
            }
            if head.is_none() {
                head = parse_head(&self.answer)?;
            }
        }
        let head = head.expect("read until the head was whole");
        if self.answer.len() > head.end + head.length {
            self.stream = None;
            return Err(ExchangeError::Malformed(
                "more bytes than the answer's length",
            ));
        }
        if head.close {
            self.stream = None;
        }
        Ok(Answer {
            status: head.status,
            body: head.end..head.end + head.length,
        })
    }
}

/// An answer's head, as far as this client reads it.
struct Head {
    status: u16,
    /// Where the body starts.
    end: usize,
    /// The body's length (`Content-Length`).
    length: usize,
    /// The server closes the connection after this answer.
    close: bool,
}

/// The head of the answer in `bytes`, once it is all there (None before).
fn parse_head(bytes: &[u8]) -> Result<Option<Head>, ExchangeError> {
    let Some(at) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&bytes[..at])
        .map_err(|_| ExchangeError::Malformed("a head that is not text"))?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let (version, rest) = status_line
        .split_once(' ')
        .ok_or(ExchangeError::Malformed("no status line"))?;
    let status = rest
        .get(..3)
        .and_then(|code| code.parse().ok())
        .ok_or(ExchangeError::Malformed("no status code"))?;
    let (mut length, mut close) = (None, version == "HTTP/1.0");
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(
                value
                    .parse()
                    .map_err(|_| ExchangeError::Malformed("a bad Content-Length"))?,
            );
        } else if name.eq_ignore_ascii_case("connection") {
            close = value.eq_ignore_ascii_case("close");
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ExchangeError::Malformed("a chunked answer"));
        }
    }
    Ok(Some(Head {
        status,
        end: at + 4,
        length: length.ok_or(ExchangeError::Malformed("no Content-Length"))?,
        close,
    }))
}

/// Whether an idle connection can carry a request: nothing arrived on it since its last answer (neither
/// the server's close nor stray bytes). Reads only when the runtime saw it readable.
fn still_open(stream: &TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.try_read(&mut byte), Err(e) if e.kind() == ErrorKind::WouldBlock)
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

    /// What `keep_alive_server` saw: connections accepted, and every request whole.
    type Seen = Arc<Mutex<(usize, Vec<String>)>>;

    /// A server that keeps its connections open and answers every request on them; counts the
    /// connections it accepted and records the requests, whole.
    fn keep_alive_server() -> (Url, Seen) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
        let url = Url::parse(&format!("http://{}/api/", listener.local_addr().unwrap())).unwrap();
        let seen = Arc::new(Mutex::new((0, Vec::new())));
        let log = seen.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.expect("a connection");
                log.lock().unwrap().0 += 1;
                let log = log.clone();
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().unwrap());
                    loop {
                        let (mut head, mut length) = (String::new(), 0);
                        loop {
                            let mut line = String::new();
                            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                                return;
                            }
                            if let Some(v) =
                                line.to_ascii_lowercase().strip_prefix("content-length:")
                            {
                                length = v.trim().parse().unwrap();
                            }
                            head.push_str(&line);
                            if line == "\r\n" {
                                break;
                            }
                        }
                        let mut body = vec![0; length];
                        reader.read_exact(&mut body).unwrap();
                        // "POST /api/v1/projects/{id}/sessions …"
                        let project = head.split('/').nth(4).unwrap().to_owned();
                        log.lock()
                            .unwrap()
                            .1
                            .push(head + &String::from_utf8(body).unwrap());
                        let answer =
                            format!(r#"{{"sessionId":"s-{project}","projectId":"{project}"}}"#);
                        // The head split over two writes: the client reads until the answer is whole.
                        let _ = write!(
                            stream,
                            "HTTP/1.1 201 Created\r\nContent-Type: application/json\r\n"
                        );
                        let _ = stream.flush();
                        let _ = write!(stream, "content-length: {}\r\n\r\n{answer}", answer.len());
                    }
                });
            }
        });
        (url, seen)
    }

    #[test]
    fn each_worker_sends_its_starts_on_one_kept_connection_with_the_whole_request() {
        let (url, seen) = keep_alive_server();
        let starter = Starter::new(&[url], Some("t"), "synthetic").unwrap();
        let ids: Vec<String> = ["a", "b", "c"].map(String::from).into();
        let done = AtomicU64::new(0);
        let sessions = starter.start_all(&ids, 1, &done).expect("all started");
        assert_eq!(sessions, ["s-a", "s-b", "s-c"]);
        let (connections, requests) = seen.lock().unwrap().clone();
        assert_eq!(connections, 1, "one worker, one kept-alive connection");
        let body = r#"{"provider":"synthetic","prompt":"load test of b"}"#;
        assert_eq!(
            requests[1],
            format!(
                "POST /api/v1/projects/b/sessions HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
                 authorization: Bearer t\r\ncontent-length: {}\r\n\r\n{body}",
                starter.nodes[0].host,
                body.len()
            )
        );
    }

    #[test]
    fn an_answer_head_is_read_once_whole_and_only_as_far_as_the_start_needs() {
        let head = |text: &str| match parse_head(text.as_bytes()) {
            Ok(head) => head.map(|h| (h.status, h.end, h.length, h.close)),
            Err(ExchangeError::Malformed(why)) => panic!("{text:?}: {why}"),
            Err(ExchangeError::Io(e)) => panic!("{e}"),
        };
        assert_eq!(head("HTTP/1.1 201 Created\r\ncontent-length: 2"), None);
        assert_eq!(
            head("HTTP/1.1 201 Created\r\nContent-Length: 12\r\n\r\n{}"),
            Some((201, 44, 12, false))
        );
        assert_eq!(
            head("HTTP/1.1 503 Busy\r\nconnection: Close\r\ncontent-length: 0\r\n\r\n"),
            Some((503, 59, 0, true))
        );
        assert_eq!(
            head("HTTP/1.0 200 OK\r\ncontent-length: 0\r\n\r\n"),
            Some((200, 38, 0, true))
        );
        for bad in [
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n",
            "HTTP/1.1 200 OK\r\n\r\n",
            "HTTP/1.1 2x0 OK\r\ncontent-length: 0\r\n\r\n",
        ] {
            assert!(
                matches!(parse_head(bad.as_bytes()), Err(ExchangeError::Malformed(_))),
                "{bad:?} refused"
            );
        }
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
