//! GitHub's repository webhooks API: create-or-update the hook a trigger receives a repository's
//! events at, and delete it.
//!
//! - `GET {api}/repos/{owner}/{repo}/hooks?per_page=100` lists the repository's hooks, paged by
//!   `Link: <...>; rel="next"`.
//! - `PATCH {api}/repos/{owner}/{repo}/hooks/{id}` updates the hook already delivering to our URL;
//!   `POST {api}/repos/{owner}/{repo}/hooks` creates one when there is none. GitHub refuses a
//!   second hook to the same URL (422), so a hook is found by its URL: calling
//!   [`Client::put_hook`] twice leaves one hook.
//! - `DELETE {api}/repos/{owner}/{repo}/hooks/{id}` removes it; a 404 means it is already gone.
//!
//! Every call sends the connection's access token as a bearer, the media type and the API version
//! GitHub documents. The token and the signing secret are never logged; failures carry GitHub's
//! status and (bounded) message.

use std::fmt;
use std::str::FromStr;

use reqwest::header::{HeaderMap, HeaderValue, ACCEPT, LINK};
use reqwest::{Method, StatusCode, Url};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::identity::Secret;
use crate::providers::api_client::{self, cut, BODY_BYTES};

/// The REST API version these calls are written against (GitHub's `X-GitHub-Api-Version`).
const API_VERSION: &str = "2022-11-28";

/// The media type GitHub recommends for its REST API.
const MEDIA_TYPE: &str = "application/vnd.github+json";

/// GitHub's largest page (`per_page` is at most 100).
const PAGE_SIZE: u32 = 100;

/// GitHub allows 20 hooks per event on a repository, so a page or two holds any real repository's
/// hooks. 20 pages (2,000 hooks) is far past that, and stops a server whose `next` never ends
/// from holding an enable forever.
const MAX_PAGES: usize = 20;

/// GitHub's longest account name, and its longest repository name.
const OWNER_CHARS: usize = 39;
const NAME_CHARS: usize = 100;

/// Why a call to GitHub failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GitHubError {
    /// GitHub answered, and not with success. GitHub answers 404, not 403, for a repository the
    /// token may not see, so a 404 means "no such repository, or not for this token".
    #[error("GitHub answered {status}{}", api_client::describe(.message.as_deref(), .errors.as_deref()))]
    Refused {
        status: u16,
        /// GitHub's `message`, e.g. `Bad credentials`, cut at [`MESSAGE_CHARS`].
        message: Option<String>,
        /// What the `errors` of a 422 say, one after the other, cut at [`MESSAGE_CHARS`].
        errors: Option<String>,
    },
    /// No answer: the connection failed or timed out.
    #[error("GitHub could not be reached: {0}")]
    Unreachable(String),
    /// GitHub answered with success, but not with what its API documents.
    #[error("GitHub's answer is not what its API documents: {0}")]
    Malformed(String),
}


/// A repository, `owner/name`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Repository {
    pub owner: String,
    pub name: String,
}

/// Which half of `owner/name` a [`RepositoryError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RepositoryPart {
    Owner,
    Name,
}

impl fmt::Display for RepositoryPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Owner => "owner",
            Self::Name => "name",
        })
    }
}

/// Why a string is not a repository.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepositoryError {
    #[error("a repository is written owner/name, with exactly one '/'")]
    NotOwnerSlashName,
    #[error("the repository's {0} is empty")]
    Empty(RepositoryPart),
    #[error("the repository's {part} is longer than GitHub allows ({max} characters)")]
    TooLong { part: RepositoryPart, max: usize },
    #[error("the repository's {part} may hold letters, digits, '.', '-' and '_', not {found:?}")]
    Character { part: RepositoryPart, found: char },
    /// `.` and `..` would vanish from the request's path.
    #[error("the repository's {0} cannot be '.' or '..'")]
    Dots(RepositoryPart),
}

impl FromStr for Repository {
    type Err = RepositoryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let mut parts = text.split('/');
        let (Some(owner), Some(name), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(RepositoryError::NotOwnerSlashName);
        };
        check_part(owner, RepositoryPart::Owner, OWNER_CHARS)?;
        check_part(name, RepositoryPart::Name, NAME_CHARS)?;
        Ok(Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }
}

fn check_part(part: &str, which: RepositoryPart, max: usize) -> Result<(), RepositoryError> {
    if part.is_empty() {
        return Err(RepositoryError::Empty(which));
    }
    if let Some(found) = part
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return Err(RepositoryError::Character { part: which, found });
    }
    if part.len() > max {
        return Err(RepositoryError::TooLong { part: which, max });
    }
    if part == "." || part == ".." {
        return Err(RepositoryError::Dots(which));
    }
    Ok(())
}

impl fmt::Display for Repository {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

/// The `config` of a hook we write.
#[derive(Serialize)]
struct Config<'a> {
    url: &'a str,
    content_type: &'static str,
    secret: &'a str,
    insecure_ssl: &'static str,
}

/// The body of a create (with `name`) or an update (without).
#[derive(Serialize)]
struct HookBody<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'static str>,
    active: bool,
    events: [&'a str; 1],
    config: Config<'a>,
}

/// A hook as GitHub answers it; only the fields the engine reads.
#[derive(Deserialize)]
struct Hook {
    id: u64,
    #[serde(default)]
    config: HookConfig,
}

/// Hooks of GitHub's older integrations have no `url` in their config.
#[derive(Deserialize, Default)]
struct HookConfig {
    url: Option<String>,
}

/// A client of one GitHub API base URL. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
}

impl Client {
    pub fn new(base: Url) -> Self {
        let mut headers = HeaderMap::new();
        headers.insert(ACCEPT, HeaderValue::from_static(MEDIA_TYPE));
        headers.insert(
            "x-github-api-version",
            HeaderValue::from_static(API_VERSION),
        );
        let http = api_client::builder()
            // No redirects (the builder's): the API answers a renamed repository with one,
            // which may send the token elsewhere; a refused 301 says the configured repository
            // should be updated.
            .default_headers(headers)
            .build()
            .expect("a reqwest client with rustls builds");
        Self { http, base }
    }

    /// Makes the repository's hook to `url` active, delivering `event` signed with `secret`:
    /// updates the hook already delivering to `url`, or creates it. Returns the hook's id.
    #[tracing::instrument(skip_all, fields(repository = %repository, event = %event))]
    pub async fn put_hook(
        &self,
        token: &Secret,
        repository: &Repository,
        url: &Url,
        event: &str,
        secret: &Secret,
    ) -> Result<u64, GitHubError> {
        let existing = self.hook_to(token, repository, url).await?;
        let body = HookBody {
            name: existing.is_none().then_some("web"),
            active: true,
            events: [event],
            config: Config {
                url: url.as_str(),
                content_type: "json",
                secret: secret.expose(),
                // "0": GitHub checks our certificate; deliveries carry repository content.
                insecure_ssl: "0",
            },
        };
        let request = match existing {
            Some(id) => self.request(Method::PATCH, token, repository, Some(id)),
            None => self.request(Method::POST, token, repository, None),
        };
        let response = request.json(&body).send().await.map_err(unreachable)?;
        if !response.status().is_success() {
            return Err(refused(response).await);
        }
        let hook: Hook = read_json(response, "the hook").await?;
        tracing::info!(
            hook_id = hook.id,
            updated = existing.is_some(),
            "GitHub hook registered"
        );
        Ok(hook.id)
    }

    /// Deletes the hook; one that is already gone (404) counts as deleted.
    #[tracing::instrument(skip_all, fields(repository = %repository, hook_id = hook_id))]
    pub async fn delete_hook(
        &self,
        token: &Secret,
        repository: &Repository,
        hook_id: u64,
    ) -> Result<(), GitHubError> {
        let response = self
            .request(Method::DELETE, token, repository, Some(hook_id))
            .send()
            .await
            .map_err(unreachable)?;
        if response.status().is_success() || response.status() == StatusCode::NOT_FOUND {
            tracing::info!(status = %response.status(), "GitHub hook removed");
            return Ok(());
        }
        Err(refused(response).await)
    }

    /// The id of the repository's hook delivering to `url`, if it has one, from every page.
    async fn hook_to(
        &self,
        token: &Secret,
        repository: &Repository,
        url: &Url,
    ) -> Result<Option<u64>, GitHubError> {
        let mut request = self
            .request(Method::GET, token, repository, None)
            .query(&[("per_page", PAGE_SIZE)]);
        for _ in 0..MAX_PAGES {
            let response = request.send().await.map_err(unreachable)?;
            if !response.status().is_success() {
                return Err(refused(response).await);
            }
            let next = next_page(response.headers());
            let hooks: Vec<Hook> = read_json(response, "a page of hooks").await?;
            let found = hooks.iter().find(|hook| {
                // As URLs, so that GitHub writing ours in another spelling still matches.
                hook.config
                    .url
                    .as_deref()
                    .and_then(|u| Url::parse(u).ok())
                    .as_ref()
                    == Some(url)
            });
            if let Some(hook) = found {
                return Ok(Some(hook.id));
            }
            let Some(next) = next else {
                return Ok(None);
            };
            request = self.next_request(token, &next)?;
        }
        Err(GitHubError::Malformed(format!(
            "the hooks go on past {MAX_PAGES} pages"
        )))
    }

    /// The request for a `next` link, which must be on our API's origin: the token goes with it.
    fn next_request(
        &self,
        token: &Secret,
        next: &str,
    ) -> Result<reqwest::RequestBuilder, GitHubError> {
        match Url::parse(next) {
            Ok(next) if next.origin() == self.base.origin() => {
                Ok(self.http.get(next).bearer_auth(token.expose()))
            }
            _ => Err(GitHubError::Malformed(
                "the next page of hooks is not on the API's origin".into(),
            )),
        }
    }

    /// A request to `{base}/repos/{owner}/{repo}/hooks[/{hook_id}]`.
    fn request(
        &self,
        method: Method,
        token: &Secret,
        repository: &Repository,
        hook_id: Option<u64>,
    ) -> reqwest::RequestBuilder {
        let mut url = self.base.clone();
        // Each part is pushed as one path segment, percent-encoded: a name cannot add segments.
        url.path_segments_mut()
            .expect("an http(s) URL has path segments")
            .pop_if_empty()
            .extend(["repos", &repository.owner, &repository.name, "hooks"])
            .extend(hook_id.map(|id| id.to_string()));
        self.http.request(method, url).bearer_auth(token.expose())
    }
}

/// The `rel="next"` target of a `Link` header (RFC 8288), as GitHub writes it:
/// `<https://api.github.com/...&page=2>; rel="next", <...>; rel="last"`.
fn next_page(headers: &HeaderMap) -> Option<String> {
    let link = headers.get(LINK)?.to_str().ok()?;
    link.split(',').find_map(|value| {
        let (target, params) = value.trim().split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|param| {
            let Some((name, rels)) = param.split_once('=') else {
                return false;
            };
            name.trim().eq_ignore_ascii_case("rel")
                && rels
                    .trim()
                    .trim_matches('"')
                    .split_ascii_whitespace()
                    .any(|rel| rel.eq_ignore_ascii_case("next"))
        });
        is_next.then(|| target.to_owned())
    })
}

/// Reads a success answer as `T`.
async fn read_json<T: DeserializeOwned>(
    response: reqwest::Response,
    what: &str,
) -> Result<T, GitHubError> {
    let body = read_body(response)
        .await?
        .ok_or_else(|| GitHubError::Malformed(format!("{what} is over {BODY_BYTES} bytes")))?;
    // serde's message names the field or type it expected, and quotes a value only where our
    // types wanted something else: GitHub never answers the secret (it shows "********").
    serde_json::from_slice(&body).map_err(|e| GitHubError::Malformed(cut(&format!("{what}: {e}"))))
}

/// The body, or `None` past [`BODY_BYTES`].
async fn read_body(response: reqwest::Response) -> Result<Option<Vec<u8>>, GitHubError> {
    api_client::read_body(response).await.map_err(unreachable)
}

fn unreachable(error: reqwest::Error) -> GitHubError {
    GitHubError::Unreachable(api_client::unreachable(error))
}

/// GitHub's error body is `{"message", "documentation_url", "errors": [...]}`; anything else is
/// reported by its status alone.
async fn refused(response: reqwest::Response) -> GitHubError {
    #[derive(Deserialize)]
    struct ErrorBody {
        message: Option<String>,
        #[serde(default)]
        errors: Vec<Value>,
    }
    let status = response.status().as_u16();
    let body = match read_body(response).await {
        Ok(Some(body)) => serde_json::from_slice::<ErrorBody>(&body).ok(),
        _ => None,
    };
    let (message, errors) = body.map_or((None, None), |body| {
        (body.message.map(|m| cut(&m)), summarise(&body.errors))
    });
    let error = GitHubError::Refused {
        status,
        message,
        errors,
    };
    tracing::warn!(%error, "GitHub refused a hook call");
    error
}

/// The `errors` of a 422, one after the other: each one's `message` where it has one, else what
/// it names (`Hook.config missing_field`). GitHub also sends plain strings there.
fn summarise(errors: &[Value]) -> Option<String> {
    let described: Vec<String> = errors
        .iter()
        .filter_map(|error| match error {
            Value::String(text) => Some(text.clone()),
            Value::Object(error) => {
                if let Some(message) = error.get("message").and_then(Value::as_str) {
                    return Some(message.to_owned());
                }
                let named = ["resource", "field"]
                    .iter()
                    .filter_map(|key| error.get(*key).and_then(Value::as_str))
                    .collect::<Vec<_>>()
                    .join(".");
                let code = error
                    .get("code")
                    .and_then(Value::as_str)
                    .unwrap_or("invalid");
                Some(format!("{named} {code}").trim().to_owned())
            }
            _ => None,
        })
        .collect();
    (!described.is_empty()).then(|| cut(&described.join("; ")))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::providers::api_client::MESSAGE_CHARS;

    fn repository(owner: &str, name: &str) -> Repository {
        Repository {
            owner: owner.into(),
            name: name.into(),
        }
    }

    #[test]
    fn it_should_read_owner_slash_name() {
        assert_eq!(
            "octo-org/hello.world_2".parse::<Repository>(),
            Ok(repository("octo-org", "hello.world_2"))
        );
        assert_eq!(
            "octo-org/hello.world_2"
                .parse::<Repository>()
                .unwrap()
                .to_string(),
            "octo-org/hello.world_2"
        );
    }

    #[test]
    fn it_should_say_what_is_wrong_with_a_repository() {
        use RepositoryError::*;
        use RepositoryPart::*;
        let long = format!("o/{}", "n".repeat(101));
        let cases = [
            ("octo", NotOwnerSlashName),
            ("a/b/c", NotOwnerSlashName),
            ("/b", Empty(Owner)),
            ("a/", Empty(Name)),
            (
                "a b/c",
                Character {
                    part: Owner,
                    found: ' ',
                },
            ),
            (
                "a/c%2F",
                Character {
                    part: Name,
                    found: '%',
                },
            ),
            (
                "a/ü",
                Character {
                    part: Name,
                    found: 'ü',
                },
            ),
            ("../c", Dots(Owner)),
            ("a/.", Dots(Name)),
            (
                long.as_str(),
                TooLong {
                    part: Name,
                    max: 100,
                },
            ),
        ];
        for (text, expected) in cases {
            assert_eq!(text.parse::<Repository>(), Err(expected), "{text:?}");
        }
        assert_eq!(
            "a b/c".parse::<Repository>().unwrap_err().to_string(),
            "the repository's owner may hold letters, digits, '.', '-' and '_', not ' '"
        );
    }

    #[test]
    fn it_should_keep_each_part_of_the_hook_path_one_segment_and_send_what_github_asks() {
        let client = Client::new("http://127.0.0.1:9/api/v3/".parse().unwrap());
        let request = client
            .request(
                Method::DELETE,
                &Secret::new("gho_t"),
                &repository("a/../b", "c?d#e"),
                Some(7),
            )
            .build()
            .unwrap();
        assert_eq!(
            request.url().as_str(),
            "http://127.0.0.1:9/api/v3/repos/a%2F..%2Fb/c%3Fd%23e/hooks/7"
        );
        assert_eq!(request.headers()["authorization"], "Bearer gho_t");
    }

    #[test]
    fn it_should_write_a_hook_as_github_documents_it() {
        let body = HookBody {
            name: Some("web"),
            active: true,
            events: ["push"],
            config: Config {
                url: "https://engine.example.com/w",
                content_type: "json",
                secret: "s",
                insecure_ssl: "0",
            },
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            json!({"name": "web", "active": true, "events": ["push"], "config": {
                "url": "https://engine.example.com/w", "content_type": "json",
                "secret": "s", "insecure_ssl": "0"}})
        );
        let update = HookBody { name: None, ..body };
        assert!(serde_json::to_value(&update).unwrap().get("name").is_none());
    }

    #[test]
    fn it_should_find_the_next_page_of_a_link_header() {
        let mut headers = HeaderMap::new();
        assert_eq!(next_page(&headers), None);
        headers.insert(
            LINK,
            HeaderValue::from_static(
                "<https://api.github.com/repositories/1/hooks?per_page=100&page=1>; rel=\"prev\", \
                 <https://api.github.com/repositories/1/hooks?per_page=100&page=3>; rel=\"next\", \
                 <https://api.github.com/repositories/1/hooks?per_page=100&page=5>; rel=\"last\"",
            ),
        );
        assert_eq!(
            next_page(&headers).as_deref(),
            Some("https://api.github.com/repositories/1/hooks?per_page=100&page=3")
        );
        headers.insert(
            LINK,
            HeaderValue::from_static("<https://api.github.com/x?page=1>; rel=\"first\""),
        );
        assert_eq!(next_page(&headers), None);
    }

    #[test]
    fn it_should_follow_a_next_page_only_on_the_apis_origin() {
        let client = Client::new("https://api.github.com".parse().unwrap());
        let token = Secret::new("gho_t");
        assert!(client
            .next_request(&token, "https://api.github.com/repositories/1/hooks?page=2")
            .is_ok());
        for elsewhere in [
            "https://evil.example.com/repositories/1/hooks?page=2",
            "http://api.github.com/repositories/1/hooks?page=2",
            "/repositories/1/hooks?page=2",
        ] {
            assert!(
                matches!(
                    client.next_request(&token, elsewhere),
                    Err(GitHubError::Malformed(_))
                ),
                "{elsewhere}"
            );
        }
    }

    #[test]
    fn it_should_summarise_the_errors_of_a_422() {
        let errors = [
            json!({"resource": "Hook", "code": "custom", "message": "Hook already exists on this repository"}),
            json!({"resource": "Hook", "field": "config", "code": "missing_field"}),
            json!("Invalid event"),
            json!(7),
        ];
        assert_eq!(
            summarise(&errors).as_deref(),
            Some(
                "Hook already exists on this repository; Hook.config missing_field; Invalid event"
            )
        );
        assert_eq!(summarise(&[]), None);
        assert_eq!(
            summarise(&[json!("x".repeat(500))])
                .unwrap()
                .chars()
                .count(),
            MESSAGE_CHARS
        );
    }

    #[test]
    fn it_should_say_what_github_answered() {
        let error = GitHubError::Refused {
            status: 422,
            message: Some("Validation Failed".into()),
            errors: Some("Hook already exists on this repository".into()),
        };
        assert_eq!(
            error.to_string(),
            "GitHub answered 422 (Validation Failed: Hook already exists on this repository)"
        );
    }
}
