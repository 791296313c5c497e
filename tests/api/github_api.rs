//! The GitHub repository webhooks client against the fake GitHub, over real HTTP: what it
//! registers, how a second put converges on the same hook, and how it reports refusals.

use reqwest::Url;
use trigger_engine::identity::Secret;
use trigger_engine::providers::github::api::{Client, GitHubError, Repository};

use crate::fake_github::{FakeGitHub, GITHUB_TOKEN};

const REPOSITORY: &str = "octo-org/hello-world";
const SECRET: &str = "whisper-to-github";

fn client(github: &FakeGitHub) -> Client {
    Client::new(github.url.parse().unwrap())
}

fn token() -> Secret {
    Secret::new(GITHUB_TOKEN)
}

fn repository() -> Repository {
    REPOSITORY.parse().unwrap()
}

fn delivery_url(n: u32) -> Url {
    format!("https://engine.example.com/v1/webhooks/{n}")
        .parse()
        .unwrap()
}

/// An address nobody listens on: bound, then released.
fn closed_port() -> Url {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    url.parse().unwrap()
}

fn methods(github: &FakeGitHub) -> Vec<&'static str> {
    github.calls().iter().map(|call| call.method).collect()
}

#[tokio::test]
async fn it_should_create_a_hook_and_delete_it() {
    let github = FakeGitHub::start(&[REPOSITORY]).await;
    let client = client(&github);

    let id = client
        .put_hook(
            &token(),
            &repository(),
            &delivery_url(1),
            "push",
            &Secret::new(SECRET),
        )
        .await
        .unwrap();
    let hooks = github.hooks();
    assert_eq!(hooks.len(), 1);
    let hook = &hooks[0];
    assert_eq!(hook.id, id);
    assert_eq!(hook.repository, REPOSITORY);
    assert_eq!(hook.name, "web");
    assert!(hook.active);
    assert_eq!(hook.events, ["push"]);
    assert_eq!(hook.url, delivery_url(1).as_str());
    assert_eq!(hook.content_type, "json");
    assert_eq!(hook.secret.as_deref(), Some(SECRET));
    assert_eq!(hook.insecure_ssl, "0");
    assert_eq!(methods(&github), ["GET", "POST"]);

    client
        .delete_hook(&token(), &repository(), id)
        .await
        .unwrap();
    assert!(github.hooks().is_empty());
}

#[tokio::test]
async fn it_should_converge_on_one_hook_when_put_again() {
    let github = FakeGitHub::start(&[REPOSITORY]).await;
    let client = client(&github);
    let first = client
        .put_hook(
            &token(),
            &repository(),
            &delivery_url(1),
            "push",
            &Secret::new("old"),
        )
        .await
        .unwrap();

    let again = client
        .put_hook(
            &token(),
            &repository(),
            &delivery_url(1),
            "issues",
            &Secret::new(SECRET),
        )
        .await
        .unwrap();
    assert_eq!(again, first);
    let hooks = github.hooks();
    assert_eq!(hooks.len(), 1);
    assert_eq!(hooks[0].events, ["issues"]);
    assert_eq!(hooks[0].secret.as_deref(), Some(SECRET));
    assert_eq!(methods(&github), ["GET", "POST", "GET", "PATCH"]);
    assert_eq!(
        github.calls()[3].path,
        format!("/repos/{REPOSITORY}/hooks/{first}")
    );

    // A hook deleted in GitHub's settings is created again by the next put.
    github.forget(first);
    let recreated = client
        .put_hook(
            &token(),
            &repository(),
            &delivery_url(1),
            "issues",
            &Secret::new(SECRET),
        )
        .await
        .unwrap();
    assert_ne!(recreated, first);
    assert_eq!(github.hooks().len(), 1);
}

#[tokio::test]
async fn it_should_find_the_hook_to_update_on_a_later_page() {
    let github = FakeGitHub::start(&[REPOSITORY]).await;
    let client = client(&github);
    let secret = Secret::new(SECRET);
    let mut last = 0;
    for n in 1..=5 {
        last = client
            .put_hook(&token(), &repository(), &delivery_url(n), "push", &secret)
            .await
            .unwrap();
    }
    github.page_size(2);

    let again = client
        .put_hook(&token(), &repository(), &delivery_url(5), "push", &secret)
        .await
        .unwrap();
    assert_eq!(again, last);
    assert_eq!(github.hooks().len(), 5);
    // Five hooks, two a page: the third page, reached by following each `next` link.
    let calls = github.calls();
    let pages: Vec<&str> = calls[calls.len() - 4..]
        .iter()
        .map(|call| call.path.as_str())
        .collect();
    assert_eq!(
        pages,
        [
            format!("/repos/{REPOSITORY}/hooks?per_page=100"),
            format!("/repos/{REPOSITORY}/hooks?per_page=100&page=2"),
            format!("/repos/{REPOSITORY}/hooks?per_page=100&page=3"),
            format!("/repos/{REPOSITORY}/hooks/{last}"),
        ]
    );
}

#[tokio::test]
async fn it_should_stop_at_a_bounded_number_of_pages() {
    let github = FakeGitHub::start(&[REPOSITORY]).await;
    github.endless_pages();
    let error = client(&github)
        .put_hook(
            &token(),
            &repository(),
            &delivery_url(1),
            "push",
            &Secret::new(SECRET),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, GitHubError::Malformed(_)), "{error:?}");
    assert_eq!(github.calls().len(), 20, "the client's page bound");
    assert!(github.hooks().is_empty());
}

#[tokio::test]
async fn it_should_say_what_github_answered_to_a_duplicate_hook() {
    let github = FakeGitHub::start(&[REPOSITORY]).await;
    let client = client(&github);
    let secret = Secret::new(SECRET);
    client
        .put_hook(&token(), &repository(), &delivery_url(1), "push", &secret)
        .await
        .unwrap();
    // A listing that lags behind the create: the client cannot see the hook, and GitHub
    // refuses a second one to the same URL.
    github.hide_hooks(true);

    let error = client
        .put_hook(&token(), &repository(), &delivery_url(1), "push", &secret)
        .await
        .unwrap_err();
    assert_eq!(
        error,
        GitHubError::Refused {
            status: 422,
            message: Some("Validation Failed".into()),
            errors: Some("Hook already exists on this repository".into()),
        }
    );
    assert_eq!(
        error.to_string(),
        "GitHub answered 422 (Validation Failed: Hook already exists on this repository)"
    );
    assert_eq!(github.hooks().len(), 1);
}

#[tokio::test]
async fn it_should_take_a_hook_already_gone_as_deleted() {
    let github = FakeGitHub::start(&[REPOSITORY]).await;
    client(&github)
        .delete_hook(&token(), &repository(), 4242)
        .await
        .unwrap();
    let last = github.calls().pop().unwrap();
    assert_eq!(
        (last.method, last.path),
        ("DELETE", format!("/repos/{REPOSITORY}/hooks/4242"))
    );
}

#[tokio::test]
async fn it_should_say_what_github_answered_to_a_wrong_token_without_the_token() {
    let github = FakeGitHub::start(&[REPOSITORY]).await;
    let client = client(&github);
    let wrong = Secret::new("gho_WrongTokenThatMustNotShow");
    let secret = Secret::new(SECRET);

    let errors = [
        client
            .put_hook(&wrong, &repository(), &delivery_url(1), "push", &secret)
            .await
            .unwrap_err(),
        client
            .delete_hook(&wrong, &repository(), 1)
            .await
            .unwrap_err(),
    ];
    for error in errors {
        assert_eq!(
            error,
            GitHubError::Refused {
                status: 401,
                message: Some("Bad credentials".into()),
                errors: None,
            }
        );
        let shown = format!("{error} {error:?}");
        assert_eq!(error.to_string(), "GitHub answered 401 (Bad credentials)");
        assert!(!shown.contains(wrong.expose()), "{shown}");
        assert!(!shown.contains(SECRET), "{shown}");
    }
}

#[tokio::test]
async fn it_should_report_an_unknown_repository_as_github_does() {
    let github = FakeGitHub::start(&[REPOSITORY]).await;
    let error = client(&github)
        .put_hook(
            &token(),
            &"octo-org/elsewhere".parse().unwrap(),
            &delivery_url(1),
            "push",
            &Secret::new(SECRET),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error,
        GitHubError::Refused {
            status: 404,
            message: Some("Not Found".into()),
            errors: None,
        }
    );
}

#[tokio::test]
async fn it_should_report_a_failing_github_and_not_take_it_as_gone() {
    let github = FakeGitHub::start(&[REPOSITORY]).await;
    let client = client(&github);
    let id = client
        .put_hook(
            &token(),
            &repository(),
            &delivery_url(1),
            "push",
            &Secret::new(SECRET),
        )
        .await
        .unwrap();
    github.refuse(Some(502));

    let refused = GitHubError::Refused {
        status: 502,
        message: Some("refused for the test".into()),
        errors: None,
    };
    assert_eq!(
        client.delete_hook(&token(), &repository(), id).await,
        Err(refused.clone())
    );
    assert_eq!(
        client
            .put_hook(
                &token(),
                &repository(),
                &delivery_url(1),
                "push",
                &Secret::new(SECRET)
            )
            .await,
        Err(refused)
    );
    assert_eq!(github.hooks().len(), 1);
}

#[tokio::test]
async fn it_should_report_a_closed_port_as_unreachable() {
    let client = Client::new(closed_port());
    let error = client
        .put_hook(
            &token(),
            &repository(),
            &delivery_url(1),
            "push",
            &Secret::new(SECRET),
        )
        .await
        .unwrap_err();
    let GitHubError::Unreachable(why) = &error else {
        panic!("{error:?}");
    };
    assert!(!why.contains("127.0.0.1"), "{why}");
    assert!(matches!(
        client.delete_hook(&token(), &repository(), 1).await,
        Err(GitHubError::Unreachable(_))
    ));
}

/// The fake is only as good a witness as it is strict: it refuses a request without the headers
/// GitHub documents, so a client it serves is shown to send them.
#[tokio::test]
async fn it_should_have_a_fake_that_asks_for_githubs_headers() {
    let github = FakeGitHub::start(&[REPOSITORY]).await;
    let url = format!("{}/repos/{REPOSITORY}/hooks", github.url);
    let http = reqwest::Client::builder()
        .user_agent("test")
        .build()
        .unwrap();
    let complete = || {
        http.get(&url)
            .bearer_auth(GITHUB_TOKEN)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
    };
    assert_eq!(complete().send().await.unwrap().status(), 200);
    let no_accept = http
        .get(&url)
        .bearer_auth(GITHUB_TOKEN)
        .header("x-github-api-version", "2022-11-28");
    assert_eq!(no_accept.send().await.unwrap().status(), 415);
    let no_version = http
        .get(&url)
        .bearer_auth(GITHUB_TOKEN)
        .header("accept", "application/vnd.github+json");
    assert_eq!(no_version.send().await.unwrap().status(), 400);
    let no_agent = reqwest::Client::new()
        .get(&url)
        .bearer_auth(GITHUB_TOKEN)
        .header("accept", "application/vnd.github+json")
        .header("x-github-api-version", "2022-11-28");
    assert_eq!(no_agent.send().await.unwrap().status(), 403);
}
