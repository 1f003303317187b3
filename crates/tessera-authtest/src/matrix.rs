//! The auth-fault matrix: every way a token can be wrong, what a correct API answers to each,
//! and the verdict on an observed answer.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Every case, in the order they run and are reported.
pub const CASES: [&str; 19] = [
    "valid",
    "missing",
    "malformed_header",
    "wrong_scheme",
    "garbage",
    "expired",
    "not_yet_valid",
    "revoked",
    "wrong_audience",
    "wrong_environment",
    "insufficient_scope",
    "tampered_signature",
    "alg_none",
    "unknown_key",
    "rotated_after_grace",
    "rotated_within_grace",
    "idle_expired",
    "exhausted",
    "token_in_query",
];

/// Cases a resource server that validates JWTs locally cannot get right; their report carries
/// the remedy.
pub const NEEDS_INTROSPECTION: [&str; 4] = ["revoked", "idle_expired", "exhausted", "rotated_after_grace"];

/// What a case expects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expectation {
    /// Accepted statuses; empty means "anything but 401 and 403" (the valid case).
    #[serde(default)]
    pub status: Vec<u16>,
    /// The `error` attribute the Bearer challenge must carry (`None`: no requirement).
    #[serde(default)]
    pub error: Option<String>,
    /// Whether a `WWW-Authenticate: Bearer` challenge is required.
    #[serde(default = "yes")]
    pub challenge: bool,
}

fn yes() -> bool {
    true
}

/// The default expectation of `case` (DESIGN.md: 401 + Bearer challenge; 403 + insufficient_scope).
pub fn default_expectation(case: &str) -> Expectation {
    match case {
        "valid" | "rotated_within_grace" => Expectation { status: vec![], error: None, challenge: false },
        "missing" => Expectation { status: vec![401], error: None, challenge: true },
        "insufficient_scope" => {
            Expectation { status: vec![403], error: Some("insufficient_scope".into()), challenge: true }
        }
        // A malformed request may be answered invalid_request (RFC 6750 §3.1) or invalid_token.
        "malformed_header" | "wrong_scheme" | "token_in_query" => {
            Expectation { status: vec![401, 400], error: None, challenge: true }
        }
        _ => Expectation { status: vec![401], error: Some("invalid_token".into()), challenge: true },
    }
}

/// Per-case and per-operation overrides, from a small TOML file:
///
/// ```toml
/// [cases.missing]
/// status = [404]          # this API hides resources from anonymous callers
///
/// [operations."GET /orders/{id}".cases.insufficient_scope]
/// status = [404]
/// challenge = false
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    #[serde(default)]
    pub cases: BTreeMap<String, Expectation>,
    #[serde(default)]
    pub operations: BTreeMap<String, OperationOverrides>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationOverrides {
    #[serde(default)]
    pub cases: BTreeMap<String, Expectation>,
}

impl Overrides {
    /// The expectation of `case` for `operation` ("GET /orders/{id}").
    pub fn expectation(&self, operation: &str, case: &str) -> Expectation {
        self.operations
            .get(operation)
            .and_then(|o| o.cases.get(case))
            .or_else(|| self.cases.get(case))
            .cloned()
            .unwrap_or_else(|| default_expectation(case))
    }

    /// Parses and checks an overrides file.
    pub fn from_toml(text: &str) -> Result<Overrides, String> {
        let o: Overrides = toml::from_str(text).map_err(|e| e.to_string())?;
        o.check()?;
        Ok(o)
    }

    /// Refuses case names that do not exist (a typo would silently test nothing).
    pub fn check(&self) -> Result<(), String> {
        let names = self.cases.keys().chain(self.operations.values().flat_map(|o| o.cases.keys()));
        for name in names {
            if !CASES.contains(&name.as_str()) {
                return Err(format!("unknown case {name:?} in overrides (cases: {})", CASES.join(", ")));
            }
        }
        Ok(())
    }
}

/// One challenge of a `WWW-Authenticate` header: scheme and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

/// Parses `WWW-Authenticate` values (RFC 9110 §11.6.1), which may list several challenges:
/// `Basic realm="a", Bearer realm="b", error="invalid_token"`.
pub fn parse_challenges(values: &[String]) -> Vec<Challenge> {
    let mut out: Vec<Challenge> = Vec::new();
    for value in values {
        let mut rest = value.trim();
        while !rest.is_empty() {
            rest = rest.trim_start_matches([',', ' ']);
            // A token followed by `=` is a parameter of the current challenge; otherwise a scheme.
            let end = rest.find([' ', ',', '=']).unwrap_or(rest.len());
            let token = &rest[..end];
            if token.is_empty() {
                break;
            }
            let after = rest[end..].trim_start();
            if after.starts_with('=') && !out.is_empty() {
                let after = after[1..].trim_start();
                let (val, remaining) = if let Some(quoted) = after.strip_prefix('"') {
                    let mut val = String::new();
                    let mut chars = quoted.char_indices();
                    let mut consumed = quoted.len();
                    while let Some((i, c)) = chars.next() {
                        match c {
                            '\\' => {
                                if let Some((_, n)) = chars.next() {
                                    val.push(n);
                                }
                            }
                            '"' => {
                                consumed = i + 1;
                                break;
                            }
                            c => val.push(c),
                        }
                    }
                    (val, &quoted[consumed.min(quoted.len())..])
                } else {
                    let e = after.find([',', ' ']).unwrap_or(after.len());
                    (after[..e].to_owned(), &after[e..])
                };
                out.last_mut().expect("checked").params.insert(token.to_ascii_lowercase(), val);
                rest = remaining;
            } else {
                out.push(Challenge { scheme: token.to_owned(), params: BTreeMap::new() });
                rest = &rest[end..];
            }
        }
    }
    out
}

/// What came back for one request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Observed {
    pub status: u16,
    pub www_authenticate: Vec<String>,
    pub content_type: Option<String>,
    /// The first bytes of the body (read is capped).
    pub body_excerpt: String,
}

/// The verdict on one case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Verdict {
    /// `pass` or `fail` (`skip` and `inconclusive` are decided by the runner).
    pub outcome: String,
    pub reason: String,
    pub warnings: Vec<String>,
}

const STACK_MARKERS: [&str; 7] = [
    "Traceback (most recent call last)",
    "panicked at",
    "at java.",
    "Exception in thread",
    "    at ",
    "stack backtrace",
    "node_modules/",
];

/// Judges `observed` against `expect`. `secret` is the credential that was sent, which must
/// never come back.
pub fn judge(case: &str, expect: &Expectation, observed: &Observed, secret: Option<&str>) -> Verdict {
    let mut fails = Vec::new();
    let mut warnings = Vec::new();
    let s = observed.status;
    if expect.status.is_empty() {
        if s == 401 || s == 403 {
            fails.push(format!("refused a valid request: {s}"));
        }
    } else if !expect.status.contains(&s) {
        let wanted: Vec<String> = expect.status.iter().map(u16::to_string).collect();
        fails.push(if (200..300).contains(&s) {
            format!("accepted: {s}")
        } else {
            format!("status {s}, expected {}", wanted.join(" or "))
        });
    }
    if expect.challenge && fails.is_empty() {
        let challenges = parse_challenges(&observed.www_authenticate);
        match challenges.iter().find(|c| c.scheme.eq_ignore_ascii_case("bearer")) {
            None if observed.www_authenticate.is_empty() => fails.push("no WWW-Authenticate header".into()),
            None => fails
                .push(format!("WWW-Authenticate has no Bearer challenge: {:?}", observed.www_authenticate.join(", "))),
            Some(c) => {
                let error = c.params.get("error").map(String::as_str);
                if case == "missing" {
                    if let Some(e) = error {
                        warnings.push(format!(
                            "error=\"{e}\" although the request carried no credentials (RFC 6750 §3: omit it)"
                        ));
                    }
                } else if let Some(want) = &expect.error {
                    match error {
                        Some(e) if e == want => {}
                        Some(e) => fails.push(format!("challenge error=\"{e}\", expected \"{want}\"")),
                        None => fails.push(format!("challenge has no error attribute, expected error=\"{want}\"")),
                    }
                }
                if case == "insufficient_scope" && !c.params.contains_key("scope") {
                    warnings.push("the insufficient_scope challenge does not name the scope needed".into());
                }
            }
        }
    }
    if !expect.status.is_empty() && s >= 400 {
        let json = observed.content_type.as_deref().is_some_and(|c| c.contains("json"));
        if !json && !observed.body_excerpt.is_empty() {
            fails.push(format!(
                "error body is not JSON ({})",
                observed.content_type.as_deref().unwrap_or("no content type")
            ));
        }
    }
    if let Some(secret) = secret.filter(|s| s.len() >= 8) {
        let echoed =
            observed.body_excerpt.contains(secret) || observed.www_authenticate.iter().any(|h| h.contains(secret));
        if echoed {
            fails.push("the response echoes the token".into());
        }
    }
    if let Some(marker) = STACK_MARKERS.iter().find(|m| observed.body_excerpt.contains(*m)) {
        fails.push(format!("the response contains a stack trace ({marker:?})"));
    }
    let outcome = if fails.is_empty() { "pass" } else { "fail" };
    let reason = if fails.is_empty() { format!("{s} as expected") } else { fails.join("; ") };
    Verdict { outcome: outcome.into(), reason, warnings }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(status: u16, www: &[&str], body: &str) -> Observed {
        Observed {
            status,
            www_authenticate: www.iter().map(|s| s.to_string()).collect(),
            content_type: Some("application/json".into()),
            body_excerpt: body.into(),
        }
    }

    #[test]
    fn challenges_are_parsed_not_string_matched() {
        let c = parse_challenges(&[r#"Basic realm="api", Bearer realm="orders", error="invalid_token", error_description="expired, \"really\"""#.into()]);
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].scheme, "Basic");
        assert_eq!(c[1].params["error"], "invalid_token");
        assert_eq!(c[1].params["error_description"], "expired, \"really\"");
        let c = parse_challenges(&["Bearer".into(), "Negotiate".into()]);
        assert_eq!(c.iter().map(|c| c.scheme.as_str()).collect::<Vec<_>>(), ["Bearer", "Negotiate"]);
        let c = parse_challenges(&["Bearer error=invalid_token, scope=\"a b\"".into()]);
        assert_eq!(c[0].params["error"], "invalid_token");
        assert_eq!(c[0].params["scope"], "a b");
    }

    #[test]
    fn verdicts_table() {
        let bearer = r#"Bearer error="invalid_token""#;
        type Case<'a> = (&'a str, Observed, Option<&'a str>, &'a str, &'a str);
        let cases: Vec<Case> = vec![
            ("valid", obs(200, &[], "{}"), None, "pass", ""),
            ("valid", obs(401, &[bearer], "{}"), None, "fail", "refused a valid request"),
            ("expired", obs(401, &[bearer], "{}"), None, "pass", ""),
            ("expired", obs(200, &[], "{}"), None, "fail", "accepted: 200"),
            ("missing", obs(403, &[], "{}"), None, "fail", "status 403, expected 401"),
            ("missing", obs(401, &[], "{}"), None, "fail", "no WWW-Authenticate"),
            ("missing", obs(401, &["Basic realm=x"], "{}"), None, "fail", "no Bearer challenge"),
            ("missing", obs(401, &["Basic realm=x, Bearer realm=y"], "{}"), None, "pass", ""),
            ("expired", obs(401, &["Bearer realm=y"], "{}"), None, "fail", "no error attribute"),
            (
                "insufficient_scope",
                obs(403, &[r#"Bearer error="insufficient_scope", scope="a""#], "{}"),
                None,
                "pass",
                "",
            ),
            ("insufficient_scope", obs(401, &[bearer], "{}"), None, "fail", "status 401"),
            (
                "revoked",
                obs(401, &[bearer], "{\"token\":\"tsr_secretsecret\"}"),
                Some("tsr_secretsecret"),
                "fail",
                "echoes the token",
            ),
            ("garbage", obs(401, &[bearer], "panicked at src/main.rs"), None, "fail", "stack trace"),
        ];
        for (case, o, secret, outcome, needle) in cases {
            let v = judge(case, &default_expectation(case), &o, secret);
            assert_eq!(v.outcome, outcome, "{case}: {v:?}");
            assert!(v.reason.contains(needle), "{case}: {v:?}");
        }
        let v = judge("missing", &default_expectation("missing"), &obs(401, &[bearer], "{}"), None);
        assert_eq!(v.outcome, "pass");
        assert_eq!(v.warnings.len(), 1, "error attribute without credentials is a warning");
        let mut o = obs(401, &[bearer], "<html>nope</html>");
        o.content_type = Some("text/html".into());
        assert!(judge("expired", &default_expectation("expired"), &o, None).reason.contains("not JSON"));
    }

    #[test]
    fn overrides_apply_per_operation_then_per_case() {
        let o: Overrides = toml::from_str(
            "[cases.missing]\nstatus = [404]\n[operations.\"GET /a\".cases.missing]\nstatus = [410]\nchallenge = false\n",
        )
        .unwrap();
        assert_eq!(o.expectation("GET /a", "missing").status, vec![410]);
        assert_eq!(o.expectation("GET /b", "missing").status, vec![404]);
        assert_eq!(o.expectation("GET /b", "expired"), default_expectation("expired"));
        let bad: Overrides = toml::from_str("[cases.expird]\nstatus = [401]\n").unwrap();
        assert!(bad.check().unwrap_err().contains("expird"));
    }
}
