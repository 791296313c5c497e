//! Typed `trigger_config`s: each provider reads its config into a struct of its own
//! (`deny_unknown_fields`), decoded here, rather than looking fields up by name where it uses them.

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use crate::catalogue::ConfigError;

/// Fields any trigger's config may carry whatever its provider, read by the engine itself
/// rather than by the provider; they are left out before a provider's struct is decoded.
const SHARED_FIELDS: &[&str] = &["filter"];

/// Decodes a stored or submitted config (`null` and absent mean `{}`) into a provider's struct.
///
/// The schema has been checked first, so a failure here is a config the schema allows and the
/// struct does not: a bug of the provider's, reported without quoting the value (serde's
/// messages do, and the value may be a secret).
pub fn decode<T: DeserializeOwned>(config: Option<&Value>) -> Result<T, ConfigError> {
    let mut fields = match config {
        None | Some(Value::Null) => serde_json::Map::new(),
        Some(Value::Object(fields)) => fields.clone(),
        Some(_) => {
            return Err(ConfigError {
                field: "trigger_config".into(),
                reason: "must be an object".into(),
            })
        }
    };
    for shared in SHARED_FIELDS {
        fields.remove(*shared);
    }
    serde_json::from_value(Value::Object(fields)).map_err(|_| ConfigError {
        field: "trigger_config".into(),
        reason: "does not have the shape this trigger reads".into(),
    })
}

/// A signing secret, or several while one is being rotated: the sender may sign with either.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(from = "OneOrMany")]
pub struct SigningSecrets(Vec<String>);

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl From<OneOrMany> for SigningSecrets {
    fn from(secrets: OneOrMany) -> Self {
        match secrets {
            OneOrMany::One(secret) => SigningSecrets(vec![secret]),
            OneOrMany::Many(secrets) => SigningSecrets(secrets),
        }
    }
}

impl SigningSecrets {
    pub fn one(secret: impl Into<String>) -> Self {
        SigningSecrets(vec![secret.into()])
    }

    /// Every secret, to try each in turn.
    pub fn as_strs(&self) -> Vec<&str> {
        self.0.iter().map(String::as_str).collect()
    }

    /// The first, for a provider that is given one secret (Typeform's webhook registration).
    pub fn first(&self) -> Option<&str> {
        self.0.first().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Milliseconds between polls: stored configs carry it as a string (`"10000"`) or a number.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum PollingFrequency {
    Millis(u64),
    Text(String),
}

impl PollingFrequency {
    /// The milliseconds it says; `None` for a string that is not a number.
    pub fn millis(&self) -> Option<u64> {
        match self {
            PollingFrequency::Millis(millis) => Some(*millis),
            PollingFrequency::Text(text) => text.parse().ok(),
        }
    }
}

/// The secrets of an optional `signing_secret`: none when it is absent.
pub fn secrets_of(secrets: &Option<SigningSecrets>) -> Vec<&str> {
    secrets
        .as_ref()
        .map(SigningSecrets::as_strs)
        .unwrap_or_default()
}

/// True when `wanted` is unset, or names `actual` (case aside: providers' ids and names are
/// case-insensitive, `Octo-Org/Hello` is `octo-org/hello`).
pub fn narrows(wanted: Option<&str>, actual: Option<&str>) -> bool {
    match wanted {
        None => true,
        Some(wanted) => actual.is_some_and(|actual| actual.eq_ignore_ascii_case(wanted)),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Example {
        signing_secret: Option<SigningSecrets>,
    }

    #[test]
    fn it_should_read_one_secret_or_several_and_leave_shared_fields_to_the_engine() {
        let one: Example = decode(Some(&json!({"signing_secret": "a", "filter": "true"}))).unwrap();
        assert_eq!(secrets_of(&one.signing_secret), vec!["a"]);
        let many: Example = decode(Some(&json!({"signing_secret": ["a", "b"]}))).unwrap();
        assert_eq!(secrets_of(&many.signing_secret), vec!["a", "b"]);
        let none: Example = decode(None).unwrap();
        assert!(secrets_of(&none.signing_secret).is_empty());
    }

    #[test]
    fn it_should_refuse_a_field_the_struct_does_not_know_without_quoting_values() {
        let error = decode::<Example>(Some(&json!({"signing_secret": 7}))).unwrap_err();
        assert_eq!(error.field, "trigger_config");
        assert!(!error.reason.contains('7'), "{}", error.reason);
        assert!(decode::<Example>(Some(&json!({"other": 1}))).is_err());
    }
}
