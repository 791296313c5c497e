//! GitHub: repository webhooks, signed with the secret the user set on the hook
//! (`X-Hub-Signature-256`), the event named by the `X-GitHub-Event` header.

use serde_json::{json, Value};

use crate::catalogue::{TriggerKind, TriggerSpec};
use crate::providers::schema::{config_schema, shared_secret};

pub(super) fn triggers() -> Vec<TriggerSpec> {
    vec![
        TriggerSpec {
            id: "on_push",
            name: "On push",
            description: "Fires when commits or tags are pushed to a repository.",
            kind: TriggerKind::Webhook,
            event_type: Some("push"),
            event_action: None,
            config_schema: github_config(),
            sample_payload: push(),
        },
        TriggerSpec {
            id: "on_pull_request",
            name: "On pull request activity",
            description: "Fires on any pull request activity: opened, edited, synchronized, \
                          closed, reopened and the rest; the payload's action says which.",
            kind: TriggerKind::Webhook,
            event_type: Some("pull_request"),
            event_action: None,
            config_schema: github_config(),
            sample_payload: pull_request(),
        },
        TriggerSpec {
            id: "on_issue_opened",
            name: "On issue opened",
            description: "Fires when an issue is opened.",
            kind: TriggerKind::Webhook,
            event_type: Some("issues"),
            event_action: Some("opened"),
            config_schema: github_config(),
            sample_payload: issue_opened(),
        },
        TriggerSpec {
            id: "on_release_published",
            name: "On release published",
            description: "Fires when a release is published (not when a draft is saved).",
            kind: TriggerKind::Webhook,
            event_type: Some("release"),
            event_action: Some("published"),
            config_schema: github_config(),
            sample_payload: release_published(),
        },
    ]
}

fn github_config() -> Value {
    config_schema(json!({
        "properties": {
            "signing_secret": shared_secret(
                "Only for a hook you created on GitHub yourself (or a GitHub App's): its secret, \
                 or a list while changing it, since deliveries already queued are signed with \
                 the old one. Without it the trigger needs a GitHub connection (`access_token`) \
                 and `repository`, and enabling it creates the hook on the repository."
            ),
            "repository": {
                "description": "Only events from this repository, as owner/name; the repository \
                                the engine creates the hook on when it registers it.",
                "type": "string",
                // GitHub's rules: an owner is alphanumerics with single inner hyphens; a
                // repository name is alphanumerics, '.', '-' and '_'.
                "pattern": "^[A-Za-z0-9]+(-[A-Za-z0-9]+)*/[A-Za-z0-9._-]+$",
                "examples": ["octo-org/hello-world"],
            },
            "installation_id": {
                "description": "Only events of this GitHub App installation (its numeric id): \
                                for deliveries to the app's URL, /v1/webhooks/github.",
                "type": "integer",
                "minimum": 1,
            },
        },
    }))
}

fn repository() -> Value {
    json!({
        "id": 186853002,
        "node_id": "MDEwOlJlcG9zaXRvcnkxODY4NTMwMDI=",
        "name": "hello-world",
        "full_name": "octo-org/hello-world",
        "private": false,
        "owner": {
            "login": "octo-org",
            "id": 6811672,
            "node_id": "MDEyOk9yZ2FuaXphdGlvbjY4MTE2NzI=",
            "type": "Organization",
            "html_url": "https://github.com/octo-org"
        },
        "html_url": "https://github.com/octo-org/hello-world",
        "description": "My first repository on GitHub.",
        "fork": false,
        "url": "https://api.github.com/repos/octo-org/hello-world",
        "created_at": "2019-05-15T15:19:25Z",
        "updated_at": "2025-03-02T10:12:41Z",
        "pushed_at": "2025-03-02T10:30:08Z",
        "default_branch": "main",
        "visibility": "public"
    })
}

fn sender() -> Value {
    json!({
        "login": "monalisa",
        "id": 21031067,
        "node_id": "MDQ6VXNlcjIxMDMxMDY3",
        "type": "User",
        "site_admin": false,
        "html_url": "https://github.com/monalisa"
    })
}

fn push() -> Value {
    let commit = json!({
        "id": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
        "tree_id": "f9d2a07e9488b91af2641b26b9407fe22a451433",
        "distinct": true,
        "message": "Fix the greeting's punctuation",
        "timestamp": "2025-03-02T11:30:05+01:00",
        "url": "https://github.com/octo-org/hello-world/commit/6dcb09b5b57875f334f61aebed695e2e4193db5e",
        "author": { "name": "Mona Lisa", "email": "monalisa@example.com", "username": "monalisa" },
        "committer": { "name": "Mona Lisa", "email": "monalisa@example.com", "username": "monalisa" },
        "added": [],
        "removed": [],
        "modified": ["README.md"]
    });
    json!({
        "ref": "refs/heads/main",
        "before": "9049f1265b7d61be4a8904a9a27120d2064dab3b",
        "after": "6dcb09b5b57875f334f61aebed695e2e4193db5e",
        "created": false,
        "deleted": false,
        "forced": false,
        "base_ref": null,
        "compare": "https://github.com/octo-org/hello-world/compare/9049f1265b7d...6dcb09b5b578",
        "commits": [commit.clone()],
        "head_commit": commit,
        "repository": repository(),
        "pusher": { "name": "monalisa", "email": "monalisa@example.com" },
        "sender": sender()
    })
}

fn pull_request() -> Value {
    json!({
        "action": "opened",
        "number": 42,
        "pull_request": {
            "url": "https://api.github.com/repos/octo-org/hello-world/pulls/42",
            "id": 2_290_164_736_u64,
            "node_id": "PR_kwDOCyMzes6IgPEA",
            "html_url": "https://github.com/octo-org/hello-world/pull/42",
            "number": 42,
            "state": "open",
            "locked": false,
            "title": "Greet in French too",
            "user": sender(),
            "body": "Adds a French greeting next to the English one.",
            "created_at": "2025-03-02T10:30:08Z",
            "updated_at": "2025-03-02T10:30:08Z",
            "closed_at": null,
            "merged_at": null,
            "draft": false,
            "head": { "label": "monalisa:french", "ref": "french", "sha": "e5bd3914e2e596debea16f433f57875b5b90bcd6" },
            "base": { "label": "octo-org:main", "ref": "main", "sha": "6dcb09b5b57875f334f61aebed695e2e4193db5e" },
            "merged": false,
            "mergeable": null,
            "comments": 0,
            "commits": 1,
            "additions": 3,
            "deletions": 0,
            "changed_files": 1
        },
        "repository": repository(),
        "sender": sender()
    })
}

fn issue_opened() -> Value {
    json!({
        "action": "opened",
        "issue": {
            "url": "https://api.github.com/repos/octo-org/hello-world/issues/43",
            "id": 2_890_164_021_u64,
            "node_id": "I_kwDOCyMzes6sRk41",
            "html_url": "https://github.com/octo-org/hello-world/issues/43",
            "number": 43,
            "title": "Greeting is missing on the landing page",
            "user": sender(),
            "labels": [{ "id": 1362934389, "name": "bug", "color": "d73a4a", "default": true }],
            "state": "open",
            "locked": false,
            "assignees": [],
            "comments": 0,
            "created_at": "2025-03-02T10:30:08Z",
            "updated_at": "2025-03-02T10:30:08Z",
            "closed_at": null,
            "author_association": "MEMBER",
            "body": "Since this morning the landing page shows no greeting."
        },
        "repository": repository(),
        "sender": sender()
    })
}

fn release_published() -> Value {
    json!({
        "action": "published",
        "release": {
            "url": "https://api.github.com/repos/octo-org/hello-world/releases/204398541",
            "html_url": "https://github.com/octo-org/hello-world/releases/tag/v1.2.0",
            "id": 204398541,
            "node_id": "RE_kwDOCyMzes4MLtPN",
            "tag_name": "v1.2.0",
            "target_commitish": "main",
            "name": "v1.2.0",
            "draft": false,
            "prerelease": false,
            "created_at": "2025-03-02T10:20:00Z",
            "published_at": "2025-03-02T10:30:08Z",
            "author": sender(),
            "assets": [],
            "tarball_url": "https://api.github.com/repos/octo-org/hello-world/tarball/v1.2.0",
            "zipball_url": "https://api.github.com/repos/octo-org/hello-world/zipball/v1.2.0",
            "body": "## What's changed\n* Greet in French too by @monalisa in #42"
        },
        "repository": repository(),
        "sender": sender()
    })
}
