//! Recall and precision on a generated labelled corpus: every planted secret of every rule is
//! found (recall 100%), and the decoys produce no finding at all.

#[path = "../../examples/corpus/gen.rs"]
#[allow(dead_code)] // reason: the generator's helpers serve the benchmark too
mod gen;

use std::collections::BTreeSet;

use tessera_scan::{walk, RuleSet, Scanner};

#[test]
fn every_planted_secret_is_found_and_no_decoy_is() {
    let dir = tempfile::tempdir().unwrap();
    let expected = gen::write(dir.path(), 1000, 40, 10, 7).unwrap();
    let scanner = Scanner::new(RuleSet::built_in());
    let (findings, stats) = walk::scan_paths(&scanner, &[dir.path().to_owned()]);
    assert_eq!(stats.files, 1000);
    let prefix = format!("{}/", dir.path().display());
    let found: BTreeSet<(String, String)> =
        findings.iter().map(|f| (f.path.trim_start_matches(&prefix).to_owned(), f.rule.clone())).collect();
    let wanted: BTreeSet<(String, String)> = expected.iter().map(|(p, r)| (p.clone(), r.to_string())).collect();
    let rules: BTreeSet<&str> = expected.iter().map(|(_, r)| *r).collect();
    for rule in &rules {
        let missed: Vec<_> = wanted.iter().filter(|(_, r)| r == rule).filter(|w| !found.contains(*w)).collect();
        assert!(missed.is_empty(), "rule {rule}: recall below 100%: missed {missed:?}");
    }
    let extra: Vec<_> = found.difference(&wanted).collect();
    assert!(extra.is_empty(), "findings on decoys or filler: {extra:?}");
    assert_eq!(rules.len(), 17, "every built-in rule has planted secrets");
}
