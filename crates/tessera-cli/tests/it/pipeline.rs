//! tessera.toml, plan/apply, preflight and run, through the real binary against a real server.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::harness::{assert_fails, Server, BIN};

const TOML: &str = r#"
[environments.staging]
default_ttl = "1h"
max_ttl = "24h"

[clients.checkout-tests]
scopes = { staging = ["orders:read", "orders:write"] }

[clients.jwt-tests]
scopes = { staging = ["orders:read"] }
token_format = "jwt"

[needs.ORDERS_API_TOKEN]
client = "checkout-tests"
scopes = ["orders:read"]
min_remaining = "30m"

[needs.ORDERS_JWT]
client = "jwt-tests"
format = "jwt"
"#;

fn write_config(dir: &std::path::Path, text: &str) {
    std::fs::write(dir.join("tessera.toml"), text).unwrap();
}

/// `tessera ARGS…` in `dir` (where tessera.toml is) against `s`.
fn in_dir(s: &Server, dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env("TESSERA_URL", &s.url)
        .env("TESSERA_TOKEN", &s.root)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// A loopback HTTP server that records the Authorization header of every request.
fn recording_api() -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen: Arc<Mutex<Vec<String>>> = Arc::default();
    let record = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(100) {
            let Ok(mut stream) = stream else { break };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("authorization: bearer ") {
                    let _ = v;
                    record.lock().unwrap().push(line["authorization: bearer ".len()..].trim().to_owned());
                }
                line.clear();
            }
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
        }
    });
    (url, seen)
}

#[test]
fn apply_is_idempotent_and_plan_reports_drift() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let work = tempfile::tempdir().unwrap();
    write_config(work.path(), TOML);
    let out = in_dir(&s, work.path(), &["plan", "--detailed-exitcode"]);
    assert_eq!(out.status.code(), Some(1), "changes pending");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("+ environment staging") && text.contains("+ client checkout-tests"), "{text}");
    let out = in_dir(&s, work.path(), &["apply"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied 3 change(s)"));
    let out = in_dir(&s, work.path(), &["apply"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("applied 0 change(s)"), "apply is idempotent");
    assert_eq!(in_dir(&s, work.path(), &["plan", "--detailed-exitcode"]).status.code(), Some(0));
    // Edit the file: plan shows the update, apply makes it, audited.
    write_config(
        work.path(),
        &TOML
            .replace("max_ttl = \"24h\"", "max_ttl = \"12h\"")
            .replace("\"orders:write\"]", "\"orders:write\", \"orders:admin\"]"),
    );
    let out = in_dir(&s, work.path(), &["plan", "-o", "json"]);
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let actions: Vec<(String, String)> = plan["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["action"].as_str().unwrap().to_owned(), c["name"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        actions,
        [("update".to_owned(), "staging".to_owned()), ("update".to_owned(), "checkout-tests".to_owned())]
    );
    assert!(in_dir(&s, work.path(), &["apply"]).status.success());
    assert_eq!(s.json(&["env", "show", "staging"])["max_ttl"], "12h");
    let audit = s.ok(&["audit", "export"]);
    assert!(audit.contains("environment.update") && audit.contains("client.update"));
}

#[test]
fn config_errors_point_at_the_line_and_preflight_checks_every_need() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let work = tempfile::tempdir().unwrap();
    write_config(work.path(), &TOML.replace("client = \"jwt-tests\"", "client = \"jwt-test\""));
    let out = in_dir(&s, work.path(), &["plan"]);
    assert_fails(&out, 2, "tessera.toml:19:10: need ORDERS_JWT names client \"jwt-test\", which is not declared; did you mean \"jwt-tests\"?");
    assert!(String::from_utf8_lossy(&out.stderr).contains("^^^^^^^^^^"), "a caret under the value");

    write_config(work.path(), &format!("{TOML}\n[needs.LEGACY_KEY]\nsecret = \"legacy-key\"\n"));
    assert!(in_dir(&s, work.path(), &["apply"]).status.success());
    let out = in_dir(&s, work.path(), &["preflight", "--env", "staging", "-o", "json"]);
    assert_eq!(out.status.code(), Some(1), "the secret is missing");
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let status = |need: &str| {
        checks.as_array().unwrap().iter().find(|c| c["need"] == need).unwrap()["status"].as_str().unwrap().to_owned()
    };
    assert_eq!(status("LEGACY_KEY"), "fail");
    assert_eq!(status("ORDERS_API_TOKEN"), "pass");
    let mut child = Command::new(BIN)
        .args(["secret", "set", "staging", "legacy-key"])
        .env("TESSERA_URL", &s.url)
        .env("TESSERA_TOKEN", &s.root)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"legacy-value-123").unwrap();
    assert!(child.wait().unwrap().success());
    let out = in_dir(&s, work.path(), &["preflight", "--env", "staging"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    // A need whose lifetime cannot reach min_remaining, and one whose scopes exceed the client's.
    write_config(work.path(), &TOML.replace("min_remaining = \"30m\"", "min_remaining = \"48h\""));
    let out = in_dir(&s, work.path(), &["preflight", "--env", "staging"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("< min_remaining 2d"));
    write_config(
        work.path(),
        &TOML.replace("scopes = [\"orders:read\"]", "scopes = [\"orders:read\", \"orders:delete\"]"),
    );
    let out = in_dir(&s, work.path(), &["preflight", "--env", "staging"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("orders:delete"));
}

#[test]
fn run_injects_masks_and_revokes_and_a_long_run_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let work = tempfile::tempdir().unwrap();
    let (api, seen) = recording_api();
    let toml = TOML
        .replace("min_remaining = \"30m\"", "ttl = \"4s\"")
        .replace("client = \"jwt-tests\"\nformat = \"jwt\"", "client = \"jwt-tests\"\nformat = \"jwt\"\nttl = \"4s\"");
    write_config(work.path(), &toml);
    assert!(in_dir(&s, work.path(), &["apply"]).status.success());
    let script = format!(
        r#"echo "token=$ORDERS_API_TOKEN"
printf '%s' "$ORDERS_API_TOKEN" | base64
test -f "$ORDERS_JWT_FILE" || exit 3
python3 -c 'import os,urllib.request; urllib.request.urlopen(urllib.request.Request("{api}/v1/orders", headers={{"Authorization": "Bearer " + os.environ["ORDERS_API_TOKEN"]}})).read()'
sleep 7
tessera_bin="$1"
"$tessera_bin" token inspect "$ORDERS_API_TOKEN" >/dev/null || exit 4
curl_out=$(python3 -c 'import os,urllib.request; print(urllib.request.urlopen(os.environ["TESSERA_RUN_URL"] + "/tokens/ORDERS_JWT").read().decode())')
test "$curl_out" = "$(cat "$ORDERS_JWT_FILE")" || exit 5
"$tessera_bin" token inspect "$curl_out" >/dev/null || exit 6
echo done
"#
    );
    let out = in_dir(
        &s,
        work.path(),
        &[
            "run",
            "--env",
            "staging",
            "--label",
            "smoke",
            "--heartbeat-timeout",
            "3s",
            "--",
            "sh",
            "-c",
            &script,
            "sh",
            BIN,
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("done"), "{stdout}");
    let tokens = seen.lock().unwrap().clone();
    assert_eq!(tokens.len(), 1, "the API got exactly one call");
    let token = &tokens[0];
    assert!(tessera_core::TokenSecret::parse(token).is_ok());
    assert!(!stdout.contains(token.as_str()) && !stderr.contains(token.as_str()), "the token leaked into the output");
    assert!(stdout.contains(&format!("token={}", "*".repeat(token.len()))), "{stdout}");
    assert!(stderr.contains("JWT refreshes"), "{stderr}");
    assert!(!stderr.contains("(0 JWT refreshes)"), "the 4s JWT was refreshed during the 7s run: {stderr}");
    // Every token the run minted is inactive now.
    let runs = s.json(&["runs", "list", "--label", "smoke"]);
    let run = &runs[0];
    assert_eq!(run["status"], "finished");
    assert_eq!(run["exit_code"], 0);
    assert!(run["duration_s"].as_f64().unwrap() >= 7.0);
    let minted = s.json(&["token", "list", "--run", run["id"].as_str().unwrap()]);
    assert!(minted.as_array().unwrap().len() >= 3);
    assert!(minted.as_array().unwrap().iter().all(|t| t["state"] == "inactive"), "{minted}");
    let out = s.cli(&["token", "inspect", token]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn exit_codes_missing_commands_and_an_unreachable_server() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let work = tempfile::tempdir().unwrap();
    write_config(work.path(), TOML);
    assert!(in_dir(&s, work.path(), &["apply"]).status.success());
    let out = in_dir(&s, work.path(), &["run", "--env", "staging", "--", "sh", "-c", "exit 7"]);
    assert_eq!(out.status.code(), Some(7), "run exits with the command's code");
    let out = in_dir(&s, work.path(), &["run", "--env", "staging", "--", "/no/such/command"]);
    assert_fails(&out, 2, "cannot start \"/no/such/command\"");
    let runs = s.json(&["runs", "list"]);
    assert!(runs.as_array().unwrap().iter().all(|r| r["status"] == "finished"), "{runs}");
    let live = s.json(&["token", "list", "--env", "staging", "--state", "active"]);
    assert!(live.as_array().unwrap().is_empty(), "no run left a token behind: {live}");
    // Server unreachable: exit 2, the command never starts.
    let marker = work.path().join("started");
    let out = Command::new(BIN)
        .args(["run", "--env", "staging", "--", "touch", marker.to_str().unwrap()])
        .env("TESSERA_URL", "http://127.0.0.1:9")
        .env("TESSERA_TOKEN", &s.root)
        .current_dir(work.path())
        .output()
        .unwrap();
    assert_fails(&out, 2, "cannot reach Tessera");
    assert!(!marker.exists(), "the command started although the server was down");
}

#[test]
fn signals_are_forwarded_and_a_killed_runner_is_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let work = tempfile::tempdir().unwrap();
    write_config(work.path(), TOML);
    assert!(in_dir(&s, work.path(), &["apply"]).status.success());
    let spawn = |script: &str| {
        Command::new(BIN)
            .args(["run", "--env", "staging", "--heartbeat-timeout", "3s", "--", "sh", "-c", script])
            .env("TESSERA_URL", &s.url)
            .env("TESSERA_TOKEN", &s.root)
            .current_dir(work.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let wait_ready = |child: &mut std::process::Child| {
        let mut out = child.stdout.take().unwrap();
        let mut buf = [0u8; 6];
        out.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"ready\n");
        out
    };
    // SIGTERM to `tessera run` reaches the command, which exits 42.
    let mut child = spawn("trap 'echo got-term; exit 42' TERM; echo ready; while true; do sleep 0.1; done");
    let mut out = wait_ready(&mut child);
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    assert_eq!(status.code(), Some(42), "{rest}");
    assert!(rest.contains("got-term"));

    // SIGKILL to `tessera run`: the server reaps the run within the heartbeat timeout plus
    // one reaper period.
    let mut child = spawn("echo ready; sleep 60");
    let _out = wait_ready(&mut child);
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_at = Instant::now();
    let deadline = killed_at + Duration::from_secs(20);
    loop {
        let runs = s.json(&["runs", "list"]);
        let reaped = runs.as_array().unwrap().iter().find(|r| r["status"] == "reaped");
        if let Some(r) = reaped {
            let tokens = s.json(&["token", "list", "--run", r["id"].as_str().unwrap()]);
            assert!(tokens.as_array().unwrap().iter().all(|t| t["inactive_reason"] == "revoked"), "{tokens}");
            break;
        }
        assert!(Instant::now() < deadline, "not reaped 20s after SIGKILL");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(killed_at.elapsed() < Duration::from_secs(10), "reaped in {:?}", killed_at.elapsed());
}

#[test]
fn gateway_and_secret_needs_and_the_env_file() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    let work = tempfile::tempdir().unwrap();
    let toml = format!(
        "{TOML}\n[clients.gw-tests]\nscopes = {{ staging = [\"gw:payments\"] }}\n\n[upstreams.payments]\nenv = \"staging\"\nurl = \"http://127.0.0.1:9\"\nsecret = \"payments-key\"\n\n[needs.PAYMENTS]\nupstream = \"payments\"\n\n[needs.LEGACY_KEY]\nsecret = \"legacy-key\"\n"
    );
    write_config(work.path(), &toml);
    assert!(in_dir(&s, work.path(), &["apply"]).status.success());
    for (name, value) in [("payments-key", "sk_test_payments_value_1"), ("legacy-key", "legacy-value-123456")] {
        let mut child = Command::new(BIN)
            .args(["secret", "set", "staging", name])
            .env("TESSERA_URL", &s.url)
            .env("TESSERA_TOKEN", &s.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(value.as_bytes()).unwrap();
        assert!(child.wait().unwrap().success());
    }
    let script = r#"set -e
test -n "$PAYMENTS_TOKEN"
case "$PAYMENTS_URL" in */gw/payments) ;; *) exit 3 ;; esac
test "$LEGACY_KEY" = "legacy-value-123456" || exit 4
test "$(stat -c %a "$TESSERA_ENV_FILE")" = 600 || exit 5
grep -q "^LEGACY_KEY=" "$TESSERA_ENV_FILE" || exit 6
echo "$TESSERA_ENV_FILE" > env-file-path
echo "key=$LEGACY_KEY"
"#;
    let out = in_dir(&s, work.path(), &["run", "--env", "staging", "--env-file", "--", "sh", "-c", script]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(!stdout.contains("legacy-value-123456"), "secret values are masked too: {stdout}");
    let env_file = std::fs::read_to_string(work.path().join("env-file-path")).unwrap();
    assert!(!std::path::Path::new(env_file.trim()).exists(), "the env file is removed after the run");
    // --no-mask opts out.
    let out =
        in_dir(&s, work.path(), &["run", "--env", "staging", "--no-mask", "--", "sh", "-c", "echo key=$LEGACY_KEY"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("key=legacy-value-123456"));
}
