//! `tessera scan` on real files, git history, the index and stdin; verification and revocation
//! of found Tessera tokens against a real server.

use std::process::{Command, Stdio};

use serde_json::Value;

use crate::harness::{Server, BIN};

fn scan(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    Command::new(BIN)
        .arg("scan")
        .args(args)
        .envs(env.iter().copied())
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn git(dir: &std::path::Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(["-c", "user.email=qa@example.com", "-c", "user.name=qa", "-c", "init.defaultBranch=main"])
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success();
    assert!(ok, "git {args:?}");
}

#[test]
fn files_baselines_sarif_history_staged_and_stdin() {
    let repo = tempfile::tempdir().unwrap();
    let d = repo.path();
    let token = tessera_core::TokenSecret::generate().expose().to_owned();
    std::fs::write(d.join("deploy.sh"), format!("#!/bin/sh\ncurl -H \"Authorization: Bearer {token}\" https://x\n"))
        .unwrap();
    std::fs::write(d.join(".env"), "STRIPE_KEY=sk_live_4eC39HqLyjWDarjtT1zdp7dc\nDB_PASSWORD=changeme\n").unwrap();
    std::fs::write(d.join(".gitignore"), "ignored.txt\n").unwrap();
    std::fs::write(d.join("ignored.txt"), "ghp_16C7e42F292c6912E7710c838347Ae178B4a\n").unwrap();
    std::fs::write(d.join("blob.bin"), b"\0\0sk_live_4eC39HqLyjWDarjtT1zdp7dc").unwrap();

    let out = scan(d, &["--format", "json"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let rules: Vec<&str> = report["findings"].as_array().unwrap().iter().map(|f| f["rule"].as_str().unwrap()).collect();
    assert_eq!(rules, ["stripe-key", "tessera-token"], "gitignored and binary files are skipped: {report}");
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(&token) && !text.contains("4eC39HqLyjWDarjtT1zdp7dc"), "never the full secret");

    let sarif = scan(d, &["--format", "sarif"], &[]);
    let sarif: Value = serde_json::from_slice(&sarif.stdout).unwrap();
    assert_eq!(sarif["version"], "2.1.0");
    let result = &sarif["runs"][0]["results"][0];
    assert!(result["locations"][0]["physicalLocation"]["region"]["startLine"].as_u64().unwrap() >= 1);
    assert!(sarif["runs"][0]["tool"]["driver"]["rules"].as_array().unwrap().len() == 2);

    // Accept today's findings; a new one still fails.
    let baseline = d.join("baseline.json");
    assert!(scan(d, &["--write-baseline", baseline.to_str().unwrap()], &[]).status.success());
    assert!(scan(d, &["--baseline", baseline.to_str().unwrap()], &[]).status.success());
    std::fs::write(d.join("new.yaml"), "slack: xoxb-123456789012-abcdefghijABCDEF\n").unwrap();
    let out = scan(d, &["--baseline", baseline.to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("slack-token"));
    std::fs::remove_file(d.join("new.yaml")).unwrap();

    // History: a secret committed then deleted is still found, with its commit.
    git(d, &["init", "-q"]);
    std::fs::write(d.join("old.cfg"), "api_key = \"9fQ2xL7vR4tZ8pN3mK6wB1cH5jD0sYa\"\n").unwrap();
    git(d, &["add", "old.cfg"]);
    git(d, &["commit", "-qm", "add config"]);
    std::fs::remove_file(d.join("old.cfg")).unwrap();
    git(d, &["add", "-A"]);
    git(d, &["commit", "-qm", "remove config"]);
    let out = scan(d, &["--git", "--format", "json"], &[]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let old = report["findings"].as_array().unwrap().iter().find(|f| f["path"] == "old.cfg").expect("found in history");
    assert_eq!(old["commit"].as_str().unwrap().len(), 40);

    // Staged: only what is in the index.
    std::fs::write(d.join("staged.txt"), format!("TOKEN={token}\n")).unwrap();
    git(d, &["add", "staged.txt"]);
    let out = scan(d, &["--staged", "--format", "json"], &[]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["findings"].as_array().unwrap().len(), 1, "{report}");

    // Stdin.
    let mut child = Command::new(BIN).args(["scan", "-"]).stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"key: AKIAIOSFODNN7Q2B3X4Z\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("aws-access-key-id"));
}

#[test]
fn verify_and_revoke_leaked_tessera_tokens() {
    let data = tempfile::tempdir().unwrap();
    let s = Server::start(data.path());
    s.ok(&["env", "create", "staging"]);
    s.ok(&["client", "create", "svc", "--scopes", "staging=a"]);
    let live = s.ok(&["token", "create", "--env", "staging", "--client", "svc"]).trim().to_owned();
    let dead = s.ok(&["token", "create", "--env", "staging", "--client", "svc"]).trim().to_owned();
    let dead_id = s.json(&["token", "inspect", &dead])["jti"].as_str().unwrap().to_owned();
    s.ok(&["token", "revoke", &dead_id]);
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join("ci.yml"), format!("env:\n  A: {live}\n  B: {dead}\n")).unwrap();
    let env = [("TESSERA_URL", s.url.as_str()), ("TESSERA_TOKEN", s.root.as_str())];
    let out = scan(repo.path(), &["--verify", "--format", "json"], &env);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let statuses: Vec<&str> =
        report["findings"].as_array().unwrap().iter().map(|f| f["status"].as_str().unwrap()).collect();
    assert_eq!(statuses, ["live", "inactive (revoked)"]);
    let out = scan(repo.path(), &["--revoke", "--format", "json"], &env);
    assert_eq!(out.status.code(), Some(1));
    let inspected = s.json_status(&["token", "inspect", &live]);
    assert_eq!(inspected["inactive_reason"], "revoked");
    let audit = s.ok(&["audit", "export"]);
    assert!(audit.contains("found leaked by tessera scan in ci.yml:2"), "the audit log says where it leaked");
}
