//! Email addresses as identity keys: trimmed and lower-cased before they are stored or looked up,
//! so `Alice@Example.com` and `alice@example.com` are one user.

use super::IdentityError;

/// RFC 5321's limit on a forward path, which bounds a usable address.
const MAX_LENGTH: usize = 254;

/// The address in the form it is stored and looked up in, or `InvalidEmail`. The check is only
/// the shape (`local@domain`, no spaces); whether the address receives mail is not ours to prove.
pub(crate) fn normalise(email: &str) -> Result<String, IdentityError> {
    let email = email.trim().to_lowercase();
    let well_formed = email.len() <= MAX_LENGTH
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        });
    if well_formed {
        Ok(email)
    } else {
        Err(IdentityError::InvalidEmail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_should_lower_case_and_trim_an_address() {
        assert_eq!(
            normalise("  Alice@Example.COM\n").unwrap(),
            "alice@example.com"
        );
    }

    #[test]
    fn it_should_refuse_what_is_not_local_at_domain() {
        for email in [
            "",
            "alice",
            "@example.com",
            "alice@",
            "a@b@c",
            "al ice@example.com",
        ] {
            assert!(
                matches!(normalise(email), Err(IdentityError::InvalidEmail)),
                "{email:?} was accepted"
            );
        }
        let long = format!("{}@example.com", "a".repeat(MAX_LENGTH));
        assert!(matches!(normalise(&long), Err(IdentityError::InvalidEmail)));
    }
}
