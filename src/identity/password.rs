//! Password hashing: argon2id with the `argon2` crate's default parameters (19 MiB of memory, 2
//! passes, 1 lane: OWASP's recommended minimum), a fresh random salt for every password, stored as
//! a PHC string. The PHC string records the algorithm, parameters and salt beside the hash, so
//! stronger parameters later leave existing hashes verifiable.
//!
//! Hashing takes tens of milliseconds of CPU by design, so the async functions run it on tokio's
//! blocking pool rather than stall the thread serving other requests.

use std::num::NonZeroUsize;
use std::sync::OnceLock;

use argon2::password_hash::{Error as HashError, PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use tokio::sync::Semaphore;

use super::secret::random_bytes;
use super::IdentityError;

/// The argon2id hash of a random password nobody knows, made with the default parameters. A grant
/// for an unknown email is checked against it, so that it costs as much as a grant for a known
/// one and the response time does not tell an attacker which emails are registered.
pub(crate) const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$tUIrYSRa1/Q4l7zNweulKg$mx9fZD9gxYG1MUZx+VVl9/j0z2ITGI1FlCFj1gtFqo0";

/// The hash of `password` as a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`).
pub(crate) async fn hash(password: &str) -> Result<String, IdentityError> {
    let password = password.to_owned();
    blocking(move || hash_now(&password)).await
}

/// Whether `password` matches the PHC string `phc`. A mismatch is `Ok(false)`; an error means the
/// stored hash itself is unreadable.
pub(crate) async fn verify(password: &str, phc: String) -> Result<bool, IdentityError> {
    let password = password.to_owned();
    blocking(move || verify_now(&password, &phc)).await
}

/// A password for the first-run admin: 18 random bytes (144 bits), 24 characters of base64url.
pub(crate) fn generate() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<18>())
}

fn hash_now(password: &str) -> Result<String, IdentityError> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|hash| hash.to_string())
        .map_err(|error| IdentityError::Hashing(error.to_string()))
}

fn verify_now(password: &str, phc: &str) -> Result<bool, IdentityError> {
    // The parameters come from the PHC string, not from `Argon2::default()`.
    match Argon2::default().verify_password(password.as_bytes(), phc) {
        Ok(()) => Ok(true),
        Err(HashError::PasswordInvalid) => Ok(false),
        Err(error) => Err(IdentityError::Hashing(error.to_string())),
    }
}

/// Runs one hash or verification on the blocking pool, at most one per CPU at a time. Each takes
/// 19 MiB while it runs, and tokio's blocking pool grows to 512 threads: a burst of sign-ins left
/// unbounded could take gigabytes. More at once than there are CPUs would not finish sooner, so
/// the rest wait their turn.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, IdentityError> + Send + 'static,
) -> Result<T, IdentityError> {
    static SLOTS: OnceLock<Semaphore> = OnceLock::new();
    let slots = SLOTS.get_or_init(|| {
        Semaphore::new(std::thread::available_parallelism().map_or(1, NonZeroUsize::get))
    });
    let _slot = slots
        .acquire()
        .await
        .map_err(|error| IdentityError::Hashing(error.to_string()))?;
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|error| IdentityError::Hashing(format!("hashing task failed: {error}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn it_should_verify_the_password_it_hashed_and_no_other() {
        let phc = hash("correct horse").await.unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"), "{phc}");
        assert!(verify("correct horse", phc.clone()).await.unwrap());
        assert!(!verify("correct horse ", phc.clone()).await.unwrap());
        assert!(!verify("", phc).await.unwrap());
    }

    #[tokio::test]
    async fn it_should_salt_each_hash_afresh() {
        let (first, second) = (hash("same").await.unwrap(), hash("same").await.unwrap());
        assert_ne!(first, second);
    }

    #[tokio::test]
    async fn it_should_report_an_unreadable_hash_as_an_error_not_a_mismatch() {
        let result = verify("anything", "not a phc string".into()).await;
        assert!(matches!(result, Err(IdentityError::Hashing(_))));
    }

    #[tokio::test]
    async fn it_should_make_the_dummy_hash_as_costly_as_a_real_one() {
        let parameters = |phc: &str| phc.split('$').nth(3).map(str::to_owned);
        let real = hash("anything").await.unwrap();
        assert!(real.starts_with("$argon2id$v=19$"));
        assert!(DUMMY_HASH.starts_with("$argon2id$v=19$"));
        assert_eq!(parameters(DUMMY_HASH), parameters(&real));
        assert!(!verify("", DUMMY_HASH.into()).await.unwrap());
    }

    #[test]
    fn it_should_generate_distinct_passwords() {
        let password = generate();
        assert_eq!(password.len(), 24);
        assert_ne!(password, generate());
    }
}
