//! Secret scanning: rules as data (a built-in TOML file, extendable), a scanner that touches
//! most bytes once (one keyword automaton decides which rule regexes run), a parallel walker
//! that honours `.gitignore`, and findings with masked excerpts and stable fingerprints.

pub mod report;
pub mod rules;
pub mod scanner;
pub mod walk;

pub use rules::{Rule, RuleError, RuleSet};
pub use scanner::{Finding, Scanner};
