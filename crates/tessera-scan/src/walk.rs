//! Walking files in parallel, honouring `.gitignore`/`.ignore`, skipping binaries and huge
//! files; and reading git history and the staging area with `git` itself.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use ignore::{WalkBuilder, WalkState};

use crate::scanner::{Finding, Scanner};

/// Files larger than this are skipped.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// Counts of what a walk read.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Stats {
    pub files: usize,
    pub bytes: u64,
    pub skipped: usize,
}

fn is_binary(bytes: &[u8]) -> bool {
    bytes[..bytes.len().min(8192)].contains(&0)
}

/// Scans every file under `roots` in parallel.
pub fn scan_paths(scanner: &Scanner, roots: &[PathBuf]) -> (Vec<Finding>, Stats) {
    let findings = Mutex::new(Vec::new());
    let stats = Mutex::new(Stats::default());
    let mut builder = WalkBuilder::new(&roots[0]);
    for r in &roots[1..] {
        builder.add(r);
    }
    builder.hidden(false).git_ignore(true).git_exclude(true).ignore(true).require_git(false);
    builder.filter_entry(|e| e.file_name() != ".git");
    builder.build_parallel().run(|| {
        Box::new(|entry| {
            let Ok(entry) = entry else { return WalkState::Continue };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                return WalkState::Continue;
            }
            let path = entry.path();
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            if size > MAX_FILE_BYTES {
                stats.lock().expect("stats").skipped += 1;
                return WalkState::Continue;
            }
            let Ok(bytes) = std::fs::read(path) else { return WalkState::Continue };
            if is_binary(&bytes) {
                stats.lock().expect("stats").skipped += 1;
                return WalkState::Continue;
            }
            let text = String::from_utf8_lossy(&bytes);
            let found = scanner.scan(&text, &display(path), None);
            {
                let mut s = stats.lock().expect("stats");
                s.files += 1;
                s.bytes += bytes.len() as u64;
            }
            if !found.is_empty() {
                findings.lock().expect("findings").extend(found);
            }
            WalkState::Continue
        })
    });
    let mut findings = findings.into_inner().expect("findings");
    findings.sort_by(|a, b| (&a.path, a.line, a.column).cmp(&(&b.path, b.line, b.column)));
    (findings, stats.into_inner().expect("stats"))
}

fn display(p: &Path) -> String {
    p.strip_prefix("./").unwrap_or(p).display().to_string()
}

fn git(repo: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git").arg("-C").arg(repo).args(args).output().map_err(|e| format!("running git: {e}"))?;
    if !out.status.success() {
        return Err(format!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(out.stdout)
}

/// Scans every blob reachable from any ref, each blob once, reporting the first commit (in
/// `git rev-list --all` order) and path where it appears.
pub fn scan_history(scanner: &Scanner, repo: &Path) -> Result<(Vec<Finding>, Stats), String> {
    let listing = String::from_utf8_lossy(&git(repo, &["rev-list", "--all", "--objects", "--reverse"])?).into_owned();
    let mut seen = std::collections::HashSet::new();
    let mut blobs: Vec<(String, String)> = Vec::new();
    for line in listing.lines() {
        let Some((oid, path)) = line.split_once(' ') else { continue };
        if seen.insert(oid.to_owned()) {
            blobs.push((oid.to_owned(), path.to_owned()));
        }
    }
    let commits =
        String::from_utf8_lossy(&git(repo, &["log", "--all", "--reverse", "--format=%H", "--raw", "--no-abbrev"])?)
            .into_owned();
    let mut first_commit: std::collections::HashMap<String, String> = std::collections::HashMap::new();
    let mut current = String::new();
    for line in commits.lines() {
        if line.len() == 40 && line.bytes().all(|b| b.is_ascii_hexdigit()) {
            current = line.to_owned();
        } else if let Some(rest) = line.strip_prefix(':') {
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.len() >= 4 {
                first_commit.entry(fields[3].to_owned()).or_insert_with(|| current.clone());
            }
        }
    }
    let mut findings = Vec::new();
    let mut stats = Stats::default();
    for (oid, path) in blobs {
        let kind = String::from_utf8_lossy(&git(repo, &["cat-file", "-t", &oid])?).trim().to_owned();
        if kind != "blob" {
            continue;
        }
        let bytes = git(repo, &["cat-file", "blob", &oid])?;
        if is_binary(&bytes) || bytes.len() as u64 > MAX_FILE_BYTES {
            stats.skipped += 1;
            continue;
        }
        stats.files += 1;
        stats.bytes += bytes.len() as u64;
        let commit = first_commit.get(&oid).map(String::as_str);
        findings.extend(scanner.scan(&String::from_utf8_lossy(&bytes), &path, commit));
    }
    Ok((findings, stats))
}

/// Scans what is staged (the index), for a pre-commit hook.
pub fn scan_staged(scanner: &Scanner, repo: &Path) -> Result<(Vec<Finding>, Stats), String> {
    let names = String::from_utf8_lossy(&git(repo, &["diff", "--cached", "--name-only", "--diff-filter=ACMR", "-z"])?)
        .into_owned();
    let mut findings = Vec::new();
    let mut stats = Stats::default();
    for path in names.split('\0').filter(|p| !p.is_empty()) {
        let bytes = git(repo, &["show", &format!(":{path}")])?;
        if is_binary(&bytes) {
            stats.skipped += 1;
            continue;
        }
        stats.files += 1;
        stats.bytes += bytes.len() as u64;
        findings.extend(scanner.scan(&String::from_utf8_lossy(&bytes), path, None));
    }
    Ok((findings, stats))
}
