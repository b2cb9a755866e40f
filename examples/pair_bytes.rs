//! Bytes per running pair (a project's actor and its running session's), by jemalloc's own count: what
//! #12's 100,000-project run holds per project at the end of its setup, without the HTTP server, the
//! client, or RSS's page granularity. Starts `warm` synthetic agents (so the maps and arenas are past
//! their first growth), reads jemalloc's `stats.allocated` and its size classes, starts `n` more (64 at a
//! time, as the load test does), waits until storage has them, and reads again.
//!
//! `cargo run --release --features heap-stats --example pair_bytes -- [n] [warm]` (defaults 20000 and 2000); it prints the bytes
//! per pair and, per jemalloc size class, how many more regions each pair holds.

use std::ffi::{c_char, c_void, CString};
use std::sync::Arc;

use agent_store::config::Config;
use agent_store::engine::Engine;
use agent_store::messages::commands::StartRequest;
use agent_store::providers::synthetic::Synthetic;
use agent_store::providers::Providers;
use futures_util::{stream, StreamExt};

#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// Reads a jemalloc control (`T`: its C type's Rust twin).
fn read<T: Default>(name: &str) -> T {
    let name = CString::new(name).unwrap();
    let mut value = T::default();
    let mut len = std::mem::size_of::<T>();
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            name.as_ptr() as *const c_char,
            &mut value as *mut T as *mut c_void,
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    assert_eq!(rc, 0, "mallctl {name:?}");
    value
}

/// jemalloc's statistics are a snapshot taken when its epoch advances.
fn advance_epoch() {
    let mut epoch: u64 = 1;
    let rc = unsafe {
        tikv_jemalloc_sys::mallctl(
            c"epoch".as_ptr(),
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            &mut epoch as *mut u64 as *mut c_void,
            std::mem::size_of::<u64>(),
        )
    };
    assert_eq!(rc, 0, "mallctl epoch");
}

/// What the heap holds now: bytes allocated, and regions in use per small size class.
struct Heap {
    allocated: usize,
    classes: Vec<(usize, usize)>,
}

fn heap() -> Heap {
    advance_epoch();
    let bins: u32 = read("arenas.nbins");
    let classes = (0..bins)
        .map(|j| {
            let size: usize = read(&format!("arenas.bin.{j}.size"));
            // 4096: every arena merged (MALLCTL_ARENAS_ALL).
            let regions: usize = read(&format!("stats.arenas.4096.bins.{j}.curregs"));
            (size, regions)
        })
        .collect();
    Heap {
        allocated: read("stats.allocated"),
        classes,
    }
}

async fn start(engine: &Engine, from: usize, count: usize) {
    stream::iter(from..from + count)
        .map(|p| {
            let engine = engine.clone();
            async move {
                let project_id = format!("lt-pairs-{p}");
                let req = StartRequest {
                    provider: "synthetic".into(),
                    prompt: format!("load test of {project_id}"),
                    options: Default::default(),
                };
                engine.start_agent(&project_id, req).await.unwrap();
            }
        })
        .buffer_unordered(64)
        .collect::<()>()
        .await;
    engine.flush().await.unwrap();
}

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .map(|a| a.parse::<usize>().unwrap());
    let n = args.next().unwrap_or(20_000);
    let warm = args.next().unwrap_or(2_000);
    let dir = tempfile::tempdir().unwrap();
    let mut config = match std::path::Path::new("config/default.toml") {
        p if p.exists() => Config::from_file(p).unwrap(),
        _ => Config::default(),
    };
    config.storage.data_dir = dir.path().to_owned();
    actix_rt::System::new().block_on(async move {
        let mut providers = Providers::new();
        providers.insert("synthetic", Arc::new(Synthetic));
        let engine = Engine::start(config, providers).await.unwrap();
        start(&engine, 0, warm).await;
        let before = heap();
        start(&engine, warm, n).await;
        let after = heap();
        let per_pair = (after.allocated as f64 - before.allocated as f64) / n as f64;
        println!("pairs {n} (after {warm}): {per_pair:.0} bytes per pair");
        println!("size class: regions per pair (bytes per pair)");
        for ((size, was), (_, now)) in before.classes.iter().zip(&after.classes) {
            let more = (*now as f64 - *was as f64) / n as f64;
            if more.abs() >= 0.05 {
                println!("{size:>6}: {more:>5.2} ({:.0})", more * *size as f64);
            }
        }
        let small: f64 = before
            .classes
            .iter()
            .zip(&after.classes)
            .map(|((size, was), (_, now))| (*now as f64 - *was as f64) * *size as f64)
            .sum::<f64>()
            / n as f64;
        println!("small classes together: {small:.0} bytes per pair; the rest is larger extents");
        engine.shutdown().await;
    });
}
