//! Wiring the actor system at start: storage opened and recovered on the blocking pool, the persister
//! thread, the broadcaster on an arbiter of its own, the supervisor on the control arbiter (the supervisor
//! starts one router per arbiter, each holding its arbiter's projects), and the parts the engine handle
//! keeps.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use actix::prelude::*;

use super::Inner;
use crate::actors::arbiters::{self, Arbiters};
use crate::actors::broadcaster::{self, Broadcaster};
use crate::actors::mailbox::{Mailbox, MailboxStats};
use crate::actors::metrics::{ActorKind, Metrics};
use crate::actors::persister::{Linger, PersisterHandle, PersisterStats};
use crate::actors::stderr_kept::KeptStderr;
use crate::actors::supervisor::{Supervisor, SupervisorParts};
use crate::actors::{control, journal, restart, settings};
use crate::config::Config;
use crate::messages::commands::{LiveEvent, StallResume};
use crate::messages::wire::now_ms;
use crate::providers::Providers;
use crate::storage::Store;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Storage(#[from] crate::storage::StorageError),
    #[error("storage could not be opened: {0}")]
    Join(String),
}

/// How many persist requests may wait for the persister before senders feel backpressure.
const PERSIST_QUEUE: usize = 4096;

/// What is left to do once the handle exists: sessions start-up recovery picked for resuming, and the
/// stalled sessions the actors ask to resume (`stall.action = "resume"`).
pub(super) struct Wiring {
    pub to_resume: Vec<(String, String)>,
    pub stalled: tokio::sync::mpsc::UnboundedReceiver<StallResume>,
}

/// Opens storage, runs start-up recovery and starts the actors; answers the handle's parts and what is
/// left to do once the handle exists.
pub(super) async fn wire(
    config: Arc<Config>,
    providers: Providers,
) -> Result<(Inner, Wiring), StartError> {
    let path = config.database_path();
    let cache_size = usize::try_from(config.storage.cache_size.as_u64()).unwrap_or(usize::MAX);
    let recovery_config = config.clone();
    let replay_bytes =
        usize::try_from(config.server.sse_replay_bytes.as_u64()).unwrap_or(usize::MAX);
    let (store, stored_settings, recovery, stored_journal, (policies, spent_today)) =
        tokio::task::spawn_blocking(move || {
            let store = Store::open_with_cache(&path, cache_size)?;
            let recovery = restart::recover(&store, &recovery_config)?;
            let settings = store.settings()?;
            let journal = store.journal_open(replay_bytes)?;
            let policies = store.policies()?;
            let spent_today = store.spend_on(&control::day_of(now_ms()))?;
            Ok::<_, crate::storage::StorageError>((
                store,
                settings,
                recovery,
                journal,
                (policies, spent_today),
            ))
        })
        .await
        .map_err(|e| StartError::Join(e.to_string()))??;

    let journal_epoch = stored_journal.epoch;
    let metrics = Metrics::new();
    let persister = PersisterHandle::spawn_lingering(
        store.clone(),
        PERSIST_QUEUE,
        Linger::up_to(config.storage.commit_linger),
    );
    persister.observe_commits(metrics.commit_duration.clone());
    store.observe_corrupt_rows(metrics.corrupt_rows.clone());
    metrics
        .redb_cache_size
        .set(i64::try_from(cache_size).unwrap_or(i64::MAX));
    metrics.actor_started(ActorKind::Persister);
    let control = arbiters::named("control").handle();
    // The broadcaster has a thread of its own: every start, status change and batch publishes to it, and
    // on a shared thread those publishes queued that thread's other work behind them.
    let publishing = arbiters::named("publisher").handle();
    let broadcaster = {
        let (stats, m) = (Arc::new(MailboxStats::default()), metrics.clone());
        let buffer = config.limits.subscriber_buffer;
        let buffer_bytes =
            usize::try_from(config.limits.subscriber_buffer_bytes.as_u64()).unwrap_or(usize::MAX);
        let theirs = stats.clone();
        let window_ms =
            i64::try_from(config.server.sse_replay_window.as_millis()).unwrap_or(i64::MAX);
        let journal = (
            journal::Journal::new(stored_journal, window_ms, replay_bytes, now_ms()),
            persister.clone(),
        );
        let addr = Broadcaster::start_in_arbiter(&publishing, move |_| {
            Broadcaster::new(buffer, buffer_bytes, journal, theirs, m)
        });
        Mailbox::new(addr, stats, metrics.clone(), ActorKind::Broadcaster)
    };
    // Subscribers (reconnecting ones, through the journal) hear of what the restart did.
    for record in &recovery.interrupted {
        broadcaster.do_send(broadcaster::Publish(LiveEvent::Status {
            session_id: record.session_id.clone(),
            project_id: record.project_id.clone(),
            status: record.status,
            error: record.error.clone(),
        }));
    }
    let agents = control::Control::new(
        config.clone(),
        metrics.clone(),
        persister.clone(),
        broadcaster.clone(),
        policies,
        spent_today,
    );
    let stderr_kept = Arc::new(KeptStderr::new(config.limits.stderr_kept));
    let settings = settings::SharedSettings::new(settings::load(&config, &stored_settings));
    let parts = SupervisorParts {
        stderr_kept: stderr_kept.clone(),
        control: agents.clone(),
        settings: settings.clone(),
        config: config.clone(),
        arbiters: Arbiters::per_core(),
        providers: providers.clone(),
        store: store.clone(),
        persister: persister.clone(),
        broadcaster: broadcaster.clone(),
        metrics: metrics.clone(),
    };
    let stats = Arc::new(MailboxStats::default());
    let theirs = stats.clone();
    let (routers_tx, routers_rx) = tokio::sync::oneshot::channel();
    let addr = Supervisor::start_in_arbiter(&control, move |_| {
        let supervisor = Supervisor::new(parts, theirs);
        let _ = routers_tx.send(supervisor.routes().clone());
        supervisor
    });
    let supervisor = Mailbox::new(addr, stats, metrics.clone(), ActorKind::Supervisor);
    let routes = routers_rx
        .await
        .map_err(|_| StartError::Join("the supervisor did not start".into()))?;
    agents.set_routes(routes.clone());
    // Stalled sessions to resume reach the engine through this channel (actors never hold the engine).
    let (resumes, stalled) = tokio::sync::mpsc::unbounded_channel();
    agents.set_resumes(resumes);
    let inner = Inner {
        control: agents,
        config,
        metrics,
        scraped: std::sync::Mutex::new(PersisterStats::default()),
        supervisor,
        routes,
        broadcaster,
        persister,
        store,
        providers,
        ready: AtomicBool::new(true),
        shut_down: tokio::sync::Mutex::new(false),
        journal_epoch,
        stderr_kept,
        settings,
        log: Default::default(),
    };
    Ok((
        inner,
        Wiring {
            to_resume: recovery.resume,
            stalled,
        },
    ))
}
