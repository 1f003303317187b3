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

#[test]
fn sarif_output_validates_against_the_sarif_2_1_0_schema() {
    let dir = tempfile::tempdir().unwrap();
    gen::write(dir.path(), 20, 20, 5, 3).unwrap();
    let rules = RuleSet::built_in();
    let (findings, _) = walk::scan_paths(&Scanner::new(rules.clone()), &[dir.path().to_owned()]);
    assert!(!findings.is_empty());
    let sarif = tessera_scan::report::sarif(&findings, &rules);
    let schema: serde_json::Value =
        serde_json::from_str(include_str!("../testdata/sarif-2.1.0-rtm.5.json")).expect("the vendored schema parses");
    let validator = jsonschema::validator_for(&schema).expect("the schema compiles");
    let errors: Vec<String> =
        validator.iter_errors(&sarif).map(|e| format!("{} at {}", e, e.instance_path())).collect();
    assert!(errors.is_empty(), "SARIF does not validate: {errors:#?}");
    // And a broken document is caught, so the check is real.
    let mut broken = sarif.clone();
    broken["runs"][0]["results"][0]["level"] = serde_json::json!("catastrophic");
    assert!(!validator.is_valid(&broken));
}
