//! Runs the real binary: a server in a temp dir, and CLI commands against it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_tessera");

/// A `tessera server` process; killed when dropped.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub dir: PathBuf,
    pub root: String,
    /// Lines the server printed on stdout before it was ready.
    pub banner: Vec<String>,
}

impl Server {
    /// Starts the server with its data in `dir` and waits (with a deadline) until it listens.
    pub fn start(dir: &Path) -> Server {
        Self::start_with(dir, &[], None)
    }

    /// [`Server::start`] with extra environment variables (`TESSERA_DB`, …). `root` is the
    /// root token when this server does not create it (a replica of an existing database).
    pub fn start_with(dir: &Path, env: &[(&str, &str)], root: Option<&str>) -> Server {
        let mut child = Command::new(BIN)
            .args(["server", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir)
            .env_remove("TESSERA_MASTER_KEY")
            .env_remove("TESSERA_DB")
            .env("TESSERA_LOG", "warn")
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting tessera server");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut banner = Vec::new();
        let url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = rx.recv_timeout(left).expect("server did not report its address in time");
            if let Some(url) = line.strip_prefix("tessera listening on ") {
                break url.to_owned();
            }
            banner.push(line);
        };
        let root = match root {
            Some(root) => root.to_owned(),
            None => std::fs::read_to_string(dir.join("root-token")).unwrap().trim().to_owned(),
        };
        Server { child, url, dir: dir.to_owned(), root, banner }
    }

    /// Runs `tessera ARGS…` against this server as root.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_as(&self.root, args)
    }

    pub fn cli_as(&self, token: &str, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(args)
            .env("TESSERA_URL", &self.url)
            .env("TESSERA_TOKEN", token)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()
            .expect("running tessera")
    }

    /// Runs a command that must succeed; returns its stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(out.status.success(), "tessera {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }

    /// Runs a command that must succeed with `-o json`; returns the parsed answer.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        serde_json::from_str(&self.ok(&all)).unwrap()
    }

    pub fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts a failed command: exit code, a single `error:` line containing `needle`.
pub fn assert_fails(out: &Output, code: i32, needle: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "stderr: {stderr}");
    assert!(stderr.contains(needle), "{stderr:?} does not contain {needle:?}");
    assert_eq!(stderr.trim_end().lines().filter(|l| l.starts_with("error:")).count(), 1, "{stderr}");
}

impl Server {
    /// Runs a `-o json` command whatever its exit code; returns the parsed stdout.
    pub fn json_status(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--output", "json"]);
        serde_json::from_slice(&self.cli(&all).stdout).unwrap()
    }
}
