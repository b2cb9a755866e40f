//! The supervisor keeps what is global: the project directory and the projects' lifecycle (projectId →
//! project actor, created on first use on the project's arbiter, stopped when idle), the settings,
//! retention and purges, and the reports over every project. It is not on the ingest path: events go
//! through one router per arbiter (`router.rs`), which it starts and which hold the session routes.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;

mod admin;
mod directory;
mod reports;

pub use self::admin::SettingsReply;
pub use self::directory::{FindProject, Found, Project, StartIn};

use super::arbiters::{slot, Arbiters};
use super::mailbox::{Mailbox, MailboxStats, Metered, Outbox};
use super::metrics::{ActorKind, Metrics, StopReason};
use super::persister::PersisterHandle;
use super::project::ProjectLinks;
use super::router::{Revived, Router};
use super::routes::Routes;
use super::session::{SessionLinks, SessionShared};
use crate::config::Config;
use crate::messages::commands::SettingsPatch;
use crate::messages::project::ForgetSession;
use crate::messages::router::ForgetSessions;
use crate::messages::supervisor::{
    DebugTop, FlushAll, HealthReport, ListProjects, PurgeProject, PurgeSession, UpdateSettings,
};
use crate::messages::supervisor::{ProjectIdle, RetentionEvicted};
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
    /// Per router, shared by every project actor of it: one allocation, not one copy a project.
    links: Vec<Arc<ProjectLinks>>,
    projects: HashMap<String, directory::Slot>,
    /// Projects that stopped with no current session in this process (see `directory`).
    let_go: directory::LetGo,
    /// Settings updates waiting for the one in flight (`settings_busy`).
    settings_queue: std::collections::VecDeque<(SettingsPatch, SettingsReply)>,
    settings_busy: bool,
    /// Projects whose purge is in flight.
    purging: std::collections::HashSet<String>,
    stats: Arc<MailboxStats>,
}

/// The project a session id belongs to: ids are `<projectId>-<unix ms>`.
pub fn project_of(session_id: &str) -> &str {
    session_id.rsplit_once('-').map_or(session_id, |(p, _)| p)
}

/// What every arbiter's `SessionShared` holds alike; each adds its supervisor and router handles.
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
        evicted: Outbox<RetentionEvicted>,
        router: &Mailbox<Router>,
    ) -> Arc<SessionShared> {
        Arc::new(SessionShared {
            rules: Arc::new(super::session::rules(&self.config)),
            config: self.config,
            evicted,
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
    /// `me` is this supervisor's own mailbox, whose stats it shares. Starts one router per arbiter.
    pub fn new(
        parts: SupervisorParts,
        me: Mailbox<Supervisor>,
        stats: Arc<MailboxStats>,
    ) -> Supervisor {
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
        let mut links = Vec::with_capacity(parts.arbiters.len());
        // The sessions of each arbiter's projects count against its part.
        for (i, part) in windows.into_iter().enumerate() {
            let stats = Arc::new(MailboxStats::default());
            let (theirs, store, supervisor, b) =
                (stats.clone(), parts.store.clone(), me.clone(), base.clone());
            let (m, p) = (parts.metrics.clone(), part.clone());
            let addr = Router::start_in_arbiter(&parts.arbiters.handle(i), move |ctx| {
                let router = Mailbox::new(ctx.address(), theirs.clone(), m, ActorKind::Router);
                // For the sessions it reads back: no project (a sleeping one let go of them).
                let links = SessionLinks {
                    shared: b.with(p, supervisor.outbox(), &router),
                    project: None,
                };
                Router::new(links, store, theirs, supervisor.outbox())
            });
            let router = Mailbox::new(
                addr.clone(),
                stats,
                parts.metrics.clone(),
                ActorKind::Router,
            );
            links.push(Arc::new(ProjectLinks {
                idle: me.outbox(),
                sink: EventSink::new(addr.recipient()).with_permissions(parts.control.clone()),
                router: router.clone(),
                store: parts.store.clone(),
                session: base.clone().with(part, me.outbox(), &router),
            }));
            routers.push(router);
        }
        Supervisor {
            parts,
            routes: Routes::new(routers),
            links,
            projects: HashMap::new(),
            let_go: Default::default(),
            settings_queue: Default::default(),
            settings_busy: false,
            purging: Default::default(),
            stats,
        }
    }

    /// The routers, in arbiter order: the engine splits ingest batches over them.
    pub fn routes(&self) -> &Routes {
        &self.routes
    }

    /// The router of a project (and of its sessions).
    fn router(&self, project_id: &str) -> &Mailbox<Router> {
        self.routes.of(project_id)
    }

    /// Drops evicted or purged sessions from memory: their actors stop without writing, their projects
    /// forget them.
    fn forget_sessions(&mut self, ids: &[String], reason: StopReason) {
        let routers = self.routes.all();
        let mut by_router: Vec<Vec<String>> = vec![Vec::new(); routers.len()];
        for id in ids {
            by_router[slot(project_of(id), routers.len())].push(id.clone());
            if let Some(project) = self
                .projects
                .get(project_of(id))
                .map(directory::Slot::mailbox)
            {
                project.do_send(ForgetSession {
                    session_id: id.clone(),
                });
            }
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

crate::instrument!(
    Supervisor: FindProject,
    Project,
    StartIn,
    ProjectIdle,
    Revived,
    RetentionEvicted,
    PurgeSession,
    PurgeProject,
    UpdateSettings,
    ListProjects,
    HealthReport,
    FlushAll,
    DebugTop,
);
