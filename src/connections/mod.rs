//! Connections: the credentials a trigger acts with at its provider, e.g. the Typeform access
//! token that registers a form's webhook. A connection belongs to one organisation; no one else
//! sees it, and no one at all reads its credentials back: they are write-only, sealed before they
//! are stored (see [`cipher`]) and opened only where the engine calls the provider.
//!
//! The engine runs without an encryption key: listing and deleting work, while anything that
//! would seal or open credentials answers [`ConnectionError::NotConfigured`].
//!
//! # Layout
//! - [`cipher`]: the key from configuration, and sealing bound to the connection's row.
//! - [`credentials`]: [`Credentials`], a JSON object of secrets that neither logs nor answers show.

pub mod cipher;
pub mod credentials;

use std::sync::Arc;

use chrono::{SubsecRound, Utc};
use uuid::Uuid;

pub use crate::store::connections::Connection;
pub use cipher::EncryptionKey;
pub use credentials::Credentials;

use crate::catalogue::Catalogue;
use crate::identity::Secret;
use crate::providers::ProviderId;
use crate::store::{Store, StoreError};
use cipher::{associated_data, webhook_secret_associated_data, Cipher};

/// The configuration option without which credentials can be neither sealed nor opened.
pub const KEY_OPTION: &str = "TRIGGER_ENGINE_ENCRYPTION_KEY";

/// Why a connection operation was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// The engine has no encryption key, so it can neither store credentials nor read them.
    #[error(
        "connections need {KEY_OPTION} (32 bytes in base64), which this engine was started without"
    )]
    NotConfigured,
    #[error("unknown provider `{0}`")]
    UnknownProvider(String),
    #[error("name must not be empty")]
    EmptyName,
    #[error("credentials must not be empty")]
    EmptyCredentials,
    /// The provider needs this credential (a non-empty string) to act.
    #[error("`{provider_id}` connections need a non-empty string `{name}`")]
    MissingCredential {
        provider_id: String,
        name: &'static str,
    },
    /// No such connection in the caller's organisation (another organisation's included).
    #[error("connection not found")]
    NotFound,
    /// Triggers still use the connection: deleting it would leave them unable to reach their
    /// provider, or to remove what they registered there.
    #[error("connection is used by {triggers} trigger(s); delete them first")]
    InUse { triggers: usize },
    /// The stored credentials do not open with the configured key.
    #[error(
        "credentials of connection {0} do not decrypt (another key configured, or a damaged row)"
    )]
    Undecryptable(Uuid),
    /// The secret of a trigger's registered webhook does not open with the configured key.
    #[error("the webhook secret of trigger {0} does not decrypt (another key configured, or a damaged row)")]
    UndecryptableWebhookSecret(Uuid),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The credentials a provider's connections must hold, because the engine uses them
/// ([`Provider::connection_credentials`]). Other providers' connections may hold any non-empty
/// object.
///
/// [`Provider::connection_credentials`]: crate::providers::Provider::connection_credentials
pub fn required_credentials(provider_id: &str) -> &'static [&'static str] {
    ProviderId::of(provider_id).map_or(&[], |id| id.provider().connection_credentials())
}

/// What a caller asks to create.
#[derive(Debug)]
pub struct NewConnection {
    pub provider_id: String,
    pub name: String,
    pub credentials: Credentials,
}

/// The connections service. Cheap to clone.
#[derive(Clone)]
pub struct Connections {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<Store>,
    cipher: Option<Cipher>,
}

impl Connections {
    /// `key`: `None` when the engine was started without one (see [`KEY_OPTION`]).
    pub fn new(store: Arc<Store>, key: Option<&EncryptionKey>) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                cipher: key.map(Cipher::new),
            }),
        }
    }

    fn cipher(&self) -> Result<&Cipher, ConnectionError> {
        self.inner
            .cipher
            .as_ref()
            .ok_or(ConnectionError::NotConfigured)
    }

    /// Validates and stores a connection of `org_id`, its credentials sealed. Without a key it
    /// stores nothing and answers [`ConnectionError::NotConfigured`], whatever the request.
    pub async fn create(
        &self,
        org_id: Uuid,
        created_by: Uuid,
        new: NewConnection,
    ) -> Result<Connection, ConnectionError> {
        let cipher = self.cipher()?;
        if Catalogue::builtin().triggers_of(&new.provider_id).is_none() {
            return Err(ConnectionError::UnknownProvider(new.provider_id));
        }
        let name = new.name.trim();
        if name.is_empty() {
            return Err(ConnectionError::EmptyName);
        }
        if new.credentials.is_empty() {
            return Err(ConnectionError::EmptyCredentials);
        }
        for &required in required_credentials(&new.provider_id) {
            if new.credentials.get_str(required).is_none_or(str::is_empty) {
                return Err(ConnectionError::MissingCredential {
                    provider_id: new.provider_id,
                    name: required,
                });
            }
        }
        let connection = Connection {
            connection_id: Uuid::new_v4(),
            org_id,
            name: name.to_owned(),
            // Microseconds: what PostgreSQL keeps, so this answer and every later read agree.
            created_at: Utc::now().trunc_subsecs(6),
            created_by,
            provider_id: new.provider_id,
        };
        let aad = associated_data(connection.connection_id, org_id, &connection.provider_id);
        let sealed = cipher.seal(&aad, &new.credentials.to_plaintext());
        self.inner
            .store
            .insert_connection(&connection, &sealed)
            .await?;
        tracing::info!(
            connection_id = %connection.connection_id,
            %org_id,
            provider_id = %connection.provider_id,
            "connection created"
        );
        Ok(connection)
    }

    /// The organisation's connections, oldest first.
    pub async fn list(&self, org_id: Uuid) -> Result<Vec<Connection>, ConnectionError> {
        Ok(self.inner.store.org_connections(org_id).await?)
    }

    /// One connection of the organisation, without its credentials.
    pub async fn find(&self, org_id: Uuid, id: Uuid) -> Result<Connection, ConnectionError> {
        let (connection, _) = self
            .inner
            .store
            .connection(org_id, id)
            .await?
            .ok_or(ConnectionError::NotFound)?;
        Ok(connection)
    }

    /// One connection of the organisation with its credentials opened, for calling its provider.
    pub async fn with_credentials(
        &self,
        org_id: Uuid,
        id: Uuid,
    ) -> Result<(Connection, Credentials), ConnectionError> {
        let cipher = self.cipher()?;
        let (connection, sealed) = self
            .inner
            .store
            .connection(org_id, id)
            .await?
            .ok_or(ConnectionError::NotFound)?;
        let aad = associated_data(id, org_id, &connection.provider_id);
        let credentials = cipher
            .open(&aad, &sealed)
            .ok()
            .and_then(|plaintext| Credentials::from_plaintext(&plaintext))
            .ok_or(ConnectionError::Undecryptable(id))?;
        Ok((connection, credentials))
    }

    /// Keeps the secret of the webhook registered at `provider_id` for a trigger, sealed, in
    /// place of any earlier one.
    pub async fn keep_webhook_secret(
        &self,
        org_id: Uuid,
        trigger_id: Uuid,
        provider_id: &str,
        secret: &Secret,
    ) -> Result<(), ConnectionError> {
        let aad = webhook_secret_associated_data(trigger_id, org_id, provider_id);
        let sealed = self.cipher()?.seal(&aad, secret.expose().as_bytes());
        let now = Utc::now().trunc_subsecs(6);
        self.inner
            .store
            .put_webhook_secret(trigger_id, org_id, provider_id, &sealed, now)
            .await?;
        Ok(())
    }

    /// The secret of the trigger's registered webhook, opened; `None` when it has none.
    pub async fn webhook_secret(
        &self,
        org_id: Uuid,
        trigger_id: Uuid,
    ) -> Result<Option<Secret>, ConnectionError> {
        let Some((provider_id, sealed)) =
            self.inner.store.webhook_secret(trigger_id, org_id).await?
        else {
            return Ok(None);
        };
        let aad = webhook_secret_associated_data(trigger_id, org_id, &provider_id);
        let plaintext = self
            .cipher()?
            .open(&aad, &sealed)
            .map_err(|_| ConnectionError::UndecryptableWebhookSecret(trigger_id))?;
        let secret = String::from_utf8(plaintext)
            .map_err(|_| ConnectionError::UndecryptableWebhookSecret(trigger_id))?;
        Ok(Some(Secret::new(secret)))
    }

    /// Forgets the trigger's webhook secret (its webhook is gone).
    pub async fn forget_webhook_secret(&self, trigger_id: Uuid) -> Result<(), ConnectionError> {
        Ok(self.inner.store.delete_webhook_secret(trigger_id).await?)
    }

    /// Deletes the organisation's connection and its credentials, unless a trigger still uses
    /// it ([`ConnectionError::InUse`]).
    ///
    /// The check reads the trigger read model, so a trigger created with this connection at the
    /// very moment of the delete can slip past it; that trigger then answers 422 naming
    /// `connection_id` when it is enabled, and nothing is left half-registered.
    pub async fn delete(&self, org_id: Uuid, id: Uuid) -> Result<(), ConnectionError> {
        let store = &self.inner.store;
        if store.connection(org_id, id).await?.is_none() {
            return Err(ConnectionError::NotFound);
        }
        let users = store
            .org_trigger_views(org_id, None)
            .await?
            .into_iter()
            .filter(|view| view.record.connection_id == Some(id))
            .count();
        if users > 0 {
            return Err(ConnectionError::InUse { triggers: users });
        }
        if !store.delete_connection(org_id, id).await? {
            return Err(ConnectionError::NotFound);
        }
        tracing::info!(connection_id = %id, %org_id, "connection deleted");
        Ok(())
    }
}
