//! Provider process metrics. Runners live below the engine and have no handle to its registry, so these
//! are process-wide; every engine's registry exposes them (a collector may sit in several registries).

use std::sync::OnceLock;

use prometheus::{IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry};

pub struct ProviderMetrics {
    pub processes_alive: IntGaugeVec,
    pub exits: IntCounterVec,
    pub sidecar_restarts: IntCounterVec,
    pub skipped_lines: IntCounter,
}

/// The one set of provider metrics of this process.
pub fn provider_metrics() -> &'static ProviderMetrics {
    static METRICS: OnceLock<ProviderMetrics> = OnceLock::new();
    METRICS.get_or_init(|| ProviderMetrics {
        processes_alive: IntGaugeVec::new(
            Opts::new("agent_store_provider_processes_alive", "Agent and sidecar processes running, by provider."),
            &["provider"],
        )
        .expect("valid metric"),
        exits: IntCounterVec::new(
            Opts::new(
                "agent_store_provider_exits_total",
                "Agent and sidecar process exits, by provider and outcome (success, failure, signal).",
            ),
            &["provider", "outcome"],
        )
        .expect("valid metric"),
        sidecar_restarts: IntCounterVec::new(
            Opts::new("agent_store_sidecar_restarts_total", "Sidecar processes restarted after a crash."),
            &["provider"],
        )
        .expect("valid metric"),
        skipped_lines: IntCounter::new(
            "agent_store_provider_skipped_lines_total",
            "Provider output lines that were not JSON and were skipped.",
        )
        .expect("valid metric"),
    })
}

impl ProviderMetrics {
    /// Adds these metrics to an engine's registry.
    pub fn register(&self, registry: &Registry) {
        for collector in [
            Box::new(self.processes_alive.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(self.exits.clone()),
            Box::new(self.sidecar_restarts.clone()),
            Box::new(self.skipped_lines.clone()),
        ] {
            if let Err(e) = registry.register(collector) {
                tracing::error!(error = %e, "provider metrics not registered");
            }
        }
    }

    /// A process of `provider` started; `exited` records its end.
    pub fn started(&self, provider: &str) {
        self.processes_alive.with_label_values(&[provider]).inc();
    }

    pub fn exited(&self, provider: &str, status: &std::process::ExitStatus) {
        use std::os::unix::process::ExitStatusExt;
        let outcome = if status.success() {
            "success"
        } else if status.signal().is_some() {
            "signal"
        } else {
            "failure"
        };
        self.processes_alive.with_label_values(&[provider]).dec();
        self.exits.with_label_values(&[provider, outcome]).inc();
    }
}
