//! Organisation API keys: `tek_` and 32 random bytes in base64url. A key is shown once; the store
//! keeps only its SHA-256, which is enough for a key of 256 random bits (a slow password hash
//! protects guessable secrets, and a key is not guessable), and lets a key be found by its hash.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};

use super::secret::random_bytes;

/// Marks a string as a trigger-engine key, so that secret scanners and people can recognise one.
pub(crate) const PREFIX: &str = "tek_";

const KEY_BYTES: usize = 32;

/// A new key, in the form the holder presents it.
pub(crate) fn generate() -> String {
    format!(
        "{PREFIX}{}",
        URL_SAFE_NO_PAD.encode(random_bytes::<KEY_BYTES>())
    )
}

/// What the store keeps of a key: the SHA-256 of the whole key, as lower-case hex.
pub(crate) fn hash(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Whether `key` has the shape of a key we issue, so that anything else is refused without a
/// store lookup.
pub(crate) fn is_well_formed(key: &str) -> bool {
    key.strip_prefix(PREFIX).is_some_and(|encoded| {
        URL_SAFE_NO_PAD
            .decode(encoded)
            .is_ok_and(|bytes| bytes.len() == KEY_BYTES)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_should_generate_distinct_well_formed_keys() {
        let (first, second) = (generate(), generate());
        assert_ne!(first, second);
        assert!(first.starts_with("tek_"));
        assert_eq!(first.len(), PREFIX.len() + 43);
        assert!(is_well_formed(&first));
    }

    #[test]
    fn it_should_hash_a_key_to_the_same_hex_every_time() {
        let key = generate();
        assert_eq!(hash(&key), hash(&key));
        assert_eq!(hash(&key).len(), 64);
        assert_ne!(hash(&key), hash(&generate()));
        assert_eq!(
            hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn it_should_refuse_keys_of_another_shape() {
        let key = generate();
        for other in [
            "",
            "tek_",
            "tek_abc",
            &key[PREFIX.len()..],
            &format!("sk_{}", &key[4..]),
        ] {
            assert!(!is_well_formed(other), "{other:?} was accepted");
        }
    }
}
