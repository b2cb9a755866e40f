//! The inputs of a project's health and the score computed from them, owned by the project actor (no global
//! lock): what the original kept in its health store (activity, tool in flight, token and cost snapshots,
//! status), and the original dashboard's attention scoring.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::messages::project::Activity;
use crate::messages::wire::{ActivityState, AgentStatus, ProjectHealth};

/// Cost snapshots older than this do not count towards the burn rate.
const BURN_WINDOW: Duration = Duration::from_secs(5 * 60);
/// Two snapshots closer than this give no meaningful rate.
const MIN_BURN_SPAN: Duration = Duration::from_secs(4);
/// Context limit of a model not listed in the configuration.
pub const DEFAULT_CONTEXT_LIMIT: u64 = 200_000;

/// The parts of a project's health whose change is news (a `project.health` event): not the idle clock
/// or the burn rate, which move all the time.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthNews {
    /// Shared with the tracker's (and its project's current session's): news of every batch copies no id.
    session_id: Option<Arc<str>>,
    state: ActivityState,
    active_tool: Option<String>,
    score: u32,
    reason: Option<String>,
}

#[derive(Debug, Clone)]
pub struct HealthTracker {
    /// Its project's current session's id, shared with the project's `Current` and its router's route.
    session_id: Option<Arc<str>>,
    status: Option<AgentStatus>,
    error: Option<String>,
    last_activity: Option<Instant>,
    active_tool: Option<String>,
    tokens: u64,
    context_limit: u64,
    costs: VecDeque<(Instant, f64)>,
    stall_after: Duration,
    /// Why the provider is retrying, until it makes progress again.
    retrying: Option<String>,
    /// The tool called over and over, as its session's loop detector says (actors/session/activity.rs).
    looping: Option<String>,
    /// Tool-permission requests of the session waiting for an answer (actors/approvals.rs).
    awaiting: usize,
    /// The session was stopped by a budget (actors/control.rs).
    budget_exceeded: bool,
}

impl HealthTracker {
    pub fn new(stall_after: Duration) -> HealthTracker {
        HealthTracker {
            session_id: None,
            status: None,
            error: None,
            last_activity: None,
            active_tool: None,
            tokens: 0,
            context_limit: DEFAULT_CONTEXT_LIMIT,
            costs: VecDeque::new(),
            stall_after,
            retrying: None,
            looping: None,
            awaiting: 0,
            budget_exceeded: false,
        }
    }

    /// A new current session (or none): the per-session inputs start over.
    pub fn set_session(&mut self, session_id: Option<Arc<str>>, now: Instant) {
        self.session_id = session_id;
        self.status = None;
        self.error = None;
        self.active_tool = None;
        self.tokens = 0;
        self.costs.clear();
        self.last_activity = Some(now);
        self.retrying = None;
        self.looping = None;
        self.awaiting = 0;
        self.budget_exceeded = false;
    }

    /// How many tool-permission requests of the session wait for an answer.
    pub fn set_awaiting(&mut self, count: usize) {
        self.awaiting = count;
    }

    /// A budget stopped the session (until it runs again).
    pub fn set_budget_exceeded(&mut self) {
        self.budget_exceeded = true;
    }

    pub fn set_stall_after(&mut self, stall_after: Duration) {
        self.stall_after = stall_after;
    }

    pub fn set_context_limit(&mut self, limit: u64) {
        self.context_limit = limit.max(1);
    }

    /// The original's `recordActivity`: a tool-call names the tool now in flight.
    pub fn record_activity(&mut self, tool: Option<&str>, now: Instant) {
        self.last_activity = Some(now);
        if let Some(t) = tool {
            self.active_tool = Some(t.to_owned());
        }
    }

    /// The session's last progress, read from its mailbox stats: a batch that changed nothing else
    /// was not reported (actors/session/activity.rs). Never moves the clock back.
    pub fn progressed(&mut self, at: Instant) {
        if self.last_activity.is_none_or(|t| t < at) {
            self.last_activity = Some(at);
        }
    }

    /// A batch of messages: only progress is activity (retries and errors are not); retries and repeated
    /// tool calls are remembered for attention.
    pub fn record(&mut self, activity: Activity, now: Instant) {
        if activity.progress {
            match activity.tool {
                Some(Some(name)) => self.record_activity(Some(&name), now),
                Some(None) => self.record_tool_done(now),
                None => self.record_activity(None, now),
            }
            self.retrying = None;
        }
        if activity.retrying.is_some() {
            self.retrying = activity.retrying;
        }
        if let Some(looping) = activity.looping {
            self.looping = looping;
        }
    }

    /// The tool its session called with the same input `LOOP_REPEATS` times in a row, if any.
    fn looping(&self) -> Option<&str> {
        self.looping.as_deref()
    }

    /// The original's `recordToolDone`.
    pub fn record_tool_done(&mut self, now: Instant) {
        self.last_activity = Some(now);
        self.active_tool = None;
    }

    /// The original's `recordTokenSnapshot`: totals, not deltas.
    pub fn record_token_snapshot(&mut self, tokens: u64, cost_usd: f64, now: Instant) {
        self.tokens = tokens;
        self.costs.push_back((now, cost_usd));
        while self
            .costs
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > BURN_WINDOW)
        {
            self.costs.pop_front();
        }
    }

    /// The original's `setProjectStatus`.
    pub fn set_status(&mut self, status: AgentStatus, error: Option<String>) {
        self.status = Some(status);
        if status == AgentStatus::Error {
            self.error = error;
        } else {
            self.error = None;
        }
        if status != AgentStatus::Running {
            self.active_tool = None;
            self.retrying = None;
            self.awaiting = 0;
        } else {
            self.budget_exceeded = false;
        }
    }

    /// A status its session reported: a session turning running again is active from now, as its own stall
    /// clock counts it (so the project's health turns stalled when the session reports its stall, not at
    /// once or earlier by the silence before it finished).
    pub fn report_status(&mut self, status: AgentStatus, error: Option<String>, now: Instant) {
        let resumed = status == AgentStatus::Running && self.status != Some(AgentStatus::Running);
        self.set_status(status, error);
        if resumed {
            self.last_activity = Some(now);
        }
    }

    pub fn activity_state(&self, now: Instant) -> ActivityState {
        if self.status != Some(AgentStatus::Running) {
            return ActivityState::Inactive;
        }
        if self.active_tool.is_some() {
            return ActivityState::Running;
        }
        if self.idle_for(now) >= self.stall_after {
            ActivityState::Stalled
        } else {
            ActivityState::Idle
        }
    }

    /// When an idle running session turns stalled, if it is idle now; `None` when time alone changes nothing.
    pub fn stall_deadline(&self, now: Instant) -> Option<Instant> {
        match self.activity_state(now) {
            ActivityState::Idle => self.last_activity.map(|t| t + self.stall_after),
            _ => None,
        }
    }

    fn idle_for(&self, now: Instant) -> Duration {
        self.last_activity
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t))
    }

    /// Cost per hour over the last five minutes of snapshots.
    pub fn burn_rate_per_hour(&self) -> f64 {
        match (self.costs.front(), self.costs.back()) {
            (Some((t0, c0)), Some((t1, c1))) if self.costs.len() >= 2 => {
                let span = t1.duration_since(*t0);
                if span < MIN_BURN_SPAN {
                    0.0
                } else {
                    ((c1 - c0) / span.as_secs_f64() * 3600.0).max(0.0)
                }
            }
            _ => 0.0,
        }
    }

    pub fn context_pressure(&self) -> Option<f64> {
        (self.tokens > 0).then(|| self.tokens as f64 / self.context_limit as f64)
    }

    /// The original dashboard's scoring: the highest signal wins.
    fn attention(&self, state: ActivityState, now: Instant) -> (u32, Option<String>) {
        let mut best: (u32, Option<String>) = (0, None);
        let mut offer = |score: u32, reason: String| {
            if score > best.0 {
                best = (score, Some(reason));
            }
        };
        // A person must answer before the agent can go on: above everything else.
        if self.awaiting > 0 && self.status == Some(AgentStatus::Running) {
            offer(110, "awaiting approval".into());
        }
        if self.budget_exceeded {
            offer(95, "budget exceeded".into());
        }
        if state == ActivityState::Stalled {
            let mins = self.idle_for(now).as_secs() / 60;
            offer(100, format!("Stalled — {mins} min since last activity"));
        }
        if self.status == Some(AgentStatus::Error) {
            let err: String = self
                .error
                .as_deref()
                .unwrap_or("unknown")
                .chars()
                .take(60)
                .collect();
            offer(90, format!("Error: {err}"));
        }
        if self.status == Some(AgentStatus::Running) {
            if let Some(tool) = self.looping() {
                offer(85, format!("looping: {tool}"));
            }
            if let Some(reason) = &self.retrying {
                let reason: String = reason.chars().take(80).collect();
                offer(70, format!("retrying: {reason}"));
            }
        }
        if let Some(p) = self.context_pressure() {
            let pct = (p * 100.0).round() as u64;
            if p > 0.9 {
                offer(80, format!("Context {pct}% — near limit"));
            } else if p > 0.75 {
                offer(40, format!("Context {pct}%"));
            }
        }
        best
    }

    /// Whether the parts of the health that are news (`HealthNews`) differ from `last`; if they do,
    /// `last` becomes them. Called after every batch of a session's messages, so the common answer (no
    /// news) is reached without building the health or copying a string.
    pub fn news_since(&self, last: &mut Option<HealthNews>, now: Instant) -> bool {
        let state = self.activity_state(now);
        let (score, reason) = self.attention(state, now);
        // The stalled reason counts minutes; a new minute is not a new state.
        let reason = reason.filter(|_| state != ActivityState::Stalled);
        let same = last.as_ref().is_some_and(|l| {
            l.state == state
                && l.score == score
                && l.reason == reason
                && l.session_id.as_deref() == self.session_id.as_deref()
                && l.active_tool.as_deref() == self.active_tool.as_deref()
        });
        if !same {
            *last = Some(HealthNews {
                session_id: self.session_id.clone(),
                state,
                active_tool: self.active_tool.clone(),
                score,
                reason,
            });
        }
        !same
    }

    pub fn snapshot(&self, project_id: &str, now: Instant) -> ProjectHealth {
        let state = self.activity_state(now);
        let (attention_score, attention_reason) = self.attention(state, now);
        ProjectHealth {
            project_id: project_id.to_owned(),
            session_id: self.session_id.as_deref().map(String::from),
            activity_state: state,
            active_tool: self.active_tool.clone(),
            idle_duration_ms: match state {
                ActivityState::Inactive => 0,
                _ => self.idle_for(now).as_millis() as u64,
            },
            burn_rate_per_hour: self.burn_rate_per_hour(),
            context_pressure: self.context_pressure(),
            attention_score,
            attention_reason,
            stall_threshold_ms: self.stall_after.as_millis() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(stall: Duration) -> (HealthTracker, Instant) {
        let t0 = Instant::now();
        let mut h = HealthTracker::new(stall);
        h.set_session(Some("p-1".into()), t0);
        h.set_status(AgentStatus::Running, None);
        (h, t0)
    }

    #[test]
    fn activity_states_follow_tools_and_the_stall_threshold() {
        let (mut h, t0) = running(Duration::from_secs(60));
        assert_eq!(h.activity_state(t0), ActivityState::Idle);
        h.record_activity(Some("Bash"), t0);
        assert_eq!(
            h.activity_state(t0 + Duration::from_secs(600)),
            ActivityState::Running
        );
        h.record_tool_done(t0);
        assert_eq!(
            h.activity_state(t0 + Duration::from_secs(61)),
            ActivityState::Stalled
        );
        let s = h.snapshot("p", t0 + Duration::from_secs(61 * 3));
        assert_eq!(s.attention_score, 100);
        assert_eq!(
            s.attention_reason.as_deref(),
            Some("Stalled — 3 min since last activity")
        );
        h.set_status(AgentStatus::Done, None);
        assert_eq!(h.activity_state(t0), ActivityState::Inactive);
    }

    #[test]
    fn a_session_running_again_is_idle_from_then_not_stalled_by_its_silence_before() {
        let (mut h, t0) = running(Duration::from_secs(60));
        h.report_status(AgentStatus::Done, None, t0);
        let back = t0 + Duration::from_secs(50);
        h.report_status(AgentStatus::Running, None, back);
        // Its session's stall clock restarted at `back`: the health turns stalled when it fires.
        assert_eq!(h.stall_deadline(back), Some(back + Duration::from_secs(60)));
        // Running already: a repeated status is not activity.
        h.report_status(AgentStatus::Running, None, back + Duration::from_secs(30));
        assert_eq!(
            h.activity_state(back + Duration::from_secs(60)),
            ActivityState::Stalled
        );
    }

    fn batch(progress: bool, retrying: Option<&str>, looping: Option<Option<&str>>) -> Activity {
        Activity {
            tool: None,
            progress,
            retrying: retrying.map(String::from),
            looping: looping.map(|l| l.map(String::from)),
        }
    }

    #[test]
    fn retries_are_not_activity_and_show_as_retrying_until_progress() {
        let (mut h, t0) = running(Duration::from_secs(60));
        let t1 = t0 + Duration::from_secs(50);
        h.record(batch(false, Some("401 authentication_failed"), None), t1);
        let s = h.snapshot("p", t1);
        assert_eq!(
            s.idle_duration_ms, 50_000,
            "a retry does not reset the idle clock"
        );
        assert_eq!(
            (s.attention_score, s.attention_reason.as_deref()),
            (70, Some("retrying: 401 authentication_failed"))
        );
        // Still retrying a minute later: stalled outranks it.
        let s = h.snapshot("p", t0 + Duration::from_secs(61));
        assert_eq!(s.activity_state, ActivityState::Stalled);
        h.record(batch(true, None, None), t1);
        let s = h.snapshot("p", t1);
        assert_eq!((s.attention_score, s.idle_duration_ms), (0, 0));
    }

    #[test]
    fn looping_shows_from_the_report_that_begins_it_to_the_one_that_ends_it() {
        let (mut h, t0) = running(Duration::from_secs(600));
        h.record(batch(true, None, Some(Some("Bash"))), t0);
        let s = h.snapshot("p", t0);
        assert_eq!(
            (s.attention_score, s.attention_reason.as_deref()),
            (85, Some("looping: Bash"))
        );
        // A report that says nothing of it leaves it.
        h.record(batch(true, None, None), t0);
        assert_eq!(h.snapshot("p", t0).attention_score, 85);
        h.record(batch(true, None, Some(None)), t0);
        assert_eq!(h.snapshot("p", t0).attention_score, 0);
        h.record(batch(true, None, Some(Some("Bash"))), t0);
        h.set_status(AgentStatus::Done, None);
        assert_eq!(h.snapshot("p", t0).attention_score, 0);
    }

    #[test]
    fn progress_read_from_the_session_moves_the_idle_clock_and_never_back() {
        let (mut h, t0) = running(Duration::from_secs(60));
        let t1 = t0 + Duration::from_secs(50);
        h.progressed(t1);
        let s = h.snapshot("p", t0 + Duration::from_secs(70));
        assert_eq!(
            (s.activity_state, s.idle_duration_ms),
            (ActivityState::Idle, 20_000)
        );
        assert_eq!(h.stall_deadline(t1), Some(t1 + Duration::from_secs(60)));
        h.progressed(t0);
        assert_eq!(h.snapshot("p", t1).idle_duration_ms, 0);
    }

    #[test]
    fn awaiting_approval_outranks_stalled_and_budget_outranks_the_error() {
        let (mut h, t0) = running(Duration::from_secs(60));
        let later = t0 + Duration::from_secs(600);
        assert_eq!(h.snapshot("p", later).attention_score, 100);
        h.set_awaiting(2);
        let s = h.snapshot("p", later);
        assert_eq!(
            (s.attention_score, s.attention_reason.as_deref()),
            (110, Some("awaiting approval"))
        );
        h.set_awaiting(0);
        h.set_budget_exceeded();
        h.set_status(
            AgentStatus::Error,
            Some("Budget exceeded: $2.00 of $1.00 (session)".into()),
        );
        let s = h.snapshot("p", later);
        assert_eq!(
            (s.attention_score, s.attention_reason.as_deref()),
            (95, Some("budget exceeded"))
        );
        h.set_status(AgentStatus::Running, None);
        assert_ne!(
            h.snapshot("p", t0).attention_reason.as_deref(),
            Some("budget exceeded")
        );
    }

    #[test]
    fn burn_rate_is_the_cost_delta_per_hour_over_the_window() {
        let (mut h, t0) = running(Duration::from_secs(60));
        h.record_token_snapshot(10, 1.0, t0);
        assert_eq!(h.burn_rate_per_hour(), 0.0, "one snapshot gives no rate");
        h.record_token_snapshot(20, 1.5, t0 + Duration::from_secs(2));
        assert_eq!(h.burn_rate_per_hour(), 0.0, "under 4 s apart gives no rate");
        h.record_token_snapshot(30, 2.0, t0 + Duration::from_secs(60));
        assert!((h.burn_rate_per_hour() - 60.0).abs() < 1e-9);
        // Ten minutes later the first snapshots have left the window.
        h.record_token_snapshot(40, 3.0, t0 + Duration::from_secs(660));
        assert_eq!(h.burn_rate_per_hour(), 0.0);
    }

    #[test]
    fn attention_takes_the_highest_signal() {
        let (mut h, t0) = running(Duration::from_secs(60));
        h.record_token_snapshot(160_000, 0.0, t0);
        let s = h.snapshot("p", t0);
        assert_eq!(
            (s.attention_score, s.attention_reason.as_deref()),
            (40, Some("Context 80%"))
        );
        h.record_token_snapshot(190_000, 0.0, t0);
        let s = h.snapshot("p", t0);
        assert_eq!(s.attention_score, 80);
        assert_eq!(
            s.attention_reason.as_deref(),
            Some("Context 95% — near limit")
        );
        h.set_status(AgentStatus::Error, Some("x".repeat(100)));
        let s = h.snapshot("p", t0);
        assert_eq!(s.attention_score, 90);
        assert_eq!(
            s.attention_reason.unwrap(),
            format!("Error: {}", "x".repeat(60))
        );
        h.set_session(None, t0);
        let s = h.snapshot("p", t0);
        assert_eq!((s.attention_score, s.context_pressure), (0, None));
    }

    #[test]
    fn health_news_shares_the_session_id_it_was_given() {
        let t0 = Instant::now();
        let id: Arc<str> = "p-1764540000000".into();
        let mut h = HealthTracker::new(Duration::from_secs(60));
        h.set_session(Some(id.clone()), t0);
        let mut last = None;
        assert!(h.news_since(&mut last, t0), "the first news");
        let kept = last.as_ref().and_then(|n| n.session_id.as_ref()).unwrap();
        // One allocation for the project's current session, its health and its last news.
        assert!(Arc::ptr_eq(kept, &id));
        assert_eq!(Arc::strong_count(&id), 3);
        assert!(!h.news_since(&mut last, t0), "nothing new");
        assert_eq!(h.snapshot("p", t0).session_id.as_deref(), Some(&*id));
    }
}
