//! Identity: who calls the Triggers API, for which organisation, and with which role.
//!
//! Users sign in with the OAuth2 password grant (RFC 6749 §4.3) and receive short-lived bearer
//! tokens that carry their [`Role`]; organisations may also hold API keys. Everything is stored in plain tables beside the
//! event log (see `src/store/identity.rs`), so every engine process sharing a store shares its
//! users, keys and token-signing key. Secrets never reach logs: the types that hold one print
//! `[redacted]` in their `Debug` output.
//!
//! # Layout
//! - `password`: argon2id hashing and verification, off the async threads.
//! - `tokens`: HS256 access tokens, issued and verified against an injected clock.
//! - `api_keys`: API key generation, hashing and shape checks.
//! - `email`: the normal form emails are stored and looked up in.
//! - [`role`]: [`Role`], what a user may do (`admin`, `member`, `auditor`).
//! - [`secret`]: random bytes, and [`Secret`], a string that `Debug` does not show.

mod api_keys;
mod email;
mod password;
pub mod role;
pub mod secret;
mod tokens;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use uuid::Uuid;

pub use role::Role;
pub use secret::Secret;

use crate::store::identity::NewUser;
use crate::store::{Store, StoreError};
use secret::REDACTED;
use tokens::TokenKeys;

/// How long an access token lasts unless the caller says otherwise: one hour, the usual lifetime
/// of an OAuth2 access token. There are no refresh tokens, so a client grants itself a new one.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(60 * 60);

/// The first-run admin's email when none is configured.
pub const DEFAULT_ADMIN_EMAIL: &str = "admin@localhost";

/// The name of the organisation the first-run bootstrap creates.
pub const BOOTSTRAP_ORGANISATION: &str = "default";

/// Why an identity operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    /// Wrong email or wrong password: one variant for both, so a caller cannot tell which
    /// (RFC 6749 §5.2 `invalid_grant`).
    #[error("invalid email or password")]
    InvalidGrant,
    /// The bearer token is malformed, or not signed by our key.
    #[error("invalid access token")]
    InvalidToken,
    #[error("access token expired")]
    ExpiredToken,
    #[error("email already registered")]
    DuplicateEmail,
    #[error("no such organisation")]
    UnknownOrganisation,
    #[error("organisation name is empty")]
    EmptyOrganisationName,
    #[error("invalid email address")]
    InvalidEmail,
    #[error("password is empty")]
    EmptyPassword,
    /// Not a key of this organisation (or not a key at all).
    #[error("invalid API key")]
    InvalidApiKey,
    #[error("no such user")]
    UnknownUser,
    #[error("identity store: {0}")]
    Store(#[from] StoreError),
    /// Hashing or verifying a password failed, e.g. a stored hash is unreadable.
    #[error("password hashing: {0}")]
    Hashing(String),
    #[error("signing an access token: {0}")]
    Signing(String),
}

/// Whom a verified access token speaks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub user_id: Uuid,
    pub org_id: Uuid,
    /// The user's role when the token was issued: a token keeps it until it expires, even if the
    /// user's role changes meanwhile (see [`Identity::set_role`]).
    pub role: Role,
}

/// An access token as the token endpoint hands it out (RFC 6749 §5.1).
#[derive(Clone)]
pub struct IssuedToken {
    pub access_token: String,
    /// Seconds from issue until the token expires.
    pub expires_in: u64,
}

impl fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedToken")
            .field("access_token", &REDACTED)
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// What the first-run bootstrap created.
#[derive(Clone)]
pub struct Bootstrap {
    pub org_id: Uuid,
    pub user_id: Uuid,
    pub email: String,
    /// The admin's password when it was generated rather than given: shown to the operator once.
    pub generated_password: Option<String>,
}

impl fmt::Debug for Bootstrap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bootstrap")
            .field("org_id", &self.org_id)
            .field("user_id", &self.user_id)
            .field("email", &self.email)
            .field(
                "generated_password",
                &self.generated_password.as_ref().map(|_| REDACTED),
            )
            .finish()
    }
}

/// The identity service: organisations, users, API keys and access tokens. Cheap to clone.
#[derive(Clone)]
pub struct Identity {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    tokens: TokenKeys,
    token_ttl: Duration,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("store", &self.inner.store.backend())
            .field("tokens", &self.inner.tokens)
            .field("token_ttl", &self.inner.token_ttl)
            .finish()
    }
}

impl Identity {
    /// Loads the token-signing key from the store, creating it on first use. Safe when several
    /// engine processes start at once on one PostgreSQL: each offers a fresh key, the first insert
    /// wins, and all of them read back the winner.
    pub async fn load(store: Arc<Store>, token_ttl: Duration) -> Result<Self, IdentityError> {
        let candidate = secret::random_bytes::<{ tokens::KEY_BYTES }>();
        let key = store.signing_key(tokens::KEY_NAME, &candidate).await?;
        if key.len() != tokens::KEY_BYTES {
            return Err(StoreError::Corrupt(format!(
                "the token-signing key has {} bytes, not {}",
                key.len(),
                tokens::KEY_BYTES
            ))
            .into());
        }
        Ok(Self {
            inner: Arc::new(Inner {
                store,
                tokens: TokenKeys::new(&key),
                token_ttl,
            }),
        })
    }

    pub async fn create_org(&self, name: &str) -> Result<Uuid, IdentityError> {
        let name = name.trim();
        if name.is_empty() {
            return Err(IdentityError::EmptyOrganisationName);
        }
        let org_id = Uuid::new_v4();
        self.inner.store.insert_organisation(org_id, name).await?;
        tracing::info!(%org_id, "organisation created");
        Ok(org_id)
    }

    /// Registers a user in an organisation with `role`. The email is stored lower-cased, so it is
    /// unique whatever its case; the password is stored only as its argon2id hash.
    pub async fn create_user(
        &self,
        org_id: Uuid,
        email: &str,
        password: &str,
        role: Role,
    ) -> Result<Uuid, IdentityError> {
        let email = email::normalise(email)?;
        if password.is_empty() {
            return Err(IdentityError::EmptyPassword);
        }
        if !self.inner.store.organisation_exists(org_id).await? {
            return Err(IdentityError::UnknownOrganisation);
        }
        let password_hash = password::hash(password).await?;
        let user = NewUser {
            id: Uuid::new_v4(),
            org_id,
            email: &email,
            password_hash: &password_hash,
            role: role.as_str(),
        };
        if !self.inner.store.insert_user(&user).await? {
            return Err(IdentityError::DuplicateEmail);
        }
        tracing::info!(user_id = %user.id, %org_id, %role, "user created");
        Ok(user.id)
    }

    /// Gives a user another role. Tokens issued before keep the role they carry until they
    /// expire (at most the token lifetime, `TRIGGER_ENGINE_TOKEN_TTL_SECONDS`): verifying a token
    /// reads no table, so a request costs no store round trip before it is refused or served.
    pub async fn set_role(&self, user_id: Uuid, role: Role) -> Result<(), IdentityError> {
        if !self
            .inner
            .store
            .set_user_role(user_id, role.as_str())
            .await?
        {
            return Err(IdentityError::UnknownUser);
        }
        tracing::info!(%user_id, %role, "user role changed");
        Ok(())
    }

    /// Returns (key id, the key itself). The key is shown once; only its hash is stored.
    pub async fn create_api_key(&self, org_id: Uuid) -> Result<(Uuid, String), IdentityError> {
        if !self.inner.store.organisation_exists(org_id).await? {
            return Err(IdentityError::UnknownOrganisation);
        }
        let (key_id, key) = (Uuid::new_v4(), api_keys::generate());
        self.inner
            .store
            .insert_api_key(key_id, org_id, &api_keys::hash(&key))
            .await?;
        tracing::info!(%key_id, %org_id, "API key created");
        Ok((key_id, key))
    }

    /// The id of `api_key` if it is one of `org_id`'s keys; `InvalidApiKey` otherwise, including
    /// for another organisation's key.
    pub async fn verify_api_key(&self, org_id: Uuid, api_key: &str) -> Result<Uuid, IdentityError> {
        if !api_keys::is_well_formed(api_key) {
            return Err(IdentityError::InvalidApiKey);
        }
        self.inner
            .store
            .api_key_id(org_id, &api_keys::hash(api_key))
            .await?
            .ok_or(IdentityError::InvalidApiKey)
    }

    /// RFC 6749 password grant. `now` is injected so expiry is testable without waiting.
    ///
    /// An unknown (or malformed) email is checked against a dummy hash, so it takes as long as a
    /// wrong password and both answer `InvalidGrant`.
    pub async fn password_grant(
        &self,
        email: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> Result<IssuedToken, IdentityError> {
        let user = match email::normalise(email) {
            Ok(email) => self.inner.store.user_credentials(&email).await?,
            Err(_) => None,
        };
        let (principal, password_hash) = match user {
            Some(user) => (
                Some(Principal {
                    user_id: user.user_id,
                    org_id: user.org_id,
                    role: user.role.parse().map_err(|unknown| {
                        StoreError::Corrupt(format!("user {}: {unknown}", user.user_id))
                    })?,
                }),
                user.password_hash,
            ),
            None => (None, password::DUMMY_HASH.to_owned()),
        };
        let matches = password::verify(password, password_hash).await?;
        let Some(principal) = principal.filter(|_| matches) else {
            return Err(IdentityError::InvalidGrant);
        };
        let access_token = self
            .inner
            .tokens
            .issue(principal, now, self.inner.token_ttl)?;
        Ok(IssuedToken {
            access_token,
            expires_in: self.inner.token_ttl.as_secs(),
        })
    }

    /// The principal an access token speaks for, if our key signed it and it is unexpired at
    /// `now` (no leeway).
    pub fn verify_token(
        &self,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<Principal, IdentityError> {
        self.inner.tokens.verify(token, now)
    }

    pub async fn has_users(&self) -> Result<bool, IdentityError> {
        Ok(self.inner.store.has_users().await?)
    }

    /// First run with no users: creates an organisation and a user of role `admin` with the given
    /// credentials, or with a generated password (returned so `serve` can print it once).
    /// Returns None when users already exist, or when another process bootstrapped first: of
    /// several processes starting at once on an empty store, exactly one creates the admin.
    pub async fn bootstrap_admin(
        &self,
        email: Option<&str>,
        password: Option<&str>,
    ) -> Result<Option<Bootstrap>, IdentityError> {
        let email = email::normalise(email.unwrap_or(DEFAULT_ADMIN_EMAIL))?;
        if password.is_some_and(str::is_empty) {
            return Err(IdentityError::EmptyPassword);
        }
        // The usual case, a store that has users, costs one query and no hashing.
        if self.has_users().await? {
            return Ok(None);
        }
        let (password, generated_password) = match password {
            Some(given) => (given.to_owned(), None),
            None => {
                let generated = password::generate();
                (generated.clone(), Some(generated))
            }
        };
        let password_hash = password::hash(&password).await?;
        let admin = NewUser {
            id: Uuid::new_v4(),
            org_id: Uuid::new_v4(),
            email: &email,
            password_hash: &password_hash,
            role: Role::Admin.as_str(),
        };
        if !self
            .inner
            .store
            .bootstrap_admin(BOOTSTRAP_ORGANISATION, &admin)
            .await?
        {
            return Ok(None);
        }
        tracing::info!(user_id = %admin.id, org_id = %admin.org_id, "first-run admin created");
        Ok(Some(Bootstrap {
            org_id: admin.org_id,
            user_id: admin.id,
            email,
            generated_password,
        }))
    }
}
