//! One ingest request's events, built on demand in the form the target takes: typed `SidecarEvent`s for
//! the in-process engine, a JSON array for HTTP. Both come from the same `Content` templates, so the two
//! modes send the same messages.

use std::ops::Range;

use super::content::{finish_events, message_event, Content};
use super::plan::{Layout, Request};
use crate::messages::wire::{SidecarEvent, UnixMs};

/// What a request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// One chunk of messages for each project of the request.
    Messages(Request),
    /// Status done and cost for each project of the range.
    Finish(Range<usize>),
}

/// A request, ready to be rendered for a target.
pub struct Outgoing<'a> {
    pub content: &'a Content,
    pub layout: &'a Layout,
    /// Session ids by project index.
    pub sessions: &'a [String],
    pub part: Part,
    pub timestamp: UnixMs,
}

impl Outgoing<'_> {
    pub fn events(&self) -> Vec<SidecarEvent> {
        match &self.part {
            Part::Messages(req) => req
                .projects
                .clone()
                .map(|p| {
                    let raws = self
                        .layout
                        .chunk_range(req.chunk)
                        .map(|i| self.content.raw(p, i, self.timestamp))
                        .collect();
                    message_event(&self.sessions[p], raws)
                })
                .collect(),
            Part::Finish(projects) => projects
                .clone()
                .flat_map(|p| finish_events(&self.sessions[p], self.layout.messages))
                .collect(),
        }
    }

    /// The request body as `POST /v1/sidecar/events` takes it: a JSON array of events.
    pub fn json(&self) -> String {
        match &self.part {
            Part::Messages(req) => {
                let range = self.layout.chunk_range(req.chunk);
                let estimate: usize = req
                    .projects
                    .clone()
                    .map(|p| {
                        range
                            .clone()
                            .map(|i| self.content.content_len(p, i) + 64)
                            .sum::<usize>()
                            + 96
                    })
                    .sum();
                let mut out = String::with_capacity(estimate + 2);
                out.push('[');
                for (n, p) in req.projects.clone().enumerate() {
                    if n > 0 {
                        out.push(',');
                    }
                    // Session ids are letters, digits, `.`, `_`, `-`: nothing to escape.
                    out.push_str(r#"{"event":"agent.message","payload":{"sessionId":""#);
                    out.push_str(&self.sessions[p]);
                    out.push_str(r#"","messages":["#);
                    for (k, i) in range.clone().enumerate() {
                        if k > 0 {
                            out.push(',');
                        }
                        self.content.write_raw_json(&mut out, p, i, self.timestamp);
                    }
                    out.push_str("]}}");
                }
                out.push(']');
                out
            }
            Part::Finish(_) => {
                serde_json::to_string(&self.events()).expect("sidecar events always serialise")
            }
        }
    }

    /// Messages this request carries (finish requests carry none).
    pub fn messages(&self) -> usize {
        match &self.part {
            Part::Messages(req) => self.layout.request_messages(req),
            Part::Finish(_) => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadtest::content::Sizes;

    #[test]
    fn json_and_typed_forms_agree() {
        let content = Content::new(Sizes::Realistic);
        let layout = Layout::new(5, 30, 10, 20);
        let sessions: Vec<String> = (0..5).map(|p| format!("p{p}-1700000000000")).collect();
        for part in [
            Part::Messages(Request {
                chunk: 2,
                projects: 2..4,
            }),
            Part::Finish(0..5),
        ] {
            let out = Outgoing {
                content: &content,
                layout: &layout,
                sessions: &sessions,
                part,
                timestamp: 1_700_000_000_123,
            };
            let parsed: Vec<SidecarEvent> = serde_json::from_str(&out.json()).expect("valid body");
            assert_eq!(parsed, out.events());
        }
    }
}
