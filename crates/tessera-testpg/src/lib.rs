//! PostgreSQL for Tessera's tests.
//!
//! Tests that need PostgreSQL call [`database`]: it creates a fresh database on the server
//! named by `TESSERA_TEST_POSTGRES` (a URL such as `postgres://postgres@127.0.0.1:55432/postgres`;
//! `scripts/pg-test.sh start` starts one). When the variable is unset the test is skipped with
//! a message, unless `TESSERA_REQUIRE_POSTGRES=1` (set by `.ci/run`), which makes it fail: CI
//! never skips silently.
//!
//! Tests that restart PostgreSQL use a [`PrivateServer`] of their own, so that they never
//! disturb other tests.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use sqlx::{Connection, Executor, PgConnection};

/// The server URL from `TESSERA_TEST_POSTGRES`, or `None` (with a message) to skip the test.
///
/// # Panics
/// When it is unset and `TESSERA_REQUIRE_POSTGRES=1`.
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var("TESSERA_TEST_POSTGRES") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("TESSERA_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "{test}: TESSERA_TEST_POSTGRES is unset but TESSERA_REQUIRE_POSTGRES=1"
            );
            eprintln!("SKIPPED {test}: set TESSERA_TEST_POSTGRES (see scripts/pg-test.sh) to run it");
            None
        }
    }
}

/// A new, empty database on the `TESSERA_TEST_POSTGRES` server; returns its URL. `None`
/// means "skip" (see [`server_url`]).
pub async fn database(test: &str) -> Option<String> {
    let server = server_url(test)?;
    Some(create_database(&server).await)
}

/// Creates a uniquely named database on the server at `server_url`; returns its URL.
pub async fn create_database(server_url: &str) -> String {
    let name = format!(
        "tessera_test_{}_{}",
        std::process::id(),
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos()
    );
    let mut conn =
        PgConnection::connect(server_url).await.unwrap_or_else(|e| panic!("connecting to {server_url}: {e}"));
    conn.execute(format!("CREATE DATABASE {name}").as_str()).await.expect("creating a test database");
    conn.close().await.ok();
    with_database(server_url, &name)
}

/// `url` with its database path replaced by `name`.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let base = match base[after_scheme..].find('/') {
        Some(slash) => &base[..after_scheme + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// A PostgreSQL server of one test, in a temporary directory, on a free loopback port;
/// stopped when dropped. Runs as the `postgres` user when the test runs as root (PostgreSQL
/// refuses to run as root).
pub struct PrivateServer {
    bin: PathBuf,
    data: PathBuf,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PrivateServer {
    /// Initialises and starts a server; `None` (with a message) when PostgreSQL's programs
    /// are not installed and `TESSERA_REQUIRE_POSTGRES` is not `1`.
    pub fn start(test: &str) -> Option<Self> {
        let Some(bin) = bin_dir() else {
            assert!(
                std::env::var("TESSERA_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "{test}: PostgreSQL's programs (initdb, pg_ctl) were not found"
            );
            eprintln!("SKIPPED {test}: PostgreSQL's programs (initdb, pg_ctl) were not found");
            return None;
        };
        let dir = tempfile::Builder::new().prefix("tessera-pg-").tempdir().expect("temp dir");
        let data = dir.path().join("data");
        if is_root() {
            run(Command::new("chown").arg("-R").arg("postgres").arg(dir.path()));
        }
        run(as_postgres(&bin.join("initdb"))
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "-D"])
            .arg(&data));
        let port = free_port();
        let server = Self { bin, data, port, _dir: dir };
        server.pg_ctl("start");
        Some(server)
    }

    /// URL of the server's `postgres` database.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast shutdown: sessions are disconnected).
    pub fn stop(&self) {
        run(as_postgres(&self.bin.join("pg_ctl")).args(["-w", "-m", "fast", "stop", "-D"]).arg(&self.data));
    }

    /// Starts it again on the same port with the same data.
    pub fn start_again(&self) {
        self.pg_ctl("start");
    }

    fn pg_ctl(&self, action: &str) {
        let socket_dir = self.data.parent().expect("data dir has a parent");
        let opts = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=200",
            self.port,
            socket_dir.display()
        );
        run(as_postgres(&self.bin.join("pg_ctl"))
            .args(["-w", "-t", "60", "-l"])
            .arg(socket_dir.join("server.log"))
            .args(["-o", &opts, action, "-D"])
            .arg(&self.data));
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "PostgreSQL did not start listening on port {}", self.port);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for PrivateServer {
    fn drop(&mut self) {
        let _ = as_postgres(&self.bin.join("pg_ctl"))
            .args(["-w", "-m", "immediate", "stop", "-D"])
            .arg(&self.data)
            .output();
    }
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"))
}

fn as_postgres(program: &Path) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("running {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `TESSERA_TEST_PG_BIN`, else `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.
fn bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("TESSERA_TEST_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let candidates = std::fs::read_dir("/usr/lib/postgresql").ok().into_iter().flatten().filter_map(|e| {
        let path = e.ok()?.path().join("bin");
        let version: u32 = path.parent()?.file_name()?.to_str()?.parse().ok()?;
        Some((version, path))
    });
    if let Some((_, path)) = candidates.filter(|(_, p)| p.join("initdb").exists()).max() {
        return Some(path);
    }
    let out = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8(out.stdout).ok()?.trim());
    dir.join("initdb").exists().then_some(dir)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_database_replaces_only_the_path() {
        assert_eq!(with_database("postgres://u:p@h:5/postgres", "t1"), "postgres://u:p@h:5/t1");
        assert_eq!(with_database("postgres://h:5", "t1"), "postgres://h:5/t1");
        assert_eq!(with_database("postgres://h/x?sslmode=disable", "t1"), "postgres://h/t1?sslmode=disable");
    }
}
