//! One arbiter (event-loop thread) per core. Project and session actors are placed by a hash of their
//! projectId, so a project's actors always share a thread (their messages to each other stay local) while
//! different projects spread over every core.

use std::hash::{Hash, Hasher};

use actix::{Arbiter, ArbiterHandle};

/// The project a session id belongs to: ids are `<projectId>-<unix ms>`; `None` for an id that names
/// none (no dash, or nothing before it). The projectId alone is the routing key (`slot`, and the
/// cluster's partition), so a session's events and commands find its project's arbiter from its id.
pub fn project_of_session(session_id: &str) -> Option<&str> {
    session_id
        .rsplit_once('-')
        .map(|(project, _)| project)
        .filter(|p| !p.is_empty())
}

/// `project_of_session` as a routing key: an id that names no project routes as a project of its own
/// name, where it finds no session.
pub fn project_of(session_id: &str) -> &str {
    project_of_session(session_id).unwrap_or(session_id)
}

pub struct Arbiters {
    arbiters: Vec<Arbiter>,
}

impl Arbiters {
    /// Starts `count` arbiters (at least one), their threads named `engine-0`, `engine-1`, ….
    pub fn start(count: usize) -> Arbiters {
        Arbiters {
            arbiters: (0..count.max(1))
                .map(|i| named(&format!("engine-{i}")))
                .collect(),
        }
    }

    /// One per available core.
    pub fn per_core() -> Arbiters {
        Arbiters::start(std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    /// The arbiter of a project: stable for the life of the process.
    pub fn for_project(&self, project_id: &str) -> ArbiterHandle {
        self.arbiters[slot(project_id, self.arbiters.len())].handle()
    }

    pub fn len(&self) -> usize {
        self.arbiters.len()
    }

    pub fn is_empty(&self) -> bool {
        self.arbiters.is_empty()
    }

    /// The `index`-th arbiter (see `slot`).
    pub fn handle(&self, index: usize) -> ArbiterHandle {
        self.arbiters[index].handle()
    }
}

/// A new arbiter whose thread is called `name` (see `telemetry::name_this_thread`) by the time this
/// returns, so whatever looks at the threads afterwards (a profile, the load test's split) sees it.
pub fn named(name: &str) -> Arbiter {
    let arbiter = Arbiter::new();
    let name = name.to_owned();
    let (named, done) = std::sync::mpsc::sync_channel(1);
    arbiter.spawn_fn(move || {
        crate::telemetry::name_this_thread(&name);
        let _ = named.send(());
    });
    // Start-up only, and the new thread does nothing before this.
    let _ = done.recv();
    arbiter
}

/// Which of `count` arbiters (and routers) a project belongs to: a hash of its id, the same for every
/// call and every caller.
pub fn slot(project_id: &str, count: usize) -> usize {
    // DefaultHasher::new() has fixed keys, so the placement is the same for every call.
    let mut h = std::collections::hash_map::DefaultHasher::new();
    project_id.hash(&mut h);
    (h.finish() % count.max(1) as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_names_its_project() {
        assert_eq!(project_of_session("my-proj-1700000000000"), Some("my-proj"));
        assert_eq!(project_of_session("-17"), None);
        assert_eq!(project_of_session("nodash"), None);
        assert_eq!(project_of("my-proj-1700000000000"), "my-proj");
        assert_eq!(project_of("nodash"), "nodash");
    }
}
