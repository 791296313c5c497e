//! Credentials at rest: XChaCha20-Poly1305 under the key from `TRIGGER_ENGINE_ENCRYPTION_KEY`.
//!
//! A sealed value is `[format][nonce][ciphertext and tag]`:
//! - `format` is one byte, [`FORMAT_V1`]; a later format (a key id for rotation, say) gets another
//!   number, and old rows stay readable;
//! - the nonce is 24 random bytes per record. XChaCha20's 192-bit nonce is large enough to draw at
//!   random for every record without counting anything, where a 96-bit nonce (AES-GCM,
//!   ChaCha20-Poly1305) would need care after some 2^32 records under one key;
//! - the associated data is [`associated_data`]: the connection's id, organisation and provider.
//!   It is not stored, it is recomputed from the row, so a sealed value copied into another
//!   connection's row (or another organisation's) fails to open instead of lending its
//!   credentials there.

use std::fmt;
use std::str::FromStr;

use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use uuid::Uuid;

use crate::identity::secret::{random_bytes, REDACTED};

/// Bytes in a key: XChaCha20-Poly1305 takes 256-bit keys.
pub const KEY_BYTES: usize = 32;

/// The first byte of every sealed value written today.
pub const FORMAT_V1: u8 = 1;

const NONCE_BYTES: usize = 24;

/// The configured key. `Debug` shows `[redacted]`, so the configuration can be logged whole.
#[derive(Clone)]
pub struct EncryptionKey([u8; KEY_BYTES]);

impl EncryptionKey {
    pub fn from_bytes(bytes: [u8; KEY_BYTES]) -> Self {
        Self(bytes)
    }
}

impl fmt::Debug for EncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EncryptionKey").field(&REDACTED).finish()
    }
}

/// Standard base64, padded or not. The error never quotes the value: it is a secret.
impl FromStr for EncryptionKey {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| {
                format!("expected {KEY_BYTES} bytes in base64 (e.g. `openssl rand -base64 32`); the value is not base64")
            })?;
        let bytes: [u8; KEY_BYTES] = decoded.try_into().map_err(|bytes: Vec<u8>| {
            format!(
                "expected {KEY_BYTES} bytes in base64 (e.g. `openssl rand -base64 32`); the value decodes to {} bytes",
                bytes.len()
            )
        })?;
        Ok(Self(bytes))
    }
}

/// The sealed value did not open: another key, another row's value, or a damaged one. Which of
/// them is deliberately not told apart (the AEAD cannot, and should not, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("credentials do not decrypt: wrong key, or sealed for another connection, or damaged")]
pub struct OpenError;

/// Seals and opens credentials with one key.
pub struct Cipher {
    aead: XChaCha20Poly1305,
}

impl fmt::Debug for Cipher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cipher").finish_non_exhaustive()
    }
}

impl Cipher {
    pub fn new(key: &EncryptionKey) -> Self {
        Self {
            aead: XChaCha20Poly1305::new(Key::from_slice(&key.0)),
        }
    }

    /// Encrypts `plaintext` for the connection that `aad` names, under a fresh random nonce.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce = random_bytes::<NONCE_BYTES>();
        let ciphertext = self
            .aead
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad,
                },
            )
            // Encryption fails only for inputs beyond 256 GiB; a request body is at most 1 MiB.
            .expect("XChaCha20-Poly1305 encrypts any buffer under 256 GiB");
        let mut sealed = Vec::with_capacity(1 + NONCE_BYTES + ciphertext.len());
        sealed.push(FORMAT_V1);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// Decrypts what [`seal`](Self::seal) made with the same key and the same `aad`.
    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, OpenError> {
        let (&format, rest) = sealed.split_first().ok_or(OpenError)?;
        if format != FORMAT_V1 || rest.len() < NONCE_BYTES {
            return Err(OpenError);
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_BYTES);
        self.aead
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad,
                },
            )
            .map_err(|_| OpenError)
    }
}

/// What a connection's credentials are bound to: changing any of these in the row makes the
/// sealed credentials fail to open.
pub fn associated_data(connection_id: Uuid, org_id: Uuid, provider_id: &str) -> Vec<u8> {
    format!("trigger-engine/connection-credentials/v1\0{connection_id}\0{org_id}\0{provider_id}")
        .into_bytes()
}

/// What a registered webhook's secret is bound to, as [`associated_data`] binds credentials: a
/// different domain string, so a connection's sealed credentials never open as a secret.
pub fn webhook_secret_associated_data(
    trigger_id: Uuid,
    org_id: Uuid,
    provider_id: &str,
) -> Vec<u8> {
    format!("trigger-engine/webhook-secret/v1\0{trigger_id}\0{org_id}\0{provider_id}").into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cipher() -> Cipher {
        Cipher::new(&EncryptionKey::from_bytes([7; KEY_BYTES]))
    }

    #[test]
    fn it_should_open_what_it_sealed_and_nothing_else() {
        let (id, org) = (Uuid::new_v4(), Uuid::new_v4());
        let aad = associated_data(id, org, "typeform");
        let sealed = cipher().seal(&aad, b"{\"access_token\":\"tfp_secret\"}");
        assert!(!sealed
            .windows(b"tfp_secret".len())
            .any(|w| w == b"tfp_secret"));
        assert_eq!(
            cipher().open(&aad, &sealed).unwrap(),
            b"{\"access_token\":\"tfp_secret\"}"
        );
        // Another connection, organisation or provider; another key; a flipped bit.
        for other in [
            associated_data(Uuid::new_v4(), org, "typeform"),
            associated_data(id, Uuid::new_v4(), "typeform"),
            associated_data(id, org, "stripe"),
        ] {
            assert_eq!(cipher().open(&other, &sealed), Err(OpenError));
        }
        let other_key = Cipher::new(&EncryptionKey::from_bytes([8; KEY_BYTES]));
        assert_eq!(other_key.open(&aad, &sealed), Err(OpenError));
        let mut damaged = sealed.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert_eq!(cipher().open(&aad, &damaged), Err(OpenError));
        assert_eq!(cipher().open(&aad, &[]), Err(OpenError));
    }

    #[test]
    fn it_should_draw_a_fresh_nonce_for_every_record() {
        let aad = associated_data(Uuid::nil(), Uuid::nil(), "typeform");
        assert_ne!(cipher().seal(&aad, b"same"), cipher().seal(&aad, b"same"));
    }

    #[test]
    fn it_should_read_a_32_byte_base64_key_and_never_show_it() {
        let text = base64::engine::general_purpose::STANDARD.encode([42u8; KEY_BYTES]);
        let key: EncryptionKey = text.parse().unwrap();
        assert_eq!(format!("{key:?}"), r#"EncryptionKey("[redacted]")"#);
        let short = base64::engine::general_purpose::STANDARD.encode([42u8; 16]);
        let error = short.parse::<EncryptionKey>().unwrap_err();
        assert!(error.contains("16 bytes"), "{error}");
        assert!(!error.contains(&short), "{error}");
        let error = "not base64!".parse::<EncryptionKey>().unwrap_err();
        assert!(!error.contains("not base64!"), "{error}");
    }
}
