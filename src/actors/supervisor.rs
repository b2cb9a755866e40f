//! The supervisor keeps only what is global: the settings (and the retention a change of them enforces
//! everywhere) and the wiring of one router per arbiter. The reports over every project are the engine's
//! asks of every router (src/engine/reads.rs): the supervisor would only relay them. It is on neither the
//! start nor the ingest path: each router holds the
//! directory of its arbiter's projects (projectId → project actor, created on first use, stopped when
//! idle; router/directory.rs), their purges and their sessions' routes, so a start or a look-up goes
//! from the caller straight to the project's arbiter.

use std::sync::Arc;

use actix::prelude::*;

mod admin;

pub use self::admin::SettingsReply;

use super::arbiters::{project_of, slot, Arbiters};
use super::mailbox::{Mailbox, MailboxStats, Metered};
use super::metrics::{ActorKind, Metrics, StopReason};
use super::persister::PersisterHandle;
use super::project::ProjectLinks;
use super::router::Router;
use super::routes::Routes;
use super::session::{SessionLinks, SessionShared};
use crate::config::Config;
use crate::messages::commands::SettingsPatch;
use crate::messages::router::ForgetSessions;
use crate::messages::supervisor::UpdateSettings;
use crate::providers::{EventSink, Providers};
use crate::storage::Store;

/// What the supervisor is built from.
pub struct SupervisorParts {
    pub config: Arc<Config>,
    pub arbiters: Arbiters,
    pub providers: Providers,
    pub store: Store,
    pub persister: PersisterHandle,
    pub broadcaster: Mailbox<super::broadcaster::Broadcaster>,
    /// The settings, which this supervisor alone updates (one at a time) and the engine reads.
    pub settings: super::settings::SharedSettings,
    pub metrics: Arc<Metrics>,
    /// Policies, spend, approvals (issue 15).
    pub control: Arc<super::control::Control>,
    /// The stderr of stopped sessions (`limits.stderr_kept`), shared with the engine that reads it.
    pub stderr_kept: Arc<super::stderr_kept::KeptStderr>,
}

pub struct Supervisor {
    parts: SupervisorParts,
    /// One router per arbiter, in arbiter order (`arbiters::slot`).
    routes: Routes,
    /// Settings updates waiting for the one in flight (`settings_busy`).
    settings_queue: std::collections::VecDeque<(SettingsPatch, SettingsReply)>,
    settings_busy: bool,
    stats: Arc<MailboxStats>,
}

/// What every arbiter's `SessionShared` holds alike; each adds its router's handles.
#[derive(Clone)]
struct SharedBase {
    config: Arc<Config>,
    broadcaster: Mailbox<super::broadcaster::Broadcaster>,
    persister: PersisterHandle,
    metrics: Arc<Metrics>,
    control: Arc<super::control::Control>,
    providers: Providers,
    stderr_kept: Arc<super::stderr_kept::KeptStderr>,
    settings: super::settings::SharedSettings,
}

impl SharedBase {
    /// `windows`: the part of the window budget of the arbiter these sessions run on.
    fn with(
        self,
        windows: Arc<super::windows::WindowPart>,
        router: &Mailbox<Router>,
    ) -> Arc<SessionShared> {
        Arc::new(SessionShared {
            rules: Arc::new(super::session::rules(&self.config)),
            config: self.config,
            evicted: router.outbox(),
            settings: self.settings,
            gone: router.outbox(),
            retire: router.outbox(),
            publisher: super::publisher::Publisher::new(self.broadcaster),
            persister: self.persister,
            metrics: self.metrics,
            windows,
            control: self.control,
            providers: self.providers,
            stderr_kept: self.stderr_kept,
        })
    }
}

impl Supervisor {
    /// `stats`: those of this supervisor's own mailbox. Starts one router per arbiter.
    pub fn new(parts: SupervisorParts, stats: Arc<MailboxStats>) -> Supervisor {
        let windows = super::windows::WindowPart::split(
            parts.config.limits.window_bytes.as_u64(),
            parts.arbiters.len(),
            &parts.metrics,
        );
        let base = SharedBase {
            config: parts.config.clone(),
            broadcaster: parts.broadcaster.clone(),
            persister: parts.persister.clone(),
            metrics: parts.metrics.clone(),
            control: parts.control.clone(),
            providers: parts.providers.clone(),
            stderr_kept: parts.stderr_kept.clone(),
            settings: parts.settings.clone(),
        };
        let mut routers = Vec::with_capacity(parts.arbiters.len());
        // The sessions of each arbiter's projects count against its part.
        for (i, part) in windows.into_iter().enumerate() {
            let stats = Arc::new(MailboxStats::default());
            let (theirs, store, b) = (stats.clone(), parts.store.clone(), base.clone());
            let (m, control) = (parts.metrics.clone(), parts.control.clone());
            let addr = Router::start_in_arbiter(&parts.arbiters.handle(i), move |ctx| {
                let router = Mailbox::new(ctx.address(), theirs.clone(), m, ActorKind::Router);
                let session = b.with(part, &router);
                // For the sessions it reads back: no project (a sleeping one let go of them).
                let links = SessionLinks {
                    shared: session.clone(),
                    project: None,
                };
                // Shared by every project actor of this arbiter.
                let projects = Arc::new(ProjectLinks {
                    idle: router.outbox(),
                    sink: EventSink::new(ctx.address().recipient()).with_permissions(control),
                    router,
                    store,
                    session,
                });
                Router::new(links, projects, theirs)
            });
            routers.push(Mailbox::new(
                addr,
                stats,
                parts.metrics.clone(),
                ActorKind::Router,
            ));
        }
        Supervisor {
            parts,
            routes: Routes::new(routers),
            settings_queue: Default::default(),
            settings_busy: false,
            stats,
        }
    }

    /// The routers, in arbiter order: the engine splits ingest batches over them.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// Drops evicted sessions from memory: their routers stop their actors without writing and tell
    /// their projects to forget them.
    fn forget_sessions(&mut self, ids: Vec<String>, reason: StopReason) {
        let routers = self.routes.all();
        let mut by_router: Vec<Vec<String>> = vec![Vec::new(); routers.len()];
        for id in ids {
            by_router[slot(project_of(&id), routers.len())].push(id);
        }
        for (router, ids) in routers.iter().zip(by_router) {
            if !ids.is_empty() {
                router.do_send(ForgetSessions { ids, reason });
            }
        }
    }
}

impl Actor for Supervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
        self.parts.metrics.actor_started(ActorKind::Supervisor);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.parts
            .metrics
            .actor_stopped(ActorKind::Supervisor, StopReason::Shutdown);
    }
}

impl Metered for Supervisor {
    const KIND: ActorKind = ActorKind::Supervisor;

    fn meter(&self) -> (&MailboxStats, &Metrics) {
        (&self.stats, &self.parts.metrics)
    }
}

crate::instrument!(Supervisor: UpdateSettings);
