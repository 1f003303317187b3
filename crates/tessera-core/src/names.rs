//! Names users choose: environments, clients, labels. Validated once at the edge so the rest
//! of the system can put them in URLs, logs and audit entries without escaping surprises.

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("invalid {kind} name {name:?}: use 1-63 characters a-z, 0-9 and '-', starting with a letter or digit")]
    Invalid { kind: &'static str, name: String },
    #[error("{kind} name {name:?} is reserved")]
    Reserved { kind: &'static str, name: String },
    #[error("invalid label {label:?}: {reason}")]
    InvalidLabel { label: String, reason: &'static str },
}

/// The environment that holds the control plane's own credentials (the root token).
pub const SYSTEM_ENV: &str = "tessera";

fn is_simple_name(s: &str, extra: &[u8]) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && (b[0].is_ascii_lowercase() || b[0].is_ascii_digit())
        && b.iter().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-' || extra.contains(c))
}

/// Environment names: `dev`, `staging`, `qa-1`.
pub fn validate_env_name(name: &str) -> Result<(), NameError> {
    if is_simple_name(name, &[]) {
        Ok(())
    } else {
        Err(NameError::Invalid { kind: "environment", name: name.chars().take(80).collect() })
    }
}

/// Environment names a user may create: valid and not reserved.
pub fn validate_new_env_name(name: &str) -> Result<(), NameError> {
    validate_env_name(name)?;
    if name == SYSTEM_ENV {
        return Err(NameError::Reserved { kind: "environment", name: name.to_owned() });
    }
    Ok(())
}

/// Client ids: `checkout-tests`, `ci.admin`, `svc_orders`.
pub fn validate_client_id(id: &str) -> Result<(), NameError> {
    if is_simple_name(id, b"._") {
        Ok(())
    } else {
        Err(NameError::Invalid { kind: "client", name: id.chars().take(80).collect() })
    }
}

/// Parses a `KEY=VALUE` label: key of 1-63 characters `A-Za-z0-9._/-`, value of at most 256
/// printable characters.
pub fn parse_label(s: &str) -> Result<(String, String), NameError> {
    let err = |reason| NameError::InvalidLabel { label: s.chars().take(80).collect(), reason };
    let (k, v) = s.split_once('=').ok_or_else(|| err("expected KEY=VALUE"))?;
    validate_label(k, v).map_err(err)?;
    Ok((k.to_owned(), v.to_owned()))
}

/// Validates a label given as key and value.
pub fn validate_label(k: &str, v: &str) -> Result<(), &'static str> {
    if k.is_empty() || k.len() > 63 {
        return Err("key must have 1-63 characters");
    }
    if !k.bytes().all(|c| c.is_ascii_alphanumeric() || b"._/-".contains(&c)) {
        return Err("key may contain only A-Z, a-z, 0-9, '.', '_', '/', '-'");
    }
    if v.len() > 256 {
        return Err("value must have at most 256 characters");
    }
    if v.chars().any(char::is_control) {
        return Err("value must not contain control characters");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environment_names() {
        for ok in ["dev", "staging", "qa-1", "1qa"] {
            assert!(validate_new_env_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-qa", "QA", "qa_1", "qa 1", &"a".repeat(64), "qa/1"] {
            assert!(validate_env_name(bad).is_err(), "{bad}");
        }
        assert!(matches!(validate_new_env_name("tessera"), Err(NameError::Reserved { .. })));
    }

    #[test]
    fn client_ids_and_labels() {
        assert!(validate_client_id("checkout-tests").is_ok());
        assert!(validate_client_id("svc_orders.v2").is_ok());
        assert!(validate_client_id("Checkout").is_err());
        assert_eq!(parse_label("team=qa").unwrap(), ("team".into(), "qa".into()));
        assert_eq!(parse_label("ci/job=a=b").unwrap(), ("ci/job".into(), "a=b".into()));
        assert!(parse_label("novalue").is_err());
        assert!(parse_label("=x").is_err());
        assert!(parse_label("k=a\nb").is_err());
    }
}
