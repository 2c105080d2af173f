//! FC's naming rules for resources.

use super::RegistryError;

/// Services, functions, triggers: a letter or `_` first, then letters,
/// digits, `_` and `-`.
fn check(kind: &str, name: &str, max: usize) -> Result<(), RegistryError> {
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if name.is_empty() || name.len() > max || !first_ok || !rest_ok {
        return Err(RegistryError::InvalidArgument(format!(
            "invalid {kind} name '{name}': must be 1-{max} characters, start with a letter or underscore, \
             and contain only letters, digits, underscores and hyphens"
        )));
    }
    Ok(())
}

pub fn service(name: &str) -> Result<(), RegistryError> {
    check("service", name, 128)
}

pub fn function(name: &str) -> Result<(), RegistryError> {
    check("function", name, 64)
}

pub fn trigger(name: &str) -> Result<(), RegistryError> {
    check("trigger", name, 128)
}

/// Aliases additionally may not look like a version number or `LATEST`,
/// or a qualifier could not tell them apart.
pub fn alias(name: &str) -> Result<(), RegistryError> {
    check("alias", name, 128)?;
    if name == "LATEST" {
        return Err(RegistryError::InvalidArgument("alias name 'LATEST' is reserved".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn fc_naming_rules() {
        assert!(super::service("svc-1_a").is_ok());
        assert!(super::service("_x").is_ok());
        for bad in ["", "1svc", "-svc", "sv c", "svc.prod", "svc/x", &"a".repeat(129)] {
            assert!(super::service(bad).is_err(), "{bad:?} must be refused");
        }
        assert!(super::function(&"a".repeat(64)).is_ok());
        assert!(super::function(&"a".repeat(65)).is_err());
        assert!(super::alias("LATEST").is_err());
    }
}
