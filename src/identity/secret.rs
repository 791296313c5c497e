//! Secrets: fresh random bytes from the operating system, and a wrapper that keeps a secret out of
//! `Debug` output and therefore out of logs.

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

use rand::rngs::OsRng;
use rand::RngCore;

/// What `Debug` shows in place of a secret.
pub(crate) const REDACTED: &str = "[redacted]";

/// `N` bytes from the operating system's generator, for keys and generated passwords.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut bytes = [0; N];
    OsRng.fill_bytes(&mut bytes);
    bytes
}

/// A secret string, such as a password given on the command line. It has no `Display`, and its
/// `Debug` prints `[redacted]`, so logging a struct that holds one cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself: call this only where it is used, never to log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Secret").field(&REDACTED).finish()
    }
}

/// For clap, which parses arguments with `FromStr`.
impl FromStr for Secret {
    type Err = Infallible;

    fn from_str(secret: &str) -> Result<Self, Self::Err> {
        Ok(Self::new(secret))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_should_not_show_a_secret_in_debug_output() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?}"), r#"Secret("[redacted]")"#);
        assert_eq!(secret.expose(), "hunter2");
    }

    #[test]
    fn it_should_draw_different_bytes_each_time() {
        assert_ne!(random_bytes::<32>(), random_bytes::<32>());
    }
}
