//! The browser boundary: what a web page open next to this service can make a browser send here, refused
//! before any handler (or the token check) sees it. Three doors are shut, on every route:
//!
//! - DNS rebinding: a page on `evil.example` re-pointed at 127.0.0.1 talks to this port as its own origin
//!   and can read the answers; its requests carry `Host: evil.example:<port>`. Without a token, a `Host`
//!   that is neither loopback nor listed in `server.allowed_hosts` is refused (403).
//! - Cross-origin calls: every request a page makes with a body, and every `fetch`/`EventSource`, carries
//!   `Origin`. An `Origin` that is not the server's own (the ops console it serves) nor listed in
//!   `server.allowed_origins` is refused (403). Listed origins get CORS headers (actix-cors, outside this
//!   file); nobody else does, so no other page can read an answer.
//! - "Simple" requests: a page may POST `text/plain`, a form or a typeless blob without asking first
//!   (no preflight). A body is accepted only as JSON (`application/json`, or `application/x-ndjson` on the
//!   sidecar route), which a page cannot send cross-origin without a preflight that nobody answers (415).
//!
//! With a token configured, a page cannot present it, so the lists apply only once they are set. See
//! RELIABILITY.md, "Threat model", for the whole table of probes and answers.

use std::net::IpAddr;

use actix_web::http::header::{
    HeaderMap, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN, TRANSFER_ENCODING,
};

use super::errors::ApiError;
use crate::config::ServerConfig;

/// The one route whose body may also be NDJSON.
const NDJSON_PATH: &str = "/v1/sidecar/events";

/// The rules in force, built once from the configuration.
#[derive(Debug, Clone)]
pub struct Guard {
    /// Check `Host` (no token, or `allowed_hosts` set).
    check_hosts: bool,
    /// Check `Origin` (no token, or `allowed_origins` set).
    check_origins: bool,
    /// `server.allowed_hosts`, lowercased.
    allowed_hosts: Vec<String>,
    /// `server.allowed_origins`, lowercased, without a trailing slash.
    allowed_origins: Vec<String>,
}

impl Guard {
    pub fn new(server: &ServerConfig, has_token: bool) -> Guard {
        Guard {
            check_hosts: !has_token || !server.allowed_hosts.is_empty(),
            check_origins: !has_token || !server.allowed_origins.is_empty(),
            allowed_hosts: server
                .allowed_hosts
                .iter()
                .map(|h| h.trim().to_ascii_lowercase())
                .collect(),
            allowed_origins: server
                .allowed_origins
                .iter()
                .map(|o| normal_origin(o))
                .collect(),
        }
    }

    /// Refuses a request a page could have made, naming the header at fault.
    pub fn check(&self, path: &str, headers: &HeaderMap) -> Result<(), ApiError> {
        let host = single(headers, HOST, "Host")?;
        if self.check_hosts {
            let host = host.ok_or_else(|| ApiError::forbidden("Host", "is missing"))?;
            if !self.host_allowed(host) {
                return Err(ApiError::forbidden(
                    "Host",
                    format!(
                        "{host:?} is not a loopback name or address, nor listed in \
                         server.allowed_hosts"
                    ),
                ));
            }
        }
        if let Some(origin) = single(headers, ORIGIN, "Origin")? {
            if self.check_origins && !self.origin_allowed(origin, host) {
                return Err(ApiError::forbidden(
                    "Origin",
                    format!(
                        "{origin:?} is not this server's own origin, nor listed in \
                         server.allowed_origins"
                    ),
                ));
            }
        }
        if has_body(headers) && !json_body(path, headers) {
            return Err(ApiError::UnsupportedMediaType {
                ndjson_too: path == NDJSON_PATH,
            });
        }
        Ok(())
    }

    fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim().to_ascii_lowercase();
        let name = host_name(&host);
        is_loopback(name)
            || self
                .allowed_hosts
                .iter()
                .any(|allowed| *allowed == host || allowed == name)
    }

    /// Listed, or the server's own origin: `http(s)://` and the very `Host` the request was sent to (which
    /// passed the host check), as the ops console's requests carry.
    fn origin_allowed(&self, origin: &str, host: Option<&str>) -> bool {
        let origin = normal_origin(origin);
        if self.allowed_origins.contains(&origin) {
            return true;
        }
        let authority = origin
            .strip_prefix("http://")
            .or_else(|| origin.strip_prefix("https://"));
        matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h.trim()))
    }
}

/// Whether `origin` is written as an origin: `scheme://host[:port]`, nothing after.
pub fn is_origin(origin: &str) -> bool {
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    !scheme.is_empty()
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        && !authority.is_empty()
        && !authority.contains(['/', '?', '#', '@', ' '])
}

/// A header that may appear at most once: two `Host` or `Origin` headers are not a browser's doing.
fn single<'a>(
    headers: &'a HeaderMap,
    name: actix_web::http::header::HeaderName,
    field: &str,
) -> Result<Option<&'a str>, ApiError> {
    let mut values = headers.get_all(name);
    let Some(first) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(ApiError::forbidden(field, "is given more than once"));
    }
    first
        .to_str()
        .map(Some)
        .map_err(|_| ApiError::forbidden(field, "is not ASCII text"))
}

fn normal_origin(origin: &str) -> String {
    origin.trim().trim_end_matches('/').to_ascii_lowercase()
}

/// The name of a `Host` value: without the port, without the brackets of an IPv6 literal, without a
/// trailing dot.
fn host_name(host: &str) -> &str {
    let name = if let Some(rest) = host.strip_prefix('[') {
        rest.split_once(']').map_or(rest, |(ip, _)| ip)
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    name.strip_suffix('.').unwrap_or(name)
}

/// `localhost` (and its subdomains, which browsers resolve to loopback themselves), 127.0.0.0/8, ::1.
fn is_loopback(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name
            .parse::<IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// A request carries a body when it says so: a non-zero length, or a chunked transfer.
fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(CONTENT_LENGTH)
        .is_some_and(|v| v.to_str().map_or(true, |v| v.trim() != "0"))
}

/// `application/json` (any parameters), or NDJSON on the sidecar route.
fn json_body(path: &str, headers: &HeaderMap) -> bool {
    let Some(mime) = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim)
    else {
        return false;
    };
    mime.eq_ignore_ascii_case("application/json")
        || (path == NDJSON_PATH && mime.eq_ignore_ascii_case("application/x-ndjson"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};
    use actix_web::ResponseError;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        map
    }

    fn guard(token: bool, hosts: &[&str], origins: &[&str]) -> Guard {
        let server = ServerConfig {
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            allowed_origins: origins.iter().map(|s| s.to_string()).collect(),
            ..ServerConfig::default()
        };
        Guard::new(&server, token)
    }

    fn refusal(g: &Guard, path: &str, pairs: &[(&str, &str)]) -> Option<(u16, String)> {
        g.check(path, &headers(pairs))
            .err()
            .map(|e| (e.status_code().as_u16(), e.to_string()))
    }

    #[test]
    fn loopback_hosts_pass_with_any_port_and_others_are_refused() {
        let g = guard(false, &[], &[]);
        for host in [
            "localhost",
            "localhost:7878",
            "LOCALHOST:1",
            "api.localhost:80",
            "localhost.:7878",
            "127.0.0.1",
            "127.8.9.10:7878",
            "[::1]:7878",
            "[::1]",
            "[::ffff:127.0.0.1]:7878",
        ] {
            assert_eq!(
                refusal(&g, "/v1/projects", &[("host", host)]),
                None,
                "{host}"
            );
        }
        for host in [
            "evil.example:7878",
            "evil.example",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.1:7878",
            "[::2]:7878",
            "0.0.0.0:7878",
        ] {
            let (status, error) = refusal(&g, "/healthz", &[("host", host)]).unwrap();
            assert_eq!(status, 403, "{host}");
            assert!(error.starts_with("Host: "), "{error}");
        }
        let (status, error) = refusal(&g, "/metrics", &[]).unwrap();
        assert_eq!((status, error.as_str()), (403, "Host: is missing"));
    }

    #[test]
    fn listed_hosts_pass_by_name_or_exact_authority() {
        let g = guard(false, &["Agents.LAN", "box.local:7878"], &[]);
        assert_eq!(refusal(&g, "/", &[("host", "agents.lan:9")]), None);
        assert_eq!(refusal(&g, "/", &[("host", "box.local:7878")]), None);
        assert!(refusal(&g, "/", &[("host", "box.local:7879")]).is_some());
    }

    #[test]
    fn with_a_token_the_lists_apply_only_once_set() {
        let g = guard(true, &[], &[]);
        assert_eq!(
            refusal(
                &g,
                "/",
                &[("host", "evil.example"), ("origin", "http://evil.example")]
            ),
            None
        );
        let g = guard(true, &["agents.lan"], &["http://ui.lan"]);
        assert!(refusal(&g, "/", &[("host", "evil.example")]).is_some());
        assert!(refusal(
            &g,
            "/",
            &[("host", "agents.lan"), ("origin", "http://evil.example")]
        )
        .is_some());
        assert_eq!(
            refusal(
                &g,
                "/",
                &[("host", "agents.lan"), ("origin", "http://ui.lan")]
            ),
            None
        );
    }

    #[test]
    fn only_listed_origins_and_the_servers_own_pass() {
        let g = guard(false, &[], &["http://localhost:5173/"]);
        let host = ("host", "127.0.0.1:7878");
        for origin in [
            "http://localhost:5173",
            "http://127.0.0.1:7878",
            "HTTP://127.0.0.1:7878",
        ] {
            assert_eq!(refusal(&g, "/v1/events", &[host, ("origin", origin)]), None);
        }
        for origin in [
            "http://evil.example",
            "null",
            "http://127.0.0.1:7879",
            "http://localhost:7878",
            "file://",
        ] {
            let (status, error) = refusal(&g, "/v1/events", &[host, ("origin", origin)]).unwrap();
            assert_eq!(status, 403, "{origin}");
            assert!(error.starts_with("Origin: "), "{error}");
        }
        let (_, error) = refusal(
            &g,
            "/",
            &[host, ("origin", "http://localhost:5173"), ("origin", "x")],
        )
        .unwrap();
        assert_eq!(error, "Origin: is given more than once");
    }

    #[test]
    fn bodies_must_be_json() {
        let g = guard(false, &[], &[]);
        let host = ("host", "localhost");
        let json = [
            host,
            ("content-length", "2"),
            ("content-type", "application/json"),
        ];
        assert_eq!(refusal(&g, "/v1/settings", &json), None);
        let with_charset = [
            host,
            ("content-length", "2"),
            ("content-type", "Application/JSON; charset=utf-8"),
        ];
        assert_eq!(refusal(&g, "/v1/settings", &with_charset), None);
        // No body: no type needed.
        assert_eq!(refusal(&g, "/v1/projects/p/stop", &[host]), None);
        assert_eq!(
            refusal(&g, "/v1/projects/p/stop", &[host, ("content-length", "0")]),
            None
        );
        let ndjson = [
            host,
            ("transfer-encoding", "chunked"),
            ("content-type", "application/x-ndjson"),
        ];
        assert_eq!(refusal(&g, NDJSON_PATH, &ndjson), None);
        assert_eq!(refusal(&g, "/v1/settings", &ndjson).map(|r| r.0), Some(415));
        for kind in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
            Some("multipart/form-data; boundary=x"),
            Some("application/jsonx"),
        ] {
            let mut pairs = vec![host, ("content-length", "5")];
            if let Some(kind) = kind {
                pairs.push(("content-type", kind));
            }
            let (status, error) = refusal(&g, "/v1/projects/p/sessions", &pairs).unwrap();
            assert_eq!(status, 415, "{kind:?}");
            assert_eq!(error, "Content-Type: must be application/json");
        }
    }

    #[test]
    fn origins_are_recognised() {
        assert!(is_origin("http://localhost:5173"));
        assert!(is_origin("https://ui.example"));
        assert!(!is_origin("localhost:5173"));
        assert!(!is_origin("http://ui.example/path"));
        assert!(!is_origin("http://"));
    }
}
