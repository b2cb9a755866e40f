//! The HTTP API (actix-web): the server builder and the state its handlers share. Each route group lives in
//! its own file and only translates HTTP to `Engine` calls and back; the route table is `routes.rs`.
//!
//! `run` starts the engine and the server in-process and hands back a `RunningServer`, so the binary and
//! the integration tests start the very same thing, on a fixed or an ephemeral port, and stop it the same
//! way: stop accepting, end the live streams, drain, then flush storage.

mod admission;
mod approvals;
mod auth;
mod cluster;
mod console;
mod cors;
mod cost;
mod debug;
mod errors;
mod events;
mod extract;
mod guard;
mod health;
mod openapi;
mod ops;
mod policy;
mod projects;
mod resume;
mod routes;
mod sessions;
mod settings;
mod sidecar;
mod sse;
mod ticket;
mod trace;

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::middleware::{from_fn, Condition};
use actix_web::{web, App, HttpRequest, HttpServer};
use tokio::sync::watch;

use crate::config::{Config, ConfigError};
use crate::engine::Engine;
use crate::engine::StartError;
use crate::providers::Providers;
use extract::Query;
use ticket::Tickets;

pub use errors::{ApiError, ErrorBody};
pub use guard::is_origin;
pub use openapi::openapi;
pub use routes::{endpoints, Endpoint};
/// The sidecar ingest body parser, public for the fuzz target (`fuzz/fuzz_targets/ingest_parse.rs`).
pub use sidecar::parse_batch;

/// How long a graceful stop waits for open requests before closing them; well inside the 10 s a
/// SIGTERM may take in all.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "refusing to listen on {addr}: it is reachable from other machines and no auth token is \
         configured; set server.auth_token (or AGENT_STORE_TOKEN), or bind to a loopback address"
    )]
    Exposed { addr: SocketAddr },
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("cannot start the engine: {0}")]
    Engine(#[from] StartError),
    #[error("cannot join the cluster: {0}")]
    Cluster(#[from] crate::cluster::ClusterError),
}

/// What every handler can reach.
pub struct AppState {
    pub engine: Engine,
    /// `server.max_body`, in bytes.
    pub max_body: usize,
    /// `limits.max_message_bytes`: one raw message's content, as received.
    pub max_message_bytes: usize,
    /// `server.auth_token`, trimmed; never logged.
    auth_token: Option<String>,
    /// Who may reach the API from a browser (`server.allowed_hosts`, `server.allowed_origins`).
    guard: guard::Guard,
    /// `server.body_timeout`: how long a request body may take to arrive.
    pub body_timeout: Duration,
    /// How often an idle event stream sends a comment line.
    pub keep_alive: Duration,
    /// Becomes true when the server stops, so long-lived event streams end instead of holding it open.
    pub stopping: watch::Receiver<bool>,
    /// Single-use tickets for `/v1/events` (the console's `EventSource` cannot send the token).
    tickets: Tickets,
    /// The configured providers' names, for the OpenAPI document's `provider` enum.
    provider_names: Vec<String>,
    /// This node's cluster membership (`[cluster] enabled`); None in single-node mode.
    pub cluster: Option<crate::cluster::Cluster>,
}

impl AppState {
    /// The state of the app serving `req`. Every app built by `run` registers it.
    pub fn of(req: &HttpRequest) -> &AppState {
        req.app_data::<web::Data<AppState>>()
            .map(|data| data.get_ref())
            .expect("api::run registers AppState on every app")
    }
}

/// A server started by `run`: where it listens, the engine behind it, and how to stop it.
pub struct RunningServer {
    addr: SocketAddr,
    engine: Engine,
    cluster: Option<crate::cluster::Cluster>,
    handle: ServerHandle,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    stopping: watch::Sender<bool>,
}

impl RunningServer {
    /// The address it listens on (the real port when the configuration asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The node's cluster membership, in cluster mode.
    pub fn cluster(&self) -> Option<&crate::cluster::Cluster> {
        self.cluster.as_ref()
    }

    /// Stops accepting, ends the event streams, lets open requests finish (up to a few seconds), then
    /// shuts the engine down, which stops the providers and flushes storage.
    pub async fn stop(self) {
        // An error only means no stream is listening.
        let _ = self.stopping.send(true);
        self.handle.stop(true).await;
        match self.task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the HTTP server ended with an error"),
            Err(e) => tracing::warn!(error = %e, "the HTTP server task failed"),
        }
        // Hand the partitions over before the engine stops, so peers take them at once.
        if let Some(cluster) = &self.cluster {
            cluster.stop().await;
        }
        self.engine.shutdown().await;
    }
}

/// Starts the engine and the HTTP server on `config.server.bind` (port 0 picks a free one). Call inside an
/// actix `System`. Refuses a non-loopback address without an auth token.
pub async fn run(config: Config, providers: Providers) -> Result<RunningServer, ServeError> {
    config.validate()?;
    let wanted = config.bind_addr()?;
    if !wanted.ip().is_loopback() && config.server.auth_token.is_none() {
        return Err(ServeError::Exposed { addr: wanted });
    }
    let listener = TcpListener::bind(wanted).map_err(|source| ServeError::Bind {
        addr: wanted,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: wanted,
        source,
    })?;

    let data_dir = &config.storage.data_dir;
    std::fs::create_dir_all(data_dir).map_err(|source| ServeError::DataDir {
        path: data_dir.clone(),
        source,
    })?;
    let mut provider_names: Vec<String> = providers.names().map(str::to_owned).collect();
    provider_names.sort();
    let engine = Engine::start(config.clone(), providers).await?;
    let cluster = if config.cluster.enabled {
        match crate::cluster::Cluster::start(&config.cluster, addr, engine.clone()).await {
            Ok(cluster) => Some(cluster),
            Err(e) => {
                engine.shutdown().await;
                return Err(e.into());
            }
        }
    } else {
        None
    };
    let (stopping_tx, stopping) = watch::channel(false);
    let state = web::Data::new(AppState {
        engine: engine.clone(),
        max_body: usize::try_from(config.server.max_body.as_u64()).unwrap_or(usize::MAX),
        max_message_bytes: usize::try_from(config.limits.max_message_bytes.as_u64())
            .unwrap_or(usize::MAX),
        auth_token: auth::configured_token(config.server.auth_token.as_deref()),
        guard: guard::Guard::new(&config.server, config.server.auth_token.is_some()),
        body_timeout: config.server.body_timeout,
        keep_alive: config.server.sse_keep_alive,
        stopping,
        tickets: Tickets::default(),
        provider_names,
        cluster: cluster.clone(),
    });
    let workers = match config.server.workers {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };

    let origins = config.server.allowed_origins.clone();
    // Only a cluster node forwards; elsewhere the forwarding middleware would pass every request on, at
    // the cost of moving its future (sized for a forward) into a box of its own per request.
    let clustered = cluster.is_some();
    let cors_on = !origins.is_empty();
    let server = HttpServer::new(move || {
        // actix-web builds the app on each worker's own thread, once as the worker starts.
        crate::telemetry::name_this_thread("http-worker");
        // Outermost first: the browser guard, then CORS (preflights carry no token), then the token.
        // Without CORS the guard and the token are one middleware (admission.rs).
        App::new()
            .app_data(state.clone())
            .configure(routes::configure)
            .configure(console::configure)
            .default_service(web::to(routes::no_route))
            .wrap(Condition::new(clustered, from_fn(cluster::forward_foreign)))
            .wrap(Condition::new(cors_on, from_fn(auth::require_token)))
            .wrap(Condition::new(cors_on, cors::cors(&origins)))
            .wrap(from_fn(move |req, next| {
                admission::admit(!cors_on, req, next)
            }))
    })
    .workers(workers)
    .disable_signals()
    .shutdown_timeout(DRAIN_TIMEOUT.as_secs())
    .listen(listener);
    let server = match server {
        Ok(server) => server.run(),
        Err(source) => {
            if let Some(cluster) = &cluster {
                cluster.stop().await;
            }
            engine.shutdown().await;
            return Err(ServeError::Bind { addr, source });
        }
    };
    let handle = server.handle();
    let task = actix_rt::spawn(server);
    Ok(RunningServer {
        addr,
        engine,
        cluster,
        handle,
        task,
        stopping: stopping_tx,
    })
}
