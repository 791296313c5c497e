//! The identity tables: organisations, users, API keys, token-signing keys and the first-run
//! bootstrap marker. Plain rows, not event streams; the rules (hashing, email normalisation, what
//! counts as a match) live in [`crate::identity`], which is the only caller.

use uuid::Uuid;

use super::{parse_id, Store, StoreError};

/// A user to insert: the email already normalised, the password already hashed.
pub struct NewUser<'a> {
    pub id: Uuid,
    pub org_id: Uuid,
    pub email: &'a str,
    pub password_hash: &'a str,
    /// The role's name, as `crate::identity::Role` spells it (the table's CHECK holds the list).
    pub role: &'a str,
}

/// What a password grant needs to know about a user. No `Debug`: it holds a password hash.
pub struct UserCredentials {
    pub user_id: Uuid,
    pub org_id: Uuid,
    pub password_hash: String,
    /// The role's name, for [`crate::identity`] to read.
    pub role: String,
}

const INSERT_ORGANISATION: &str = "INSERT INTO organisations (id, name) VALUES ($1, $2)";

/// Does nothing, and so affects no row, when the email is taken.
const INSERT_USER: &str = "INSERT INTO users (id, org_id, email, password_hash, role)
    VALUES ($1, $2, $3, $4, $5) ON CONFLICT (email) DO NOTHING";

const ANY_USER: &str = "SELECT id FROM users LIMIT 1";

impl Store {
    pub async fn insert_organisation(&self, id: Uuid, name: &str) -> Result<(), StoreError> {
        crate::on_pool!(self, |pool| sqlx::query(INSERT_ORGANISATION)
            .bind(id.to_string())
            .bind(name)
            .execute(pool)
            .await
            .map(|_| ()))?;
        Ok(())
    }

    pub async fn organisation_exists(&self, id: Uuid) -> Result<bool, StoreError> {
        let found: Option<(String,)> = crate::on_pool!(self, |pool| {
            sqlx::query_as("SELECT id FROM organisations WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(pool)
                .await
        })?;
        Ok(found.is_some())
    }

    /// Inserts the user; `false` when the email is already registered. The organisation must
    /// exist (a foreign key refuses it otherwise).
    pub async fn insert_user(&self, user: &NewUser<'_>) -> Result<bool, StoreError> {
        let inserted = crate::on_pool!(self, |pool| sqlx::query(INSERT_USER)
            .bind(user.id.to_string())
            .bind(user.org_id.to_string())
            .bind(user.email)
            .bind(user.password_hash)
            .bind(user.role)
            .execute(pool)
            .await
            .map(|done| done.rows_affected()))?;
        Ok(inserted == 1)
    }

    /// Sets a user's role; `false` when there is no such user.
    pub async fn set_user_role(&self, user_id: Uuid, role: &str) -> Result<bool, StoreError> {
        let updated = crate::on_pool!(self, |pool| sqlx::query(
            "UPDATE users SET role = $2 WHERE id = $1"
        )
        .bind(user_id.to_string())
        .bind(role)
        .execute(pool)
        .await
        .map(|done| done.rows_affected()))?;
        Ok(updated == 1)
    }

    /// The user with this (normalised) email, if any.
    pub async fn user_credentials(
        &self,
        email: &str,
    ) -> Result<Option<UserCredentials>, StoreError> {
        let row: Option<(String, String, String, String)> = crate::on_pool!(self, |pool| {
            sqlx::query_as("SELECT id, org_id, password_hash, role FROM users WHERE email = $1")
                .bind(email)
                .fetch_optional(pool)
                .await
        })?;
        row.map(|(user_id, org_id, password_hash, role)| {
            Ok(UserCredentials {
                user_id: parse_id(&user_id)?,
                org_id: parse_id(&org_id)?,
                password_hash,
                role,
            })
        })
        .transpose()
    }

    pub async fn has_users(&self) -> Result<bool, StoreError> {
        let any: Option<(String,)> = crate::on_pool!(self, |pool| sqlx::query_as(ANY_USER)
            .fetch_optional(pool)
            .await)?;
        Ok(any.is_some())
    }

    pub async fn insert_api_key(
        &self,
        id: Uuid,
        org_id: Uuid,
        key_hash: &str,
    ) -> Result<(), StoreError> {
        crate::on_pool!(self, |pool| {
            sqlx::query("INSERT INTO api_keys (id, org_id, key_hash) VALUES ($1, $2, $3)")
                .bind(id.to_string())
                .bind(org_id.to_string())
                .bind(key_hash)
                .execute(pool)
                .await
                .map(|_| ())
        })?;
        Ok(())
    }

    /// The id of the organisation's API key with this hash, if it has one.
    pub async fn api_key_id(
        &self,
        org_id: Uuid,
        key_hash: &str,
    ) -> Result<Option<Uuid>, StoreError> {
        let row: Option<(String,)> = crate::on_pool!(self, |pool| {
            sqlx::query_as("SELECT id FROM api_keys WHERE org_id = $1 AND key_hash = $2")
                .bind(org_id.to_string())
                .bind(key_hash)
                .fetch_optional(pool)
                .await
        })?;
        row.map(|(id,)| parse_id(&id)).transpose()
    }

    /// The signing key stored under `name`, storing `candidate` first if there is none. Several
    /// processes may race here on one database: the insert does nothing for all but the first, and
    /// every one of them then reads the same key.
    pub async fn signing_key(&self, name: &str, candidate: &[u8]) -> Result<Vec<u8>, StoreError> {
        let secret: Vec<u8> = crate::on_pool!(self, |pool| {
            sqlx::query(
                "INSERT INTO signing_keys (name, secret) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name)
            .bind(candidate)
            .execute(pool)
            .await?;
            sqlx::query_scalar("SELECT secret FROM signing_keys WHERE name = $1")
                .bind(name)
                .fetch_one(pool)
                .await
        })?;
        Ok(secret)
    }

    /// Creates the first organisation and its admin, once in the store's life and only while it
    /// has no users. Returns whether it did.
    ///
    /// One transaction claims the single bootstrap row first. A concurrent bootstrap on PostgreSQL
    /// waits on that row's unique key until this one ends, then finds it taken; on SQLite the
    /// claim makes the transaction the one writer. Users created by other means before it (the
    /// admin CLI) are seen by the check that follows the claim.
    pub async fn bootstrap_admin(
        &self,
        org_name: &str,
        admin: &NewUser<'_>,
    ) -> Result<bool, StoreError> {
        crate::on_pool!(self, |pool| {
            let mut tx = pool.begin().await?;
            let claimed = sqlx::query(
                "INSERT INTO identity_bootstrap (singleton) VALUES (1)
                 ON CONFLICT (singleton) DO NOTHING",
            )
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if !claimed {
                return Ok(false);
            }
            let existing: Option<(String,)> =
                sqlx::query_as(ANY_USER).fetch_optional(&mut *tx).await?;
            if existing.is_some() {
                // Keep the claim: the store has users, so there is nothing left to bootstrap.
                tx.commit().await?;
                return Ok(false);
            }
            sqlx::query(INSERT_ORGANISATION)
                .bind(admin.org_id.to_string())
                .bind(org_name)
                .execute(&mut *tx)
                .await?;
            sqlx::query(INSERT_USER)
                .bind(admin.id.to_string())
                .bind(admin.org_id.to_string())
                .bind(admin.email)
                .bind(admin.password_hash)
                .bind(admin.role)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
        })
    }
}
