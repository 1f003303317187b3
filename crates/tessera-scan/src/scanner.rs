//! The scanner: one Aho-Corasick pass over the text finds which rules' keywords occur; only
//! those rules' regexes run. Matches are then filtered by entropy, placeholders, checksums
//! and `tessera:allow` comments.

use std::collections::BTreeSet;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::rules::RuleSet;

/// Comment that suppresses findings on its line.
pub const ALLOW_MARKER: &str = "tessera:allow";

/// One secret found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub rule: String,
    pub description: String,
    pub severity: String,
    pub path: String,
    pub line: usize,
    pub column: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// The line with the secret masked (never the full secret).
    pub excerpt: String,
    /// Stable across runs and line moves: rule, path and a hash of the secret.
    pub fingerprint: String,
    /// `live`, `inactive` or `unknown` once verified against Tessera.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The secret itself, kept only in memory for `--verify`/`--revoke`; never serialized.
    #[serde(skip)]
    pub secret: String,
}

/// A compiled rule set, ready to scan text.
#[derive(Debug, Clone)]
pub struct Scanner {
    rules: RuleSet,
    keywords: AhoCorasick,
    /// keyword index → rule indexes
    keyword_rules: Vec<Vec<usize>>,
    /// Rules with no keyword run on everything.
    always: Vec<usize>,
}

/// Obvious placeholders are not secrets.
fn is_placeholder(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    let markers = [
        "changeme",
        "change_me",
        "xxxx",
        "example",
        "placeholder",
        "dummy",
        "redacted",
        "your_",
        "your-",
        "<",
        "${",
        "{{",
        "%(",
        "$(",
        "****",
        "....",
        "todo",
        "fixme",
        "sample",
        "fake",
        "notreal",
        "password123",
        "secret123",
    ];
    markers.iter().any(|m| lower.contains(m))
        || s.starts_with('$')
        || s.chars().all(|c| c == s.chars().next().unwrap_or('x'))
        // A short all-lower-case word (`hunter`, `secretvalue`) reads as a placeholder, not a key.
        || s.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == '-') && s.len() < 20
}

/// Shannon entropy in bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0usize; 256];
    for b in s.bytes() {
        counts[b as usize] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

fn mask(secret: &str) -> String {
    let keep = if secret.len() >= 16 { 4 } else { 2 };
    let head: String = secret.chars().take(keep).collect();
    format!("{head}{}", "*".repeat(secret.chars().count().saturating_sub(keep).min(24)))
}

impl Scanner {
    pub fn new(rules: RuleSet) -> Scanner {
        let mut keywords: Vec<String> = Vec::new();
        let mut keyword_rules: Vec<Vec<usize>> = Vec::new();
        let mut always = Vec::new();
        for (i, r) in rules.rules.iter().enumerate() {
            if r.keywords.is_empty() {
                always.push(i);
            }
            for k in &r.keywords {
                match keywords.iter().position(|x| x == k) {
                    Some(p) => keyword_rules[p].push(i),
                    None => {
                        keywords.push(k.clone());
                        keyword_rules.push(vec![i]);
                    }
                }
            }
        }
        let keywords = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .build(&keywords)
            .expect("keywords build an automaton");
        Scanner { rules, keywords, keyword_rules, always }
    }

    /// Scans `text` (the contents of `path`, at `commit` for history scans).
    pub fn scan(&self, text: &str, path: &str, commit: Option<&str>) -> Vec<Finding> {
        let mut active: BTreeSet<usize> = self.always.iter().copied().collect();
        for m in self.keywords.find_overlapping_iter(text) {
            active.extend(&self.keyword_rules[m.pattern().as_usize()]);
        }
        let mut out = Vec::new();
        let mut seen: BTreeSet<(usize, usize)> = BTreeSet::new();
        for i in active {
            let rule = &self.rules.rules[i];
            for caps in rule.regex.captures_iter(text) {
                let m = caps.name("secret").unwrap_or_else(|| caps.get(0).expect("group 0"));
                let secret = m.as_str();
                if seen.iter().any(|(s, e)| m.start() < *e && *s < m.end()) && rule.id.starts_with("generic") {
                    continue;
                }
                if !self.accept(rule, secret) {
                    continue;
                }
                let line_start = text[..m.start()].rfind('\n').map_or(0, |p| p + 1);
                let line_end = text[m.start()..].find('\n').map_or(text.len(), |p| m.start() + p);
                let line_text = &text[line_start..line_end];
                if line_text.contains(ALLOW_MARKER) {
                    continue;
                }
                seen.insert((m.start(), m.end()));
                let line = text[..m.start()].matches('\n').count() + 1;
                let column = text[line_start..m.start()].chars().count() + 1;
                let excerpt: String = line_text.replace(secret, &mask(secret)).trim().chars().take(200).collect();
                let mut h = Sha256::new();
                h.update(rule.id.as_bytes());
                h.update([0]);
                h.update(path.as_bytes());
                h.update([0]);
                h.update(secret.as_bytes());
                out.push(Finding {
                    rule: rule.id.clone(),
                    description: rule.description.clone(),
                    severity: rule.severity.clone(),
                    path: path.to_owned(),
                    line,
                    column,
                    commit: commit.map(str::to_owned),
                    excerpt,
                    fingerprint: hex::encode(&h.finalize()[..8]),
                    status: None,
                    secret: secret.to_owned(),
                });
            }
        }
        out.sort_by_key(|f| (f.line, f.column));
        // A specific rule's finding wins over a generic one at the same place.
        out.dedup_by(|b, a| a.line == b.line && b.rule.starts_with("generic") && a.excerpt == b.excerpt);
        out
    }

    fn accept(&self, rule: &crate::rules::Rule, secret: &str) -> bool {
        match rule.validator.as_deref() {
            Some("tessera") => return tessera_core::TokenSecret::parse(secret).is_ok(),
            Some("tessera-client") => return tessera_core::ClientSecret::parse(secret).is_ok(),
            _ => {}
        }
        if rule.entropy.is_some_and(|min| entropy(secret) < min) {
            return false;
        }
        if rule.id.starts_with("generic") || rule.id == "url-credentials" {
            // Tessera's own formats are decided by their checksum alone (no false positives).
            if secret.starts_with("tsr_") || secret.starts_with("tsc_") || is_placeholder(secret) {
                return false;
            }
            // Code, not a literal: `password = get_password()`, `token: env.TOKEN`.
            if secret.contains('(')
                || secret.starts_with("env.")
                || secret.starts_with("process.env")
                || secret.starts_with("os.")
            {
                return false;
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(text: &str) -> Vec<String> {
        Scanner::new(RuleSet::built_in()).scan(text, "f", None).into_iter().map(|f| f.rule).collect()
    }

    #[test]
    fn planted_secrets_are_found_and_decoys_are_not() {
        let token = tessera_core::TokenSecret::generate();
        let mut typo = token.expose().to_owned();
        typo.replace_range(10..11, if &typo[10..11] == "a" { "b" } else { "a" });
        let cases: Vec<(String, Vec<&str>)> = vec![
            (format!("TOKEN={}", token.expose()), vec!["tessera-token"]),
            (format!("TOKEN={typo}"), vec![]),
            ("aws_access_key_id = AKIAIOSFODNN7Q2B3X4Z".into(), vec!["aws-access-key-id"]),
            (
                "aws_secret_access_key = 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\n".into(),
                vec!["aws-secret-access-key"],
            ),
            ("export GH=ghp_16C7e42F292c6912E7710c838347Ae178B4a".into(), vec!["github-token"]),
            ("STRIPE=sk_live_4eC39HqLyjWDarjtT1zdp7dc".into(), vec!["stripe-key"]),
            (format!("-----BEGIN {} PRIVATE KEY-----\nMIIE", "RSA"), vec!["private-key"]),
            ("db: postgres://app:S3cr3tP4ssw0rd9@db.internal:5432/app".into(), vec!["url-credentials"]),
            ("password: \"hX9mQ2!vL7@pR4zK\"".into(), vec!["generic-assignment"]),
            // Decoys.
            ("password = \"changeme\"".into(), vec![]),
            ("password: ${DB_PASSWORD}".into(), vec![]),
            ("api_key = <your-api-key>".into(), vec![]),
            ("token = get_token(request)".into(), vec![]),
            ("sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08".into(), vec![]),
            ("id: 123e4567-e89b-12d3-a456-426614174000".into(), vec![]),
            ("integrity sha512-Q8Zl1Yxa9H7e5Xr0vQ==".into(), vec![]),
            (format!("TOKEN={}  # tessera:allow", token.expose()), vec![]),
        ];
        for (text, expected) in cases {
            assert_eq!(scan(&text), expected, "{text}");
        }
    }

    #[test]
    fn findings_locate_mask_and_fingerprint() {
        let token = tessera_core::TokenSecret::generate();
        let text = format!("a\nb\n  curl -H \"Authorization: Bearer {}\"\n", token.expose());
        let f = &Scanner::new(RuleSet::built_in()).scan(&text, "ci.sh", Some("abc123"))[0];
        assert_eq!((f.line, f.column), (3, 34));
        assert!(!f.excerpt.contains(token.expose()), "{}", f.excerpt);
        assert!(f.excerpt.contains("tsr_"), "{}", f.excerpt);
        assert_eq!(f.commit.as_deref(), Some("abc123"));
        let again = &Scanner::new(RuleSet::built_in()).scan(&format!("moved\n{text}"), "ci.sh", None)[0];
        assert_eq!(f.fingerprint, again.fingerprint, "stable when the line moves");
        assert!(!serde_json::to_string(f).unwrap().contains(token.expose()));
    }

    #[test]
    fn entropy_is_bits_per_char() {
        assert_eq!(entropy("aaaa"), 0.0);
        assert!((entropy("abcd") - 2.0).abs() < 1e-9);
    }
}
