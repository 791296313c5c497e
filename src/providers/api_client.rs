//! What the clients of providers' APIs share: one way to build the HTTP client, read a bounded
//! answer, quote a bounded message and report a failed connection.
//!
//! These calls run while the client of `POST /triggers/{id}/enable` (or `disable`, `delete`)
//! waits, so they are bounded; the providers answer them in well under a second, and 10 s leaves
//! room for a slow moment without holding the client past the timeouts HTTP clients commonly use
//! (30 s and more). The API base URLs are the operator's, so these clients are not behind the
//! outbound guard, which is for destinations a tenant chooses.

use std::time::Duration;

/// How long to wait for a provider to accept a connection.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a whole call may take.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of a provider's error message an error quotes: enough for "Hook already exists on
/// this repository", not enough to carry a page of HTML from a proxy in between.
pub const MESSAGE_CHARS: usize = 200;

/// The largest answer read. A full page of 100 endpoints or hooks is about 100 KB; anything far
/// larger is not the provider's answer, and reading it whole would let a server fill our memory.
pub const BODY_BYTES: usize = 1 << 20;

/// A client builder with the bounds above, no redirects (the APIs do not redirect where these
/// calls go; a redirect would be somewhere else asking for the credential) and our user agent
/// (GitHub refuses requests without one).
pub fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(CALL_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("trigger-engine/", env!("CARGO_PKG_VERSION")))
}

/// The answer's body, or `None` past [`BODY_BYTES`].
pub async fn read_body(mut response: reqwest::Response) -> Result<Option<Vec<u8>>, reqwest::Error> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > BODY_BYTES {
            return Ok(None);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(Some(body))
}

/// A provider's message, cut at [`MESSAGE_CHARS`].
pub fn cut(text: &str) -> String {
    text.chars().take(MESSAGE_CHARS).collect()
}

/// A failed connection's reason, without the URL: it is ours to know, and the caller already
/// knows what it asked for.
pub fn unreachable(error: reqwest::Error) -> String {
    error.without_url().to_string()
}

/// ` (code: message)`, ` (code)`, ` (message)` or nothing, after "Stripe answered 401".
pub fn describe(code: Option<&str>, message: Option<&str>) -> String {
    match (code, message) {
        (Some(code), Some(message)) => format!(" ({code}: {message})"),
        (Some(code), None) => format!(" ({code})"),
        (None, Some(message)) => format!(" ({message})"),
        (None, None) => String::new(),
    }
}
