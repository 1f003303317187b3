//! Reports: a text summary (table per operation, failures in detail), JSON, JUnit XML.

use std::fmt::Write;

use crate::runner::Report;

/// The human report.
pub fn text(r: &Report) -> String {
    let mut out = String::new();
    for op in &r.operations {
        let _ = writeln!(
            out,
            "{}{}",
            op.operation,
            op.operation_id.as_ref().map(|i| format!("  ({i})")).unwrap_or_default()
        );
        if let Some(note) = &op.note {
            let _ = writeln!(out, "  {note}");
        }
        for c in &op.cases {
            let mark = match c.outcome.as_str() {
                "pass" => "ok  ",
                "fail" => "FAIL",
                "skip" => "skip",
                _ => "??  ",
            };
            let _ = writeln!(out, "  {mark} {:<22} {}", c.case, c.reason);
            for w in &c.warnings {
                let _ = writeln!(out, "       warning: {w}");
            }
        }
    }
    let failures: Vec<_> = r
        .operations
        .iter()
        .flat_map(|o| o.cases.iter().map(move |c| (o, c)))
        .filter(|(_, c)| c.outcome == "fail")
        .collect();
    if !failures.is_empty() {
        let _ = writeln!(out, "\nFailures:");
        for (op, c) in failures {
            let _ = writeln!(out, "\n{} / {}", op.operation, c.case);
            let _ = writeln!(out, "  request:  {}", c.request);
            let expected = if c.expected.status.is_empty() {
                "not 401/403".to_owned()
            } else {
                c.expected.status.iter().map(u16::to_string).collect::<Vec<_>>().join(" or ")
                    + &c.expected.error.as_ref().map(|e| format!(" + Bearer error=\"{e}\"")).unwrap_or_default()
            };
            let _ = writeln!(out, "  expected: {expected}");
            if let Some(o) = &c.observed {
                let _ = writeln!(out, "  observed: {}", o.status);
                let _ = writeln!(
                    out,
                    "  WWW-Authenticate: {}",
                    if o.www_authenticate.is_empty() { "(none)".into() } else { o.www_authenticate.join(" | ") }
                );
                let excerpt: String = o.body_excerpt.chars().take(200).collect();
                let _ = writeln!(out, "  body:     {}", excerpt.replace('\n', " "));
            }
            let _ = writeln!(out, "  why:      {}", c.reason);
            if let Some(r) = &c.remedy {
                let _ = writeln!(out, "  remedy:   {r}");
            }
        }
    }
    let s = &r.summary;
    let _ = writeln!(
        out,
        "\n{} passed, {} failed, {} skipped, {} inconclusive, {} warnings",
        s.pass, s.fail, s.skip, s.inconclusive, s.warnings
    );
    out
}

fn xml(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .map(|c| match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            '"' => "&quot;".to_owned(),
            '\'' => "&apos;".to_owned(),
            c => c.to_string(),
        })
        .collect()
}

/// JUnit XML: one test suite per operation, one test case per case.
pub fn junit(r: &Report) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let s = &r.summary;
    let _ = writeln!(
        out,
        "<testsuites name=\"tessera authtest\" tests=\"{}\" failures=\"{}\" skipped=\"{}\">",
        s.pass + s.fail + s.skip + s.inconclusive,
        s.fail,
        s.skip + s.inconclusive
    );
    for op in &r.operations {
        let fails = op.cases.iter().filter(|c| c.outcome == "fail").count();
        let skips = op.cases.iter().filter(|c| c.outcome == "skip" || c.outcome == "inconclusive").count();
        let _ = writeln!(
            out,
            "  <testsuite name=\"{}\" tests=\"{}\" failures=\"{fails}\" skipped=\"{skips}\">",
            xml(&op.operation),
            op.cases.len()
        );
        for c in &op.cases {
            let _ = write!(out, "    <testcase classname=\"{}\" name=\"{}\"", xml(&op.operation), xml(&c.case));
            match c.outcome.as_str() {
                "pass" => out.push_str("/>\n"),
                "fail" => {
                    let detail =
                        format!("request: {}\nobserved: {:?}", c.request, c.observed.as_ref().map(|o| o.status));
                    let _ = writeln!(
                        out,
                        ">\n      <failure message=\"{}\">{}</failure>\n    </testcase>",
                        xml(&c.reason),
                        xml(&detail)
                    );
                }
                _ => {
                    let _ = writeln!(
                        out,
                        ">\n      <skipped message=\"{}\"/>\n    </testcase>",
                        xml(&format!("{}: {}", c.outcome, c.reason))
                    );
                }
            }
        }
        out.push_str("  </testsuite>\n");
    }
    out.push_str("</testsuites>\n");
    out
}
