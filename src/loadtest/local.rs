//! The in-process engine's life in a run: on a temporary (or given) data directory, and restarted on the
//! written data at the end, which times start-up, one session's restore and reading it back.

use std::time::{Duration, Instant};

use super::options::{LoadtestError, TargetSpec};
use super::report::Restart;
use super::target::{EngineHost, Http, InProcess, Target, TargetError};
use crate::config::Config;

/// The in-process engine with what it needs to be restarted.
pub struct Local {
    pub host: EngineHost,
    config: Config,
    _temp: Option<tempfile::TempDir>,
}

/// Opens the target: answers it, the in-process engine's parts (None over HTTP) and the server's pid.
pub async fn open(
    spec: TargetSpec,
    pool: usize,
) -> Result<(Target, Option<Local>, Option<u32>), LoadtestError> {
    match spec {
        TargetSpec::InProcess { config, data_dir } => {
            let mut config = *config;
            let temp = match data_dir {
                Some(dir) => {
                    config.storage.data_dir = dir;
                    None
                }
                None => {
                    let temp =
                        tempfile::tempdir().map_err(|e| LoadtestError::Engine(e.to_string()))?;
                    config.storage.data_dir = temp.path().to_owned();
                    Some(temp)
                }
            };
            let host = EngineHost::start(config.clone())
                .await
                .map_err(LoadtestError::Engine)?;
            let target = Target::InProcess(InProcess::new(host.engine().clone()));
            Ok((
                target,
                Some(Local {
                    config,
                    host,
                    _temp: temp,
                }),
                None,
            ))
        }
        TargetSpec::Http {
            url,
            others,
            token,
            server_pid,
        } => Ok((
            Target::Http(Http::new(url, token, pool)?.with_nodes(others)),
            None,
            server_pid,
        )),
    }
}

/// Restarts the engine on the run's data and times start-up, one restore and one full read.
pub async fn restart(
    local: Local,
    project_id: &str,
    session_id: &str,
) -> Result<(Target, Local, Restart), LoadtestError> {
    let Local {
        config,
        host,
        _temp,
    } = local;
    host.shutdown().await;
    let begun = Instant::now();
    let host = EngineHost::start(config.clone())
        .await
        .map_err(LoadtestError::Engine)?;
    while !host.engine().is_ready() && begun.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let ready_ms = ms(begun.elapsed());
    let engine = host.engine().clone();
    let t = Instant::now();
    engine
        .load_last_session(project_id)
        .await
        .map_err(|source| TargetError::Engine {
            what: format!("restoring the session of {project_id}"),
            source,
        })?;
    let restore_ms = ms(t.elapsed());
    let target = Target::InProcess(InProcess::new(engine));
    let t = Instant::now();
    let messages = target.messages(session_id).await?;
    let restart = Restart {
        ready_ms,
        restore_ms,
        read_ms: ms(t.elapsed()),
        session_messages: messages.len() as u64,
    };
    Ok((
        target,
        Local {
            config,
            host,
            _temp,
        },
        restart,
    ))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
