//! [`Credentials`]: what a connection holds to act at its provider, kept out of logs and answers.

use std::fmt;

use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

use crate::identity::secret::REDACTED;

/// A connection's credentials: a JSON object of secrets (`{"access_token": "..."}`). It has no
/// `Serialize`, so no answer can include it, and its `Debug` prints `[redacted]`, so no log line
/// can; the only ways out are [`Credentials::get_str`] where a secret is used, and the sealed
/// bytes [`Credentials::to_plaintext`] gives the cipher.
#[derive(Clone, PartialEq)]
pub struct Credentials(Map<String, Value>);

impl Credentials {
    pub fn new(fields: Map<String, Value>) -> Self {
        Self(fields)
    }

    /// One credential, when it is a string: call this only where it is used, never to log it.
    pub fn get_str(&self, name: &str) -> Option<&str> {
        self.0.get(name).and_then(Value::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The JSON text the cipher seals.
    pub(super) fn to_plaintext(&self) -> Vec<u8> {
        serde_json::to_vec(&self.0).expect("a JSON map always serialises")
    }

    /// Reads back what [`to_plaintext`](Self::to_plaintext) gave, once opened. `None` when it is
    /// not a JSON object (which the AEAD makes impossible short of a bug).
    pub(super) fn from_plaintext(plaintext: &[u8]) -> Option<Self> {
        serde_json::from_slice(plaintext).ok().map(Self)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Credentials").field(&REDACTED).finish()
    }
}

/// Accepts a JSON object only. The error never quotes what was sent instead: serde's own
/// ("invalid type: string \"hunter2\", expected a map") would echo a secret into the 422.
impl<'de> Deserialize<'de> for Credentials {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match Value::deserialize(deserializer)? {
            Value::Object(fields) => Ok(Self(fields)),
            _ => Err(serde::de::Error::custom("must be a JSON object")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_should_not_show_credentials_in_debug_output() {
        let credentials: Credentials =
            serde_json::from_value(serde_json::json!({"access_token": "tfp_secret"})).unwrap();
        assert_eq!(format!("{credentials:?}"), r#"Credentials("[redacted]")"#);
        assert_eq!(credentials.get_str("access_token"), Some("tfp_secret"));
    }

    #[test]
    fn it_should_refuse_anything_but_an_object_without_quoting_it() {
        let error = serde_json::from_value::<Credentials>(serde_json::json!("tfp_secret"))
            .unwrap_err()
            .to_string();
        assert!(!error.contains("tfp_secret"), "{error}");
        assert!(error.contains("must be a JSON object"), "{error}");
    }
}
