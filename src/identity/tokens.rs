//! Access tokens: JWTs (RFC 7519) signed with HS256 under one 32-byte key that the store keeps, so
//! every engine process sharing the store issues and accepts the same tokens, across restarts.
//!
//! Claims: `sub` (the user id), `org` (the user's organisation id), `role` (the user's role when the
//! token was issued), `iat` and `exp` (seconds since the epoch). The role is not re-read from the
//! store: a token keeps the role it was issued with until it expires. A token without `role` was
//! issued before roles existed, when every user could do what a `member` can: it is read as one,
//! so that an upgrade signs nobody out. Expiry is checked here against the `now` the caller passes, with no leeway: a token
//! is expired from its `exp` second on (RFC 7519 §4.1.4: valid only *before* `exp`).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::secret::REDACTED;
use super::{IdentityError, Principal, Role};

/// The `signing_keys` row that holds the access-token key.
pub(crate) const KEY_NAME: &str = "access_tokens";

/// HS256's key should be at least the hash's output size (RFC 7518 §3.2): 256 bits.
pub(crate) const KEY_BYTES: usize = 32;

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: Uuid,
    org: Uuid,
    #[serde(default = "role_before_roles")]
    role: Role,
    iat: i64,
    exp: i64,
}

/// The role of a token issued before tokens carried one: every user could then do what a member
/// can, and the migration that added roles made every user but the first-run admin a member.
fn role_before_roles() -> Role {
    Role::Member
}

/// Signs and verifies access tokens with one key.
pub(crate) struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    pub(crate) fn new(secret: &[u8]) -> Self {
        // Only HS256 is accepted, which refuses `alg: none` and any attempt to pass off another
        // algorithm. The crate's own expiry check reads the system clock, so it is turned off and
        // `verify` checks `exp` against the injected `now` instead.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.validate_exp = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
        }
    }

    /// A token for `principal`, valid from `now` for `ttl` (whole seconds).
    pub(crate) fn issue(
        &self,
        principal: Principal,
        now: DateTime<Utc>,
        ttl: Duration,
    ) -> Result<String, IdentityError> {
        let iat = now.timestamp();
        let claims = Claims {
            sub: principal.user_id,
            org: principal.org_id,
            role: principal.role,
            iat,
            exp: iat.saturating_add(i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX)),
        };
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|error| IdentityError::Signing(error.to_string()))
    }

    /// The principal a token names, if our key signed it and it has not expired at `now`.
    pub(crate) fn verify(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Principal, IdentityError> {
        let claims = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .map_err(|_| IdentityError::InvalidToken)?
            .claims;
        if now.timestamp() >= claims.exp {
            return Err(IdentityError::ExpiredToken);
        }
        Ok(Principal {
            user_id: claims.sub,
            org_id: claims.org,
            role: claims.role,
        })
    }
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenKeys")
            .field("algorithm", &Algorithm::HS256)
            .field("key", &REDACTED)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use chrono::TimeZone;

    use super::*;

    const TTL: Duration = Duration::from_secs(3600);

    fn keys() -> TokenKeys {
        TokenKeys::new(&[7; KEY_BYTES])
    }

    fn principal() -> Principal {
        Principal {
            user_id: Uuid::from_u128(1),
            org_id: Uuid::from_u128(2),
            role: Role::Auditor,
        }
    }

    fn issued_at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
    }

    #[test]
    fn it_should_verify_a_token_it_issued_as_its_principal() {
        let token = keys().issue(principal(), issued_at(), TTL).unwrap();
        assert_eq!(keys().verify(&token, issued_at()).unwrap(), principal());
    }

    #[test]
    fn it_should_carry_the_role_it_was_issued_with() {
        for role in Role::ALL {
            let principal = Principal {
                role,
                ..principal()
            };
            let token = keys().issue(principal, issued_at(), TTL).unwrap();
            let claims = token.split('.').nth(1).unwrap();
            let claims: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).unwrap()).unwrap();
            assert_eq!(claims["role"], role.as_str());
            assert_eq!(keys().verify(&token, issued_at()).unwrap().role, role);
        }
    }

    #[test]
    fn it_should_read_a_token_from_before_roles_as_a_members() {
        let claims = Claims {
            sub: principal().user_id,
            org: principal().org_id,
            role: Role::Admin,
            iat: issued_at().timestamp(),
            exp: (issued_at() + TTL).timestamp(),
        };
        let mut claims = serde_json::to_value(claims).unwrap();
        claims.as_object_mut().unwrap().remove("role");
        let keys = keys();
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert_eq!(keys.verify(&token, issued_at()).unwrap().role, Role::Member);
    }

    #[test]
    fn it_should_refuse_a_token_whose_role_was_raised() {
        let token = keys().issue(principal(), issued_at(), TTL).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let raised = serde_json::json!({
            "sub": principal().user_id, "org": principal().org_id, "role": "admin",
            "iat": issued_at().timestamp(), "exp": (issued_at() + TTL).timestamp(),
        });
        parts[1] = URL_SAFE_NO_PAD.encode(raised.to_string());
        assert!(matches!(
            keys().verify(&parts.join("."), issued_at()),
            Err(IdentityError::InvalidToken)
        ));
    }

    #[test]
    fn it_should_expire_a_token_at_exactly_its_exp() {
        let token = keys().issue(principal(), issued_at(), TTL).unwrap();
        let last_valid = issued_at() + TTL - Duration::from_secs(1);
        assert!(keys().verify(&token, last_valid).is_ok());
        assert!(matches!(
            keys().verify(&token, issued_at() + TTL),
            Err(IdentityError::ExpiredToken)
        ));
    }

    #[test]
    fn it_should_refuse_a_token_whose_signature_was_tampered_with() {
        let token = keys().issue(principal(), issued_at(), TTL).unwrap();
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
        bytes[0] ^= 1;
        let tampered = format!("{signed}.{}", URL_SAFE_NO_PAD.encode(bytes));
        assert!(matches!(
            keys().verify(&tampered, issued_at()),
            Err(IdentityError::InvalidToken)
        ));
    }

    #[test]
    fn it_should_refuse_a_token_whose_claims_were_changed() {
        let token = keys().issue(principal(), issued_at(), TTL).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        let other_org = serde_json::json!({
            "sub": principal().user_id, "org": Uuid::from_u128(3),
            "iat": issued_at().timestamp(), "exp": (issued_at() + TTL).timestamp(),
        });
        parts[1] = URL_SAFE_NO_PAD.encode(other_org.to_string());
        assert!(matches!(
            keys().verify(&parts.join("."), issued_at()),
            Err(IdentityError::InvalidToken)
        ));
    }

    #[test]
    fn it_should_refuse_a_token_signed_with_another_key() {
        let other = TokenKeys::new(&[8; KEY_BYTES]);
        let token = other.issue(principal(), issued_at(), TTL).unwrap();
        assert!(matches!(
            keys().verify(&token, issued_at()),
            Err(IdentityError::InvalidToken)
        ));
    }

    #[test]
    fn it_should_refuse_an_unsigned_token() {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let claims = URL_SAFE_NO_PAD.encode(
            serde_json::json!({
                "sub": principal().user_id, "org": principal().org_id,
                "iat": issued_at().timestamp(), "exp": (issued_at() + TTL).timestamp(),
            })
            .to_string(),
        );
        for token in [format!("{header}.{claims}."), format!("{header}.{claims}")] {
            assert!(matches!(
                keys().verify(&token, issued_at()),
                Err(IdentityError::InvalidToken)
            ));
        }
    }

    #[test]
    fn it_should_refuse_what_is_not_a_token() {
        for token in ["", "abc", "a.b.c", "tek_abc"] {
            assert!(matches!(
                keys().verify(token, issued_at()),
                Err(IdentityError::InvalidToken)
            ));
        }
    }

    #[test]
    fn it_should_not_show_the_key_in_debug_output() {
        let debug = format!("{:?}", TokenKeys::new(b"a very secret key of 32 bytes!!!"));
        assert!(!debug.contains("secret"), "{debug}");
    }
}
