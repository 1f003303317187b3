//! Reports: text (grouped by file), JSON, SARIF 2.1.0; baselines of known findings.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde_json::{json, Value};

use crate::rules::RuleSet;
use crate::scanner::Finding;

/// Text, grouped by file; `color` for a terminal.
pub fn text(findings: &[Finding], color: bool) -> String {
    let (bold, red, dim, reset) = if color { ("\x1b[1m", "\x1b[31m", "\x1b[2m", "\x1b[0m") } else { ("", "", "", "") };
    let mut by_file: BTreeMap<&str, Vec<&Finding>> = BTreeMap::new();
    for f in findings {
        by_file.entry(&f.path).or_default().push(f);
    }
    let mut out = String::new();
    for (path, list) in by_file {
        let _ = writeln!(out, "{bold}{path}{reset}");
        for f in list {
            let status = f.status.as_ref().map(|s| format!(" [{s}]")).unwrap_or_default();
            let commit = f.commit.as_ref().map(|c| format!(" @{}", &c[..c.len().min(10)])).unwrap_or_default();
            let _ = writeln!(out, "  {}:{}{commit}  {red}{}{reset} ({}){status}", f.line, f.column, f.rule, f.severity);
            let _ = writeln!(out, "    {dim}{}{reset}", f.excerpt);
        }
    }
    let _ = writeln!(out, "{} finding(s)", findings.len());
    out
}

/// SARIF 2.1.0 (accepted by code-scanning UIs).
pub fn sarif(findings: &[Finding], rules: &RuleSet) -> Value {
    let used: BTreeSet<&str> = findings.iter().map(|f| f.rule.as_str()).collect();
    let rule_list: Vec<&crate::rules::Rule> = rules.rules.iter().filter(|r| used.contains(r.id.as_str())).collect();
    let index = |id: &str| rule_list.iter().position(|r| r.id == id).unwrap_or(0);
    let level = |s: &str| match s {
        "high" => "error",
        "medium" => "warning",
        _ => "note",
    };
    json!({
        "$schema": "https://json.schemastore.org/sarif-2.1.0.json",
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {
                "name": "tessera-scan",
                "version": env!("CARGO_PKG_VERSION"),
                "informationUri": "https://github.com/tessera/tessera",
                "rules": rule_list.iter().map(|r| json!({
                    "id": r.id,
                    "name": r.id.replace('-', "_"),
                    "shortDescription": {"text": r.description},
                    "defaultConfiguration": {"level": level(&r.severity)},
                })).collect::<Vec<_>>(),
            }},
            "results": findings.iter().map(|f| {
                let mut r = json!({
                    "ruleId": f.rule,
                    "ruleIndex": index(&f.rule),
                    "level": level(&f.severity),
                    "message": {"text": format!("{} found: {}", f.description, f.excerpt)},
                    "locations": [{"physicalLocation": {
                        "artifactLocation": {"uri": f.path},
                        "region": {"startLine": f.line, "startColumn": f.column},
                    }}],
                    "partialFingerprints": {"tesseraFingerprint/v1": f.fingerprint},
                });
                if let Some(c) = &f.commit {
                    r["properties"] = json!({"commit": c});
                }
                r
            }).collect::<Vec<_>>(),
        }],
    })
}

/// A baseline: the fingerprints of accepted findings.
pub fn baseline(findings: &[Finding]) -> Value {
    let fps: BTreeSet<&str> = findings.iter().map(|f| f.fingerprint.as_str()).collect();
    json!({"version": 1, "fingerprints": fps})
}

/// Drops the findings a baseline lists.
pub fn apply_baseline(findings: Vec<Finding>, baseline: &Value) -> Result<Vec<Finding>, String> {
    let known: BTreeSet<&str> = baseline["fingerprints"]
        .as_array()
        .ok_or("a baseline is {\"version\": 1, \"fingerprints\": [...]}")?
        .iter()
        .filter_map(Value::as_str)
        .collect();
    Ok(findings.into_iter().filter(|f| !known.contains(f.fingerprint.as_str())).collect())
}
