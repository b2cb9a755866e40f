//! Agents under control (issue 15), the part every actor shares: the project policies (kept in memory,
//! written through the persister), what each project spent today (the daily budgets), the pending
//! tool-permission requests (`approvals.rs`) and the way back into the engine (live events, system
//! messages in a session, a project's actor) for what is decided outside any one actor.
//!
//! Policies are few and small, so all of them are read at start-up and served from memory; a change is
//! answered only once it is stored. Today's spend per project is read from the ledger at start-up and
//! kept up to date by the sessions as their cost grows, so a daily budget holds across restarts.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use super::approvals::Approvals;
use super::arbiters::project_of;
use super::broadcaster::{Broadcaster, Publish};
use super::mailbox::Mailbox;
use super::metrics::Metrics;
use super::persister::PersisterHandle;
use super::project::ProjectActor;
use super::router::{FindProject, Found};
use super::routes::Routes;
use crate::config::Config;
use crate::error::CommandError;
use crate::messages::commands::{Ingest, LiveEvent, StallResume};
use crate::messages::policy::{Policy, PolicyPatch, StoredPolicy};
use crate::messages::wire::{now_ms, MessagePayload, RawMessage, SidecarEvent, UnixMs, Variant};
use crate::storage::WriteOp;

/// The UTC day of a Unix ms timestamp, `YYYY-MM-DD`: the ledger's and the daily budget's unit.
pub fn day_of(ms: UnixMs) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339(t).to_string()[..10].to_owned()
}

/// A budget a session crossed.
#[derive(Debug, Clone, PartialEq)]
pub struct Exceeded {
    pub spent_usd: f64,
    pub limit_usd: f64,
    /// "session" or "daily".
    pub period: &'static str,
}

impl Exceeded {
    /// The session's status error (contract wording).
    pub fn error(&self) -> String {
        format!(
            "Budget exceeded: ${:.2} of ${:.2} ({})",
            self.spent_usd, self.limit_usd, self.period
        )
    }
}

pub struct Control {
    config: Arc<Config>,
    pub(crate) metrics: Arc<Metrics>,
    persister: PersisterHandle,
    broadcaster: Mailbox<Broadcaster>,
    policies: RwLock<HashMap<String, StoredPolicy>>,
    /// One policy change at a time, so two concurrent patches of different fields both stay.
    policy_writes: tokio::sync::Mutex<()>,
    /// (day, a 64-bit hash of the project id → USD spent that day). Keyed by hash: one table, no
    /// allocation per project, which after a burst of many projects would each pin a page of its own.
    today: Mutex<(String, HashMap<u64, f64>)>,
    pub(crate) approvals: Approvals,
    /// The routers: where system messages go (a session's project's), and which hold the project
    /// directories; set once, at start-up.
    routes: OnceLock<Routes>,
    /// Where stalled sessions to resume go (`stall.action = "resume"`): the engine resumes them
    /// (src/engine/resume.rs); set once, at start-up.
    resumes: OnceLock<tokio::sync::mpsc::UnboundedSender<StallResume>>,
    /// Itself, for the tasks it spawns (a pending request's wait outlives the call that began it).
    me: std::sync::Weak<Control>,
}

impl Control {
    /// `policies` and `spent_today` as storage holds them at start-up.
    pub fn new(
        config: Arc<Config>,
        metrics: Arc<Metrics>,
        persister: PersisterHandle,
        broadcaster: Mailbox<Broadcaster>,
        policies: Vec<(String, String)>,
        spent_today: BTreeMap<String, f64>,
    ) -> Arc<Control> {
        let policies = policies
            .into_iter()
            .filter_map(|(project, json)| match serde_json::from_str(&json) {
                Ok(p) => Some((project, p)),
                Err(e) => {
                    tracing::error!(project, error = %e, "stored policy does not parse; the defaults apply");
                    None
                }
            })
            .collect();
        Arc::new_cyclic(|me| Control {
            me: me.clone(),
            config,
            metrics,
            persister,
            broadcaster,
            policies: RwLock::new(policies),
            policy_writes: tokio::sync::Mutex::new(()),
            today: Mutex::new((
                day_of(now_ms()),
                spent_today
                    .into_iter()
                    .map(|(project, usd)| (project_key(&project), usd))
                    .collect(),
            )),
            approvals: Approvals::default(),
            routes: OnceLock::new(),
            resumes: OnceLock::new(),
        })
    }

    pub(crate) fn me(&self) -> Option<Arc<Control>> {
        self.me.upgrade()
    }

    /// Set once, at start-up: where `resume_stalled` sends.
    pub fn set_resumes(&self, resumes: tokio::sync::mpsc::UnboundedSender<StallResume>) {
        let _ = self.resumes.set(resumes);
    }

    /// Asks for a session its stall stopped to be resumed with the nudge prompt; nothing while the engine
    /// is not up (or has gone).
    pub fn resume_stalled(&self, project_id: String, session_id: String) {
        if let Some(resumes) = self.resumes.get() {
            let _ = resumes.send(StallResume {
                project_id,
                session_id,
            });
        }
    }

    /// The routers exist only after the parts that need this; set once, at start-up.
    pub fn set_routes(&self, routes: Routes) {
        let _ = self.routes.set(routes);
    }

    fn stored(&self, project_id: &str) -> StoredPolicy {
        read(&self.policies)
            .get(project_id)
            .cloned()
            .unwrap_or_default()
    }

    /// The policy in force for a project.
    pub fn policy(&self, project_id: &str) -> Policy {
        Policy::resolve(
            &self.stored(project_id),
            &self.config.policy,
            self.config.timers.stall_after,
        )
    }

    /// Applies `patch`, stores the result and answers the policy in force; nothing changes on a refusal.
    pub async fn update_policy(
        &self,
        project_id: &str,
        patch: PolicyPatch,
    ) -> Result<Policy, CommandError> {
        let _one_at_a_time = self.policy_writes.lock().await;
        let next = patch.apply_to(&self.stored(project_id))?;
        self.store_policy(project_id, next).await
    }

    /// Sets only `stall.after` (the `stall-threshold` shorthand).
    pub async fn set_stall_after(
        &self,
        project_id: &str,
        after: Option<std::time::Duration>,
    ) -> Result<Policy, CommandError> {
        let _one_at_a_time = self.policy_writes.lock().await;
        let mut next = self.stored(project_id);
        next.stall_after = after;
        self.store_policy(project_id, next).await
    }

    async fn store_policy(
        &self,
        project_id: &str,
        next: StoredPolicy,
    ) -> Result<Policy, CommandError> {
        let json = (next != StoredPolicy::default())
            .then(|| serde_json::to_string(&next))
            .transpose()
            .map_err(|e| CommandError::Storage(e.to_string()))?;
        self.persister
            .write(vec![WriteOp::PutPolicy {
                project_id: project_id.to_owned(),
                policy: json,
            }])
            .await?;
        write(&self.policies).insert(project_id.to_owned(), next);
        Ok(self.policy(project_id))
    }

    /// The project's spend today.
    pub fn spent_today(&self, project_id: &str, at: UnixMs) -> f64 {
        let today = self.today(at);
        today
            .1
            .get(&project_key(project_id))
            .copied()
            .unwrap_or(0.0)
    }

    /// Adds a session's new spend to its project's day; answers the project's spend today.
    pub fn add_spent(&self, project_id: &str, usd: f64, at: UnixMs) -> f64 {
        let mut today = self.today(at);
        let spent = today.1.entry(project_key(project_id)).or_insert(0.0);
        *spent += usd;
        *spent
    }

    /// The day's spend table, begun afresh when `at` is on a new day.
    fn today(&self, at: UnixMs) -> std::sync::MutexGuard<'_, (String, HashMap<u64, f64>)> {
        let day = day_of(at);
        let mut today = lock(&self.today);
        if today.0 != day {
            *today = (day, HashMap::new());
        }
        today
    }

    /// The first budget a session crosses with `session_usd` spent in it and `daily_usd` by its project
    /// today, if any.
    pub fn over_budget(
        &self,
        project_id: &str,
        session_usd: f64,
        daily_usd: f64,
    ) -> Option<Exceeded> {
        let budget = self.policy(project_id).budget;
        if let Some(limit) = budget.session_usd.filter(|l| session_usd > *l) {
            return Some(Exceeded {
                spent_usd: session_usd,
                limit_usd: limit,
                period: "session",
            });
        }
        budget
            .daily_usd
            .filter(|l| daily_usd > *l)
            .map(|limit| Exceeded {
                spent_usd: daily_usd,
                limit_usd: limit,
                period: "daily",
            })
    }

    /// What is said when a budget stops an agent: a warning, `budget.exceeded` and the metric.
    pub fn announce_budget(&self, project_id: &str, session_id: &str, e: &Exceeded) {
        self.metrics.budget_exceeded.inc();
        self.metrics
            .notifications
            .with_label_values(&[Variant::Warning.as_str()])
            .inc();
        self.publish(LiveEvent::Notification {
            project_id: project_id.to_owned(),
            message: format!("{} on {project_id}", e.error()),
            variant: Variant::Warning,
        });
        self.publish(LiveEvent::Control {
            project_id: project_id.to_owned(),
            event: "budget.exceeded",
            data: serde_json::json!({
                "projectId": project_id,
                "sessionId": session_id,
                "spentUsd": e.spent_usd,
                "limitUsd": e.limit_usd,
                "period": e.period,
            }),
        });
    }

    pub fn publish(&self, event: LiveEvent) {
        self.broadcaster.do_send(Publish(event));
    }

    /// Adds a system message to a session, through ingest like any agent output.
    pub fn system_message(&self, session_id: &str, id: String, text: String) {
        let Some(routes) = self.routes.get() else {
            return;
        };
        let (ingest, answer) = Ingest::new(
            vec![SidecarEvent::Message(MessagePayload {
                session_id: session_id.to_owned(),
                messages: vec![RawMessage {
                    id,
                    kind: "notice".into(),
                    parent_id: None,
                    content: serde_json::json!({ "message": text }).into(),
                    timestamp: now_ms(),
                }],
            })],
            false,
            false,
        );
        // Nobody waits for it: the session applies it as it applies any batch.
        drop(answer);
        routes.of(project_of(session_id)).do_send(ingest);
    }

    /// The project's actor, if it is in memory.
    pub async fn project(&self, project_id: &str) -> Option<Mailbox<ProjectActor>> {
        let routes = self.routes.get()?;
        routes
            .of(project_id)
            .send(FindProject {
                project_id: project_id.to_owned(),
            })
            .await
            .ok()
            .and_then(|found| match found {
                Found::Live(project) => Some(project),
                Found::LetGo | Found::Unknown => None,
            })
    }
}

/// A project's key in the day's spend: a 64-bit hash of its id (`DefaultHasher::new()` has fixed keys, so
/// the same id always gives the same key; two ids sharing one is as likely as a 64-bit collision).
fn project_key(project_id: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    project_id.hash(&mut h);
    h.finish()
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|e| e.into_inner())
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_are_utc_calendar_days() {
        assert_eq!(day_of(0), "1970-01-01");
        assert_eq!(day_of(1_767_225_599_999), "2025-12-31");
        assert_eq!(day_of(1_767_225_600_000), "2026-01-01");
    }

    #[test]
    fn the_error_names_spend_limit_and_period() {
        let e = Exceeded {
            spent_usd: 0.6,
            limit_usd: 0.5,
            period: "session",
        };
        assert_eq!(e.error(), "Budget exceeded: $0.60 of $0.50 (session)");
    }
}
