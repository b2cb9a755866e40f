//! The store's resident memory during a run: `VmHWM`/`VmRSS` of this process for an in-process engine (which
//! includes the generator), of `--server-pid` for a server, or else the server's
//! `process_resident_memory_bytes` from `/metrics`, sampled once a second, when it exports it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::target::{proc_memory, Target};

pub enum MemoryProbe {
    /// Read `/proc/<pid>/status` at the end (None: this process). VmHWM is already the peak.
    Proc(Option<u32>),
    /// Sample `/metrics`.
    Metrics {
        peak: Arc<AtomicU64>,
        task: tokio::task::JoinHandle<()>,
    },
}

/// What was measured: peak, at the end, and where it came from.
pub struct Memory {
    pub peak: Option<u64>,
    pub end: Option<u64>,
    pub source: String,
}

impl MemoryProbe {
    pub fn start(target: &Arc<Target>, server_pid: Option<u32>) -> MemoryProbe {
        match (target.as_ref(), server_pid) {
            (Target::InProcess(_), _) => MemoryProbe::Proc(None),
            (Target::Http(_), Some(pid)) => MemoryProbe::Proc(Some(pid)),
            (Target::Http(_), None) => {
                let peak = Arc::new(AtomicU64::new(0));
                let (target, sampled) = (target.clone(), peak.clone());
                let task = tokio::spawn(async move {
                    loop {
                        sample(&target, &sampled).await;
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                });
                MemoryProbe::Metrics { peak, task }
            }
        }
    }

    pub async fn finish(self, target: &Target) -> Memory {
        match self {
            MemoryProbe::Proc(pid) => {
                let end = proc_memory(pid, "VmRSS");
                // The kernel updates VmHWM lazily, so a growing process can show an RSS above it.
                let peak = proc_memory(pid, "VmHWM").max(end);
                Memory {
                    peak,
                    end,
                    source: match pid {
                        None => "VmHWM of this process (engine and generator)".into(),
                        Some(pid) => format!("VmHWM of server pid {pid}"),
                    },
                }
            }
            MemoryProbe::Metrics { peak, task } => {
                task.abort();
                sample(target, &peak).await;
                match peak.load(Ordering::Relaxed) {
                    0 => Memory {
                        peak: None,
                        end: None,
                        source: "unavailable: the server exports no process_resident_memory_bytes; give --server-pid".into(),
                    },
                    p => Memory {
                        peak: Some(p),
                        end: None,
                        source: "max of /metrics process_resident_memory_bytes, sampled every second".into(),
                    },
                }
            }
        }
    }
}

async fn sample(target: &Target, peak: &AtomicU64) {
    if let Target::Http(h) = target {
        if let Some(rss) = h.metrics_rss().await {
            peak.fetch_max(rss, Ordering::Relaxed);
        }
    }
}
