//! Cluster-wide lists: `GET /v1/projects` and `/v1/health…` on any node answer for every project of the
//! cluster, not only those whose sessions this node runs. Each node answers `projects` and `health`
//! requests on `agent_store.node.<id>.lists` from its own engine; the node asked gathers every live peer's
//! answer (concurrently, each within `forward_timeout`) and merges them with its own.
//!
//! A project can have data on two nodes (its partition moved, or a node kept a partition that holds its
//! older sessions): the entry whose current session is the newest wins, which is the node that runs the
//! project now. A peer that does not answer is left out and logged, so a list is never held up by one
//! node, at the cost of being incomplete while that node is lost.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use serde::de::DeserializeOwned;
use tokio::sync::watch;

use super::error::ClusterError;
use crate::engine::project_of_session;
use crate::engine::Engine;
use crate::messages::commands::ProjectSummary;
use crate::messages::wire::ProjectHealth;

/// The lists a node answers for the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum List {
    Projects,
    Health,
}

impl List {
    fn name(self) -> &'static str {
        match self {
            List::Projects => "projects",
            List::Health => "health",
        }
    }
}

pub fn subject(node_id: &str) -> String {
    format!("agent_store.node.{node_id}.lists")
}

/// Answers list requests addressed to `node_id` from `engine`, until `stop`.
pub async fn serve(
    client: async_nats::Client,
    node_id: &str,
    engine: Engine,
    mut stop: watch::Receiver<bool>,
) -> Result<(), ClusterError> {
    let mut requests = client
        .subscribe(subject(node_id))
        .await
        .map_err(|e| ClusterError::jetstream("subscribing to list requests", e))?;
    tokio::spawn(async move {
        loop {
            let request = tokio::select! {
                request = requests.next() => request,
                _ = stop.wait_for(|stopping| *stopping) => None,
            };
            let Some(request) = request else { return };
            let Some(reply) = request.reply else { continue };
            let (client, engine) = (client.clone(), engine.clone());
            tokio::spawn(async move {
                let answer = match &request.payload[..] {
                    b"projects" => engine.projects().await.map(|l| serde_json::to_vec(&l)),
                    b"health" => engine.health().await.map(|l| serde_json::to_vec(&l)),
                    _ => return,
                };
                // An empty answer says this node could not list; the asker logs it.
                let body = match answer {
                    Ok(Ok(body)) => Bytes::from(body),
                    _ => Bytes::new(),
                };
                if let Err(e) = client.publish(reply, body).await {
                    tracing::warn!(error = %e, "cluster: cannot answer a list request");
                }
            });
        }
    });
    Ok(())
}

/// Asks every node in `peers` for `list` and answers what came back in time, in the order of `peers`.
pub async fn gather<T: DeserializeOwned>(
    client: &async_nats::Client,
    peers: &[String],
    list: List,
    timeout: Duration,
) -> Vec<Vec<T>> {
    let asks = peers.iter().map(|peer| async move {
        let request = async_nats::Request::new()
            .payload(Bytes::from_static(list.name().as_bytes()))
            .timeout(Some(timeout));
        let answer = client
            .send_request(subject(peer), request)
            .await
            .map_err(|e| e.to_string())
            .and_then(|reply| {
                serde_json::from_slice::<Vec<T>>(&reply.payload).map_err(|e| e.to_string())
            });
        answer
            .inspect_err(|e| {
                tracing::warn!(node = %peer, list = list.name(), error = %e, "cluster: a node's list is left out");
            })
            .ok()
    });
    futures_util::future::join_all(asks)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Every node's projects as one list, one entry per project (see the module doc), by projectId.
pub fn merge_projects(lists: Vec<Vec<ProjectSummary>>) -> Vec<ProjectSummary> {
    newest(lists, |p| (&p.project_id, p.session_id.as_deref()))
        .into_values()
        .collect()
}

/// Every node's project health as one list, one entry per project, highest attentionScore first (as a
/// node alone orders it).
pub fn merge_health(lists: Vec<Vec<ProjectHealth>>) -> Vec<ProjectHealth> {
    let mut out: Vec<ProjectHealth> = newest(lists, |h| (&h.project_id, h.session_id.as_deref()))
        .into_values()
        .collect();
    ProjectHealth::sort_by_attention(&mut out);
    out
}

/// One entry per project: of several, the one whose session started last; of equals, the first.
fn newest<T>(
    lists: Vec<Vec<T>>,
    key: impl Fn(&T) -> (&String, Option<&str>),
) -> BTreeMap<String, T> {
    let mut out: BTreeMap<String, T> = BTreeMap::new();
    for item in lists.into_iter().flatten() {
        let (project, session) = key(&item);
        let started = started_at(session);
        match out.get(project) {
            Some(kept) if started_at(key(kept).1) >= started => {}
            _ => {
                out.insert(project.clone(), item);
            }
        }
    }
    out
}

/// When a session started: session ids are `<projectId>-<ms>`. No session sorts first.
fn started_at(session: Option<&str>) -> Option<u64> {
    let session = session?;
    let project = project_of_session(session)?;
    session.get(project.len() + 1..)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(project: &str, session: Option<&str>) -> ProjectSummary {
        let health = ProjectHealth {
            session_id: session.map(str::to_owned),
            ..ProjectHealth::quiet(project, crate::messages::wire::ActivityState::Idle)
        };
        ProjectSummary {
            project_id: project.into(),
            session_id: session.map(str::to_owned),
            status: None,
            health,
        }
    }

    #[test]
    fn one_entry_per_project_the_newest_session_wins() {
        let here = vec![summary("p", Some("p-100")), summary("q", None)];
        let there = vec![summary("p", Some("p-200")), summary("r", Some("r-5"))];
        let stale = vec![summary("p", Some("p-150")), summary("q", Some("q-1"))];
        let merged = merge_projects(vec![here, there, stale]);
        let got: Vec<(&str, Option<&str>)> = merged
            .iter()
            .map(|p| (p.project_id.as_str(), p.session_id.as_deref()))
            .collect();
        assert_eq!(
            got,
            [("p", Some("p-200")), ("q", Some("q-1")), ("r", Some("r-5"))]
        );
    }

    #[test]
    fn health_is_ordered_by_attention_then_project() {
        let mut a = summary("a", Some("a-1")).health;
        let mut b = summary("b", Some("b-1")).health;
        let c = summary("c", Some("c-1")).health;
        a.attention_score = 10;
        b.attention_score = 50;
        let merged = merge_health(vec![vec![a, c], vec![b]]);
        let order: Vec<&str> = merged.iter().map(|h| h.project_id.as_str()).collect();
        assert_eq!(order, ["b", "a", "c"]);
    }
}
