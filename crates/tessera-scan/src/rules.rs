//! Rules as data: the built-in `rules.toml`, plus files given with `--rules` that add rules or
//! override built-in ones by id.

use regex::Regex;
use serde::Deserialize;

const BUILT_IN: &str = include_str!("rules.toml");

/// Why a rule file was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuleError {
    #[error("{source_name}: {message}")]
    Parse { source_name: String, message: String },
    #[error("{source_name}: rule {id}: invalid regex: {message}")]
    Regex { source_name: String, id: String, message: String },
    #[error("{source_name}: rule {id}: unknown validator {validator:?} (tessera, tessera-client)")]
    Validator { source_name: String, id: String, validator: String },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleFile {
    #[serde(default)]
    rule: Vec<RawRule>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    id: String,
    description: String,
    #[serde(default = "medium")]
    severity: String,
    regex: String,
    #[serde(default)]
    keywords: Vec<String>,
    entropy: Option<f64>,
    validator: Option<String>,
}

fn medium() -> String {
    "medium".into()
}

/// One compiled rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub severity: String,
    pub regex: Regex,
    /// Lower-case; the rule runs only on text containing one (all text when empty).
    pub keywords: Vec<String>,
    pub entropy: Option<f64>,
    pub validator: Option<String>,
}

/// The rules in force.
#[derive(Debug, Clone)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
}

impl RuleSet {
    /// The built-in rules.
    pub fn built_in() -> RuleSet {
        let mut set = RuleSet { rules: Vec::new() };
        set.add(BUILT_IN, "built-in rules").expect("the built-in rules are valid");
        set
    }

    /// Adds the rules of `text` (a TOML rule file); a rule with an existing id replaces it.
    pub fn add(&mut self, text: &str, source_name: &str) -> Result<(), RuleError> {
        let file: RuleFile = toml::from_str(text)
            .map_err(|e| RuleError::Parse { source_name: source_name.into(), message: e.to_string() })?;
        for raw in file.rule {
            let regex = Regex::new(&raw.regex).map_err(|e| RuleError::Regex {
                source_name: source_name.into(),
                id: raw.id.clone(),
                message: e.to_string(),
            })?;
            if let Some(v) = &raw.validator {
                if !["tessera", "tessera-client"].contains(&v.as_str()) {
                    return Err(RuleError::Validator {
                        source_name: source_name.into(),
                        id: raw.id,
                        validator: v.clone(),
                    });
                }
            }
            let rule = Rule {
                id: raw.id,
                description: raw.description,
                severity: raw.severity,
                regex,
                keywords: raw.keywords.iter().map(|k| k.to_ascii_lowercase()).collect(),
                entropy: raw.entropy,
                validator: raw.validator,
            };
            match self.rules.iter_mut().find(|r| r.id == rule.id) {
                Some(existing) => *existing = rule,
                None => self.rules.push(rule),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn built_in_rules_compile_and_files_extend_or_override_them() {
        let mut set = RuleSet::built_in();
        let n = set.rules.len();
        assert!(n >= 15);
        set.add("[[rule]]\nid = \"jwt\"\ndescription = \"off\"\nregex = 'never-matches-xyz'\n", "mine.toml").unwrap();
        set.add("[[rule]]\nid = \"acme\"\ndescription = \"Acme key\"\nregex = 'acme_[0-9a-f]{32}'\nkeywords = [\"acme_\"]\n", "mine.toml")
            .unwrap();
        assert_eq!(set.rules.len(), n + 1);
        assert_eq!(set.rules.iter().find(|r| r.id == "jwt").unwrap().description, "off");
        let bad = set.add("[[rule]]\nid = \"x\"\ndescription = \"x\"\nregex = '('\n", "bad.toml").unwrap_err();
        assert!(matches!(bad, RuleError::Regex { .. }), "{bad}");
        assert!(set.add("[[rule]]\nid = \"x\"\n", "bad.toml").is_err());
    }
}
