//! The README's worked example, and bad input, through the real binary.

use std::os::unix::fs::PermissionsExt;

use crate::harness::{assert_fails, Server, BIN};

#[test]
fn first_start_creates_the_root_token_once_with_private_files() {
    let dir = tempfile::tempdir().unwrap();
    let first = Server::start(dir.path());
    assert!(first.banner.iter().any(|l| l.contains("Root admin token")), "{:?}", first.banner);
    assert!(first.banner.iter().any(|l| l == &first.root), "the root token is printed once");
    for file in ["root-token", "master.key"] {
        let mode = std::fs::metadata(dir.path().join(file)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    drop(first);
    let second = Server::start(dir.path());
    assert!(second.banner.iter().all(|l| !l.contains("tsr_")), "not printed again: {:?}", second.banner);
    second.ok(&["env", "list"]);
}

#[test]
fn the_worked_example_runs_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.ok(&["env", "create", "staging", "--max-ttl", "24h", "--idle-ttl", "15m"]);
    let created = s.ok(&["client", "create", "checkout-tests", "--scopes", "staging=orders:read,orders:write"]);
    assert!(created.contains("tsc_"), "the client secret is shown once: {created}");

    // Piped: only the token on stdout.
    let token = s.ok(&[
        "token",
        "create",
        "--env",
        "staging",
        "--client",
        "checkout-tests",
        "--scope",
        "orders:read",
        "--ttl",
        "1h",
    ]);
    let token = token.strip_suffix('\n').unwrap();
    assert!(tessera_core::TokenSecret::parse(token).is_ok(), "{token:?}");

    let list = s.json(&["token", "list", "--env", "staging"]);
    let id = list[0]["id"].as_str().unwrap().to_owned();
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0]["state"], "active");

    let shown = s.ok(&["token", "show", &id]);
    assert!(shown.contains("state:") && shown.contains("active"), "{shown}");
    assert!(!shown.contains(&token[4..]), "show never prints the secret");

    let table = s.ok(&["token", "list"]);
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains(&id));

    let rotated = s.json(&["token", "rotate", &id, "--grace", "5m"]);
    let new_id = rotated["info"]["id"].as_str().unwrap().to_owned();
    assert_eq!(rotated["previous"]["superseded_by"], new_id.as_str());

    s.ok(&["token", "renew", &new_id, "--ttl", "2h"]);
    let revoked = s.ok(&["token", "revoke", &id, "--reason", "done"]);
    assert_eq!(revoked.trim(), format!("revoked {id}"));
    let again = s.ok(&["token", "revoke", &id]);
    assert!(again.contains("already revoked"), "{again}");
    let shown = s.json(&["token", "show", &id]);
    assert_eq!(shown["inactive_reason"], "revoked");

    let verify = s.ok(&["audit", "verify"]);
    assert!(verify.starts_with("audit log verified:"), "{verify}");
    let export = s.ok(&["audit", "export"]);
    let actions: Vec<String> = export
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["action"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        actions[5..],
        [
            "environment.create",
            "key.create",
            "key.create",
            "client.create",
            "token.create",
            "token.rotate",
            "token.renew",
            "token.revoke"
        ]
    );
    let list = s.ok(&["audit", "list", "--limit", "3"]);
    assert_eq!(list.lines().count(), 4, "{list}");
}

#[test]
fn bad_input_exits_2_with_one_line_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.ok(&["env", "create", "staging"]);
    s.ok(&["client", "create", "svc", "--scopes", "staging=a"]);
    let before = s.json(&["audit", "verify"])["head_seq"].clone();
    let cases: &[(&[&str], &str)] = &[
        (&["env", "create", "staging"], "already exists"),
        (&["env", "create", "qa", "--max-ttl", "10y"], "invalid duration \"10y\""),
        (&["env", "create", "qa", "--idle-ttl", "15"], "number without a unit"),
        (&["token", "create", "--env", "prod", "--client", "svc"], "environment \"prod\" not found"),
        (&["token", "create", "--env", "staging", "--client", "svc", "--scope", "b"], "scopes not allowed"),
        (&["token", "create", "--env", "staging", "--client", "svc", "--label", "novalue"], "expected KEY=VALUE"),
        (&["token", "show", "tok_missing"], "not found"),
        (&["client", "create", "x", "--scopes", "staging"], "expected ENV=SCOPE"),
        (&["token", "revoke"], "name a token id or a selector"),
    ];
    for (args, needle) in cases {
        assert_fails(&s.cli(args), 2, needle);
    }
    // A token revoke by selector without --yes must not have revoked anything.
    s.ok(&["token", "create", "--env", "staging", "--client", "svc"]);
    assert_fails(&s.cli(&["token", "revoke", "--env", "staging"]), 2, "1 tokens match; pass --yes");
    assert_eq!(s.json(&["token", "list", "--env", "staging", "--state", "active"]).as_array().unwrap().len(), 1);
    let after = s.json(&["audit", "verify"])["head_seq"].as_u64().unwrap();
    assert_eq!(after, before.as_u64().unwrap() + 1, "only the one token creation changed anything");
    let done = s.ok(&["token", "revoke", "--env", "staging", "--yes"]);
    assert_eq!(done.trim(), "revoked 1 tokens");

    // Usage errors from argument parsing exit 2 too.
    let out = s.cli(&["token", "create", "--env", "staging"]);
    assert_eq!(out.status.code(), Some(2));
    // Revoked and malformed credentials.
    let out = s.cli_as("tsr_notavalidtoken", &["env", "list"]);
    assert_fails(&out, 2, "token has 18 characters, expected 42");
}

#[test]
fn an_unreachable_server_is_a_connection_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let out = std::process::Command::new(BIN)
        .args(["env", "list"])
        .env("TESSERA_URL", format!("http://127.0.0.1:{port}"))
        .env("TESSERA_TOKEN", "tsr_x")
        .output()
        .unwrap();
    assert_fails(&out, 2, &format!("cannot reach Tessera at http://127.0.0.1:{port}"));
}

#[test]
fn sigterm_shuts_the_server_down_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Server::start(dir.path());
    let pid = s.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    let status = loop {
        if let Some(status) = s.child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "server still running 15s after SIGTERM");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}

#[test]
fn inspect_keys_and_client_commands() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.ok(&["env", "create", "staging"]);
    s.ok(&["client", "create", "svc", "--scopes", "staging=orders:read", "--token-format", "jwt", "--alg", "ES256"]);
    let jwt = s.ok(&["token", "create", "--env", "staging", "--client", "svc"]);
    let jwt = jwt.trim();
    assert_eq!(jwt.split('.').count(), 3, "a JWT client gets a JWT: {jwt}");

    let inspected = s.json(&["token", "inspect", jwt]);
    assert_eq!(inspected["active"], true);
    assert_eq!(inspected["env"], "staging");
    let id = inspected["jti"].as_str().unwrap().to_owned();
    // From stdin too.
    let out = std::process::Command::new(BIN)
        .args(["token", "inspect", "-"])
        .env("TESSERA_URL", &s.url)
        .env("TESSERA_TOKEN", &s.root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child.stdin.take().unwrap().write_all(format!("{jwt}\n").as_bytes())?;
            child.wait_with_output()
        })
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("active:"));

    s.ok(&["token", "revoke", &id]);
    let out = s.cli(&["token", "inspect", jwt]);
    assert_eq!(out.status.code(), Some(1), "an inactive token is a failed check");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("reason:") && text.contains("revoked"), "{text}");

    let keys = s.json(&["keys", "list", "--env", "staging"]);
    let es: Vec<&serde_json::Value> = keys.as_array().unwrap().iter().filter(|k| k["alg"] == "ES256").collect();
    assert_eq!(es.len(), 2, "current and next: {keys}");
    let next = es.iter().find(|k| k["state"] == "next").unwrap()["kid"].as_str().unwrap().to_owned();
    let rotated = s.ok(&["keys", "rotate", "--env", "staging", "--alg", "ES256"]);
    assert!(rotated.contains(&next), "the pre-published key now signs: {rotated}");
    let table = s.ok(&["keys", "list"]);
    assert!(table.contains("retired"), "{table}");

    s.ok(&["client", "disable", "svc"]);
    assert_fails(&s.cli(&["token", "create", "--env", "staging", "--client", "svc"]), 2, "client svc is disabled");
    s.ok(&["client", "enable", "svc"]);
    s.ok(&["token", "create", "--env", "staging", "--client", "svc"]);
    assert_fails(&s.cli(&["keys", "rotate", "--env", "nowhere"]), 2, "not found");
}

/// Runs `tessera ARGS…` with `input` on stdin.
fn with_stdin(s: &Server, args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let mut child = std::process::Command::new(BIN)
        .args(args)
        .env("TESSERA_URL", &s.url)
        .env("TESSERA_TOKEN", &s.root)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn vault_upstream_faults_drift_and_rewrap_commands() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path());
    s.ok(&["env", "create", "staging"]);
    s.ok(&["env", "create", "prod", "--protected"]);
    let hook = dir.path().join("hook.sh");
    std::fs::write(&hook, "#!/bin/sh\ncat >/dev/null\necho sk_test_rotated_value_2\n").unwrap();
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let hook = hook.display().to_string();

    let out = with_stdin(
        &s,
        &["secret", "set", "staging", "payments-key", "--hook", &hook, "--rotation-period", "30d"],
        "sk_test_first_value_1\n",
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("version 1 stored") && !stdout.contains("sk_test"), "{stdout}");
    assert_eq!(
        s.ok(&["secret", "reveal", "staging", "payments-key"]),
        "sk_test_first_value_1\n",
        "the trailing newline is not part of the value"
    );
    s.ok(&["secret", "rotate", "staging", "payments-key"]);
    assert_eq!(s.ok(&["secret", "reveal", "staging", "payments-key"]).trim(), "sk_test_rotated_value_2");
    let versions = s.json(&["secret", "versions", "staging", "payments-key"]);
    assert_eq!(versions.as_array().unwrap().len(), 2);
    let list = s.ok(&["secret", "list"]);
    assert!(list.contains("payments-key") && !list.contains("sk_test"), "{list}");
    assert_fails(&with_stdin(&s, &["secret", "set", "staging", "empty"], ""), 2, "no value");
    let file = dir.path().join("value.txt");
    std::fs::write(&file, "same-value-in-prod-and-staging").unwrap();
    for env in ["staging", "prod"] {
        s.ok(&["secret", "set", env, "shared", "--from-file", &file.display().to_string()]);
    }

    s.ok(&[
        "upstream",
        "create",
        "payments",
        "--env",
        "staging",
        "--url",
        "http://127.0.0.1:9",
        "--secret",
        "payments-key",
        "--allow-path",
        "/v1/",
    ]);
    let shown = s.json(&["upstream", "show", "payments", "--env", "staging"]);
    assert_eq!(shown["inject"], "header:Authorization=Bearer {secret}");
    assert!(shown["gateway_url"].as_str().unwrap().ends_with("/gw/payments"));
    assert!(s.ok(&["upstream", "list"]).contains("payments"));
    assert_fails(
        &s.cli(&["upstream", "create", "bad", "--env", "staging", "--url", "ftp://x", "--secret", "k"]),
        2,
        "http:// or https://",
    );

    let added = s.ok(&["gateway", "faults", "add", "--env", "staging", "--upstream", "payments", "--fail-after", "3"]);
    assert!(added.contains("fail_after"), "{added}");
    assert_eq!(s.json(&["gateway", "faults", "list"]).as_array().unwrap().len(), 1);
    assert_fails(
        &s.cli(&["gateway", "faults", "add", "--env", "prod", "--upstream", "x", "--latency", "1s"]),
        2,
        "protected",
    );
    assert!(s.ok(&["gateway", "faults", "clear", "--env", "staging"]).contains("cleared 1"));

    let out = s.cli(&["drift"]);
    assert_eq!(out.status.code(), Some(1), "shared value across protection and missing keys are problems");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("SAME VALUE") && text.contains("MISSING"), "{text}");
    let report = s.json_status(&["drift"]);
    assert!(report["problems"].as_u64().unwrap() >= 2);

    let rewrapped = s.ok(&["keys", "rewrap"]);
    assert!(rewrapped.contains("re-sealed"), "{rewrapped}");
    assert_eq!(s.ok(&["secret", "reveal", "staging", "payments-key"]).trim(), "sk_test_rotated_value_2");
}
