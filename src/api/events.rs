//! `GET /v1/events`: live events as Server-Sent Events, optionally for one project.
//!
//! The stream subscribes before it reads anything from storage, and remembers the last seqId it emitted
//! per session, so a message is never sent twice nor skipped when a backlog read and live events overlap.
//! Every event carries an id. A client reconnecting with the last id it saw (`Last-Event-ID`) is first sent,
//! from the journal (src/actors/journal.rs), everything it missed for its filter, in the order it was
//! published, then live events; the journal answers that replay and the subscription in one step, so nothing
//! falls between them. A replayed `session.messages` is read back from the session, up to the seqId it
//! ended at. When the journal cannot replay (too old, unknown, a killed run), the client gets
//! `reset {reason}`; a v1 id `<sessionId>:<seqId>` then still gets that session's messages after seqId.
//! A subscriber that fell behind gets `lagged {missed}` and then every event it missed, from the journal
//! (messages read back from the engine; live events the replay covered are skipped), or, when the journal
//! no longer reaches back, `reset {reason}` and the messages it missed. Backlogs are read one page at a time, so a long one never sits in memory whole.
//!
//! Live frames arrive already framed and shared by every subscriber; the stream hands them to the server in
//! slices of at most `SLICE` bytes (cheap views of the shared bytes), because the server copies what it is
//! given into the connection's write buffer: a whole 12 MB frame would be a 12 MB copy per idle client.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;

use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use tokio::sync::watch;
use tokio::time::{interval_at, Instant, Interval, MissedTickBehavior};

use super::errors::{ApiError, ErrorBody};
use super::extract::{project_id, Query};
use super::AppState;
use crate::engine::Live;
use crate::engine::{Engine, Subscription};
use crate::engine::{Entry, EventId, LastEventId, Replay};
use crate::error::CommandError;
use crate::messages::commands::{LiveEvent, Page};
use crate::messages::sse;

/// Messages read from the engine per backlog frame.
const BACKLOG_PAGE: usize = 500;

/// The most of a frame handed to the server at once (see the module doc).
const SLICE: usize = 16 * 1024;

#[utoipa::path(get, path = "/v1/events", operation_id = "streamEvents", tag = "events",
    params(
        ("projectId" = Option<String>, Query, description = "Only this project's events", pattern = r"^[A-Za-z0-9._-]{1,128}$"),
        ("Last-Event-ID" = Option<String>, Header, description = "The last event id seen (<epoch>.<n>, or <sessionId>:<seqId> of a session.messages): first everything missed since, for the same filter, within server.sse_replay_window; else reset. Empty means none"),
        ("ticket" = Option<String>, Query, description = "A ticket from POST /v1/events/ticket, accepted once instead of the bearer token (for a browser's EventSource, which cannot send the header)"),
    ),
    responses(
        (status = 200, description = "Server-Sent Events: session.messages, session.status, session.cost, notification, project.health, lagged, reset", content_type = "text/event-stream", body = String),
        (status = 400, description = "projectId or Last-Event-ID does not parse", body = ErrorBody),
    ))]
pub async fn stream(
    state: web::Data<AppState>,
    req: HttpRequest,
    query: Query,
) -> Result<HttpResponse, ApiError> {
    let project = match query.text("projectId") {
        Some(id) => {
            project_id(id)?;
            Some(id.to_owned())
        }
        None => None,
    };
    let after = match req.headers().get("Last-Event-ID") {
        Some(value) => {
            let text = value.to_str().map_err(|_| {
                ApiError::invalid(
                    "Last-Event-ID",
                    "must be <sessionId>:<seqId> or <epoch>.<n>",
                )
            })?;
            super::sse::parse_last_event_id(text)?
        }
        None => None,
    };
    // Subscribe first: whatever happens from here on is either in the replay, the backlog or the
    // subscription.
    let (subscription, replay) = state
        .engine
        .subscribe_after(project.clone(), after.clone())
        .await?;
    let mut live = LiveStream {
        engine: state.engine.clone(),
        subscription,
        project,
        sent: HashMap::new(),
        backlog: VecDeque::new(),
        replay: VecDeque::new(),
        lag_from: None,
        lag_sessions: Vec::new(),
        skip_upto: None,
        pending: VecDeque::from([Bytes::from_static(sse::OPENED)]),
        keep_alive: keep_alive(state.keep_alive),
        stopping: state.stopping.clone(),
    };
    let v1 = match after {
        Some(LastEventId::Session { session_id, seq }) => {
            live.sent.insert(session_id.clone(), seq);
            Some(session_id)
        }
        _ => None,
    };
    match replay {
        Some(Replay::Entries(entries)) => live.replay.extend(entries),
        Some(Replay::Reset(reason)) => {
            live.pending.extend(sse::reset(&reason));
            // v1: that session's messages after the seqId, from storage.
            live.backlog.extend(v1);
        }
        None => {}
    }
    let body = futures_util::stream::unfold(live, |mut live| async move {
        let frame = live.next_frame().await?;
        Some((Ok::<_, Infallible>(frame), live))
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        // Tells nginx-style proxies not to buffer the stream.
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

fn keep_alive(period: std::time::Duration) -> Interval {
    let mut interval = interval_at(Instant::now() + period, period);
    interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
    interval
}

struct LiveStream {
    engine: Engine,
    subscription: Subscription,
    project: Option<String>,
    /// The last seqId this stream emitted per session.
    sent: HashMap<String, u64>,
    /// Sessions whose messages after `sent[session]` must be read from the engine before live events.
    backlog: VecDeque<String>,
    /// What the journal replays before everything else, oldest first.
    replay: VecDeque<Entry>,
    /// The subscriber lagged after this event: ask the journal for what it missed.
    lag_from: Option<EventId>,
    /// The sessions whose messages the lag notices since the last replay say were missed: read up from
    /// storage should the journal not reach back.
    lag_sessions: Vec<String>,
    /// Live events up to this one came in a replay: skip them.
    skip_upto: Option<EventId>,
    /// Frames ready to go out, in order.
    pending: VecDeque<Bytes>,
    keep_alive: Interval,
    stopping: watch::Receiver<bool>,
}

impl LiveStream {
    /// The next frame to send, or `None` when the stream ends (the server stops or the engine is gone).
    async fn next_frame(&mut self) -> Option<Bytes> {
        loop {
            if let Some(frame) = self.pending.front_mut() {
                if frame.len() > SLICE {
                    return Some(frame.split_to(SLICE));
                }
                return self.pending.pop_front();
            }
            if let Some(after) = self.lag_from.take() {
                // Status, cost, notification and health events missed too, not only messages, in the
                // order they were published. Only when the journal cannot replay are the sessions the
                // notice named read up from storage instead: read up to their newest message, they would
                // overtake the events published between (a cost before the session's last message).
                let missed = std::mem::take(&mut self.lag_sessions);
                match self.engine.replay_after(self.project.clone(), after).await {
                    Ok((Replay::Entries(entries), upto)) => {
                        self.replay.extend(entries);
                        self.skip_upto = Some(upto);
                    }
                    Ok((Replay::Reset(reason), _)) => {
                        self.pending.extend(sse::reset(&reason));
                        self.read_up(missed);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot replay what a lagging subscriber missed");
                        self.pending
                            .extend(sse::reset("the events missed cannot be replayed"));
                        self.read_up(missed);
                    }
                }
                continue;
            }
            if let Some(entry) = self.replay.pop_front() {
                match entry {
                    Entry::Frame { frame, .. } => self.pending.push_back(frame),
                    Entry::Messages {
                        session_id,
                        mut last_seq,
                        ..
                    } => {
                        // Adjacent batches of one session are read back together: nothing lies between.
                        while let Some(Entry::Messages {
                            session_id: next,
                            last_seq: upto,
                            ..
                        }) = self.replay.front()
                        {
                            if *next != session_id {
                                break;
                            }
                            last_seq = *upto;
                            self.replay.pop_front();
                        }
                        self.read_replayed(session_id, last_seq).await
                    }
                }
                continue;
            }
            if let Some(session) = self.backlog.front().cloned() {
                self.read_backlog_page(session).await;
                continue;
            }
            let event = tokio::select! {
                biased;
                _ = self.stopping.wait_for(|stopping| *stopping) => return None,
                live = self.subscription.next() => live?,
                _ = self.keep_alive.tick() => return Some(Bytes::from_static(sse::KEEP_ALIVE)),
            };
            self.on_event(event);
        }
    }

    fn on_event(&mut self, Live { event, frame, id }: Live) {
        let replayed = self.skip_upto.is_some_and(|upto| id <= upto);
        if replayed && !matches!(event, LiveEvent::Lagged { .. }) {
            return;
        }
        match event {
            LiveEvent::Messages {
                session_id,
                project_id,
                messages,
            } => {
                let last = self.sent.get(&session_id).copied().unwrap_or(0);
                let start = messages.partition_point(|m| m.seq_id <= last);
                // The shared frame when all of it is news; framed again only when a backlog read
                // already sent its first messages.
                let frame = match (start, frame) {
                    (0, Some(frame)) => Some(frame),
                    _ => sse::messages(&session_id, &project_id, &messages[start..]),
                };
                if let Some(frame) = frame {
                    if let Some(m) = messages.last() {
                        self.sent.insert(session_id, m.seq_id);
                    }
                    self.pending.push_back(frame);
                }
            }
            LiveEvent::Lagged { missed, resume } => {
                self.pending.extend(sse::lagged(missed));
                self.lag_from = Some(id);
                for (session, last) in resume {
                    let sent = self.sent.entry(session.clone()).or_insert(last);
                    *sent = (*sent).max(last);
                    self.lag_sessions.push(session);
                }
            }
            other => self
                .pending
                .extend(frame.or_else(|| sse::other(&other, None))),
        }
    }

    /// Puts sessions whose missed messages are read from storage (a page at a time) into the backlog.
    fn read_up(&mut self, sessions: Vec<String>) {
        for session in sessions {
            if !self.backlog.contains(&session) {
                self.backlog.push_back(session);
            }
        }
    }

    /// A replayed `session.messages`: the session's messages after what this stream sent of it, up to
    /// `last_seq`, read back from the engine a page at a time. Messages a crash took before they were
    /// stored are not there, and are skipped.
    async fn read_replayed(&mut self, session: String, last_seq: u64) {
        loop {
            let after = self.sent.get(&session).copied().unwrap_or(0);
            if after >= last_seq {
                return;
            }
            // At most the messages up to `last_seq` (there are no more than that many seqIds), a page at a time.
            let wanted = usize::try_from(last_seq - after).unwrap_or(usize::MAX);
            let page = Page {
                after_seq: Some(after),
                limit: Some(wanted.min(BACKLOG_PAGE)),
            };
            let found = match self.engine.session(&session, page).await {
                Ok(found) => found,
                // Purged meanwhile: nothing left to send.
                Err(CommandError::SessionNotFound) => return,
                Err(e) => {
                    tracing::warn!(sessionId = %session, error = %e, "cannot read a replayed event");
                    return;
                }
            };
            let start = found.messages.partition_point(|m| m.seq_id <= after);
            let end = found.messages.partition_point(|m| m.seq_id <= last_seq);
            let fresh = &found.messages[start..end.max(start)];
            let Some(m) = fresh.last() else { return };
            let reached = m.seq_id;
            if let Some(frame) = sse::messages(&session, &found.project_id, fresh) {
                self.pending.push_back(frame);
            }
            self.sent.insert(session.clone(), reached);
            if end < found.messages.len() || found.messages.len() < wanted.min(BACKLOG_PAGE) {
                return;
            }
        }
    }

    /// Reads one page of the session at the head of the backlog; drops it from the backlog once read up.
    async fn read_backlog_page(&mut self, session: String) {
        let after = self.sent.get(&session).copied().unwrap_or(0);
        let page = Page {
            after_seq: Some(after),
            limit: Some(BACKLOG_PAGE),
        };
        let done = match self.engine.session(&session, page).await {
            Ok(found)
                if self
                    .project
                    .as_ref()
                    .is_some_and(|p| *p != found.project_id) =>
            {
                true
            }
            Ok(found) => {
                let start = found.messages.partition_point(|m| m.seq_id <= after);
                let fresh = &found.messages[start..];
                if let Some(frame) = sse::messages(&session, &found.project_id, fresh) {
                    if let Some(m) = fresh.last() {
                        self.sent.insert(session.clone(), m.seq_id);
                    }
                    self.pending.push_back(frame);
                }
                fresh.len() < BACKLOG_PAGE
            }
            // Purged meanwhile: nothing left to send.
            Err(CommandError::SessionNotFound) => true,
            Err(e) => {
                tracing::warn!(sessionId = %session, error = %e, "cannot read an event backlog");
                true
            }
        };
        if done {
            self.backlog.pop_front();
        }
    }
}
