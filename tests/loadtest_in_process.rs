//! The load generator against a real engine in this process (real redb in a temp dir): a small run passes
//! the loss check and reports every measurement; a run whose session is purged before the check fails it.

use std::time::Duration;

use agent_store::config::Config;
use agent_store::loadtest::{self, CheckContext, LoadtestError, Options, Sizes, TargetSpec};

/// Built-in defaults with a short persistence debounce, so the persist-lag probe resolves quickly.
fn spec() -> TargetSpec {
    let mut config = Config::default();
    config.timers.persist_debounce = Duration::from_millis(20);
    TargetSpec::InProcess {
        config: Box::new(config),
        data_dir: None,
    }
}

fn small(projects: usize, messages: usize) -> Options {
    Options {
        projects,
        messages,
        batch: 100,
        per_event: 10,
        concurrency: 8,
        quiet: true,
        ..Options::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_run_stores_everything_once_and_reports_every_field() {
    let dir = tempfile::tempdir().unwrap();
    let (report_path, plot_path) = (dir.path().join("run.json"), dir.path().join("run.svg"));
    let opts = Options {
        report: Some(report_path.clone()),
        plot: Some(plot_path.clone()),
        ..small(20, 50)
    };
    let report = loadtest::run(spec(), opts).await.expect("the run passes");

    assert_eq!(
        (report.sent, report.acked, report.stored),
        (1000, 1000, 1000)
    );
    assert_eq!((report.errors, report.ignored), (0, 0));
    assert_eq!(
        report.requests,
        10 + 2,
        "ten message requests, two finishing requests"
    );
    let loss = &report.loss_check;
    assert!(loss.passed, "{loss:?}");
    assert_eq!(
        (loss.sessions_checked, loss.expected, loss.missing),
        (20, 1000, 0)
    );
    assert!(report.messages_per_s > 0.0);
    // Stored end to end can never be faster than accepted: it spans the stream and the finish.
    assert!(report.stored_per_s > 0.0 && report.stored_per_s < report.messages_per_s);
    assert_eq!(report.latency_ms.samples, 10, "message requests only");
    assert!(report.latency_ms.p50 > 0.0 && report.latency_ms.max >= report.latency_ms.p99);
    assert!(report.e2e_ms.samples > 0, "live stream matched no message");
    assert!(
        report.persist_lag_ms.samples > 0,
        "no persist sample resolved"
    );
    assert!(report.rss_peak_bytes.is_some_and(|b| b > 0));
    let restart = report.restart.expect("in-process runs restart the engine");
    assert_eq!(
        restart.session_messages, 51,
        "the prompt and fifty generated messages"
    );
    assert!(!report.timeline.is_empty());
    let phases: Vec<_> = report.phases.iter().map(|p| p.phase.as_str()).collect();
    assert_eq!(phases, ["setup", "stream", "finish"]);
    assert!(
        report.phases.iter().all(|p| p.generator.is_none()),
        "in-process: the generator is inside the store's process"
    );

    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report_path).unwrap()).unwrap();
    for field in [
        "sent",
        "stored",
        "messages_per_s",
        "stored_per_s",
        "rss_peak_bytes",
    ] {
        assert!(json[field].is_number(), "{field} missing: {json}");
    }
    for (field, keys) in [
        ("latency_ms", &["p50", "p90", "p99", "max"][..]),
        ("e2e_ms", &["p50", "p99"]),
        ("persist_lag_ms", &["p50", "p99"]),
    ] {
        for key in keys {
            assert!(json[field][key].is_number(), "{field}.{key} missing");
        }
    }
    assert_eq!(json["loss_check"]["passed"], true);
    let svg = std::fs::read_to_string(&plot_path).unwrap();
    assert!(svg.contains("<svg") && svg.contains("messages/s"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_session_fails_the_loss_check() {
    let opts = Options {
        sizes: Sizes::Small,
        before_check: Some(Box::new(|ctx: CheckContext| {
            Box::pin(async move {
                let engine = ctx.engine.expect("in-process runs hand over the engine");
                engine
                    .purge_session(&ctx.session_ids[3])
                    .await
                    .expect("purge");
            })
        })),
        ..small(6, 20)
    };
    let err = loadtest::run(spec(), opts)
        .await
        .expect_err("a purged session is a loss");
    let LoadtestError::Loss(report) = &err else {
        panic!("expected a loss, got {err}");
    };
    let loss = &report.loss_check;
    assert!(!loss.passed);
    assert_eq!(loss.missing, 20, "{loss:?}");
    assert_eq!(loss.stored, 100);
    assert_eq!(loss.examples.len(), 1);
    assert!(err.to_string().contains("20 missing"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duration_stops_streaming_and_checks_what_was_acknowledged() {
    let opts = Options {
        sizes: Sizes::Small,
        rate: 200.0,
        batch: 10,
        duration: Some(Duration::from_millis(300)),
        ..small(4, 1000)
    };
    let report = loadtest::run(spec(), opts).await.expect("the run passes");
    assert!(
        report.acked > 0 && report.acked < 4000,
        "acked {}",
        report.acked
    );
    assert_eq!(report.stored, report.acked);
    assert!(report.loss_check.passed);
}

/// The command runs an in-process load test on `loadtest::runtime(true)`, which has timers and no I/O
/// driver: every phase (the probes, the restart's blocking join, the loss check) must do without one.
#[test]
fn in_process_run_goes_on_the_commands_runtime_without_io() {
    let runtime = loadtest::runtime(true).expect("the runtime builds");
    let opts = Options {
        sizes: Sizes::Small,
        batch: 10,
        ..small(8, 40)
    };
    let report = runtime
        .block_on(loadtest::run(spec(), opts))
        .expect("the run passes");
    assert_eq!((report.acked, report.stored), (320, 320));
    assert!(report.loss_check.passed);
    assert!(report.restart.is_some(), "the engine was restarted");
}
