//! A local server of RSS feeds for tests in which engine processes poll: the test adds items
//! while the engines run, and the server records every request (which feed, when), which is how
//! a test tells how often each feed is polled. `GET /feeds/{n}` serves feed `n`, newest first.

use std::sync::{Arc, Mutex};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

/// The server's address and what it serves; clones share it.
#[derive(Clone)]
pub struct FeedServer {
    state: Arc<Mutex<Feeds>>,
    base: String,
}

struct Feeds {
    /// Each feed's items (id, publication time), oldest first.
    items: Vec<Vec<(String, DateTime<Utc>)>>,
    requests: Vec<FeedRequest>,
}

/// A GET of one feed, as the server received it.
#[derive(Debug, Clone, Copy)]
pub struct FeedRequest {
    pub feed: usize,
    pub at: DateTime<Utc>,
}

impl FeedServer {
    /// Serves `feeds` empty feeds on 127.0.0.1 until the test ends.
    pub async fn start(feeds: usize) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let server = Self {
            state: Arc::new(Mutex::new(Feeds {
                items: vec![Vec::new(); feeds],
                requests: Vec::new(),
            })),
            base: format!("http://{}", listener.local_addr().unwrap()),
        };
        let app = axum::Router::new()
            .route("/feeds/{feed}", axum::routing::get(feed))
            .with_state(server.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        server
    }

    pub fn url(&self, feed: usize) -> String {
        format!("{}/feeds/{feed}", self.base)
    }

    /// Publishes an item in `feed`: the next request lists it first.
    pub fn add(&self, feed: usize, id: &str, at: DateTime<Utc>) {
        self.state.lock().unwrap().items[feed].push((id.to_owned(), at));
    }

    /// Every request so far, in the order received.
    pub fn requests(&self) -> Vec<FeedRequest> {
        self.state.lock().unwrap().requests.clone()
    }
}

async fn feed(State(server): State<FeedServer>, Path(feed): Path<usize>) -> Response {
    let at = Utc::now();
    let mut state = server.state.lock().unwrap();
    let Some(items) = state.items.get(feed) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let base = &server.base;
    let items: String = items
        .iter()
        .rev()
        .map(|(id, at)| {
            format!(
                "<item><guid>{id}</guid><title>Item {id}</title><link>{base}/items/{id}</link>\
                 <pubDate>{}</pubDate></item>",
                at.to_rfc2822()
            )
        })
        .collect();
    state.requests.push(FeedRequest { feed, at });
    let body = format!(
        r#"<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {feed}</title><link>{base}</link>{items}</channel></rss>"#
    );
    ([("content-type", "application/rss+xml")], body).into_response()
}
