//! RSS and Atom feeds, read into items: RSS 2.0 (and 0.9x, and RSS 1.0's RDF items) and Atom 1.0;
//! and the link to the page of older items, when the feed is split into pages.
//!
//! Parsed with `roxmltree`, a small read-only DOM: a feed page is a few hundred kilobytes at most
//! and is read whole anyway, and a DOM lets each field be looked up by name without a state
//! machine. Elements are matched by local name, so prefixes (`dc:creator`, `content:encoded`,
//! `atom:link`) and default namespaces do not matter.
//!
//! **Pages** (RFC 5005). A paged feed links each document to the next with `<link rel="next"
//! href="..."/>`; an archived feed links its current document to the newest archive, and each
//! archive to the one before, with `rel="prev-archive"`. Both lead from the newest items to older
//! ones, which is the way a poll reads until it reaches its cursor, so [`Page::next`] is the
//! `next` link, or else the `prev-archive` one. RSS 2.0 has no paging of its own; channels that
//! page carry Atom's element (`<atom:link rel="next" href="..."/>`), read the same way. The href
//! is returned as written: the poller resolves it against the page's URL.

use chrono::{DateTime, NaiveDateTime, Utc};
use roxmltree::{Document, Node, ParsingOptions};
use serde_json::json;

use super::Item;

/// One document of a feed: its items and where the older ones are.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// Newest first, as feeds list them.
    pub items: Vec<Item>,
    /// The `href` of the feed's `rel="next"` link, or else of its `rel="prev-archive"` link, as
    /// written (possibly relative).
    pub next: Option<String>,
}

/// The most nodes (elements, texts, comments) a feed page may hold: a 10 MiB page of real items
/// holds a few hundred thousand; more is a document built to exhaust memory.
const MAX_NODES: u32 = 1_000_000;

/// The deepest a feed may nest elements: real feeds nest a dozen levels (an item's XHTML content
/// a few dozen more); thousands is a document built to make its readers recurse.
const MAX_DEPTH: usize = 256;

/// How deep `document`'s elements nest, in one pass over its nodes in document order (each
/// parent before its children), without recursion.
fn depth_of(document: &Document) -> usize {
    let mut depths: Vec<usize> = Vec::new();
    let mut deepest = 0;
    for node in document.root().descendants() {
        let depth = node.parent().map_or(0, |parent| {
            depths.get(parent.id().get_usize()).copied().unwrap_or(0) + 1
        });
        let index = node.id().get_usize();
        if depths.len() <= index {
            depths.resize(index + 1, 0);
        }
        depths[index] = depth;
        deepest = deepest.max(depth);
    }
    deepest
}

/// The link relations that lead to older items, in the order they are preferred: RFC 5005's
/// paged feeds (section 3) and archived feeds (section 4).
const OLDER: [&str; 2] = ["next", "prev-archive"];

/// Where IANA-registered relations live when an Atom feed writes them as IRIs (RFC 4287, 4.2.7.2).
const IANA_RELATIONS: &str = "http://www.iana.org/assignments/relation/";

/// Reads one document of a feed. `url` is the feed's (the trigger's `feed_url`, whichever page
/// this is), for the payload. Each item's payload is `{"feed": {url, title, link}, "item": {guid,
/// title, link, summary, content, author, categories, published, updated}}`, the shape of the
/// catalogue's sample payload.
pub fn parse(url: &str, xml: &str) -> Result<Page, String> {
    let options = ParsingOptions {
        // RSS 0.91 feeds still open with Netscape's DOCTYPE. roxmltree expands internal entities
        // only, refuses an expansion of more than 255 references or 10 levels (billion laughs),
        // and without a resolver never fetches an external entity.
        allow_dtd: true,
        nodes_limit: MAX_NODES,
        entity_resolver: None,
    };
    let document = Document::parse_with_options(xml, options)
        .map_err(|error| format!("feed is not XML: {error}"))?;
    let depth = depth_of(&document);
    if depth > MAX_DEPTH {
        return Err(format!(
            "feed nests elements {depth} deep; more than {MAX_DEPTH} is refused"
        ));
    }
    let root = document.root_element();
    let (channel, entries): (Node, Vec<Node>) = match root.tag_name().name() {
        "feed" => (root, children(root, "entry").collect()),
        "rss" | "RDF" => {
            let channel = child(root, "channel").unwrap_or(root);
            let mut items: Vec<Node> = children(channel, "item").collect();
            // RSS 1.0 puts its items beside the channel, not inside it.
            items.extend(children(root, "item"));
            (channel, items)
        }
        other => return Err(format!("not an RSS or Atom feed (root element `{other}`)")),
    };
    let feed = json!({
        "url": url,
        "title": text_of(channel, "title"),
        "link": link_of(channel),
    });
    let mut items = Vec::with_capacity(entries.len());
    for entry in entries {
        let link = link_of(entry);
        let guid = text_of(entry, "guid").or_else(|| text_of(entry, "id"));
        let Some(id) = guid.clone().or_else(|| link.clone()).or_else(|| {
            // RSS 1.0 items name themselves in rdf:about.
            entry
                .attributes()
                .find(|attribute| attribute.name() == "about")
                .map(|attribute| attribute.value().to_owned())
        }) else {
            return Err("a feed item has no guid, id or link to tell it apart".into());
        };
        let published = date_of(entry, &["published", "pubDate", "issued", "date"]);
        let updated = date_of(entry, &["updated", "modified"]).or(published);
        let author = child(entry, "author")
            .and_then(|author| text_of(author, "name").or_else(|| text(author)))
            .or_else(|| text_of(entry, "creator"));
        let categories: Vec<String> = children(entry, "category")
            .filter_map(|category| {
                category
                    .attribute("term")
                    .map(str::to_owned)
                    .or_else(|| text(category))
            })
            .collect();
        let payload = json!({
            "feed": feed,
            "item": {
                "guid": guid.unwrap_or_else(|| id.clone()),
                "title": text_of(entry, "title"),
                "link": link,
                "summary": text_of(entry, "summary").or_else(|| text_of(entry, "description")),
                "content": text_of(entry, "content").or_else(|| text_of(entry, "encoded")),
                "author": author,
                "categories": categories,
                "published": published,
                "updated": updated,
            },
        });
        items.push(Item::new(id, published.or(updated), payload));
    }
    Ok(Page {
        items,
        next: older_link(channel),
    })
}

/// The `href` of the first of [`OLDER`]'s relations among `channel`'s `<link>`s (Atom's, or
/// `atom:link` in an RSS channel; RSS's own `<link>` has no `rel`).
fn older_link(channel: Node) -> Option<String> {
    let links: Vec<(&str, &str)> = children(channel, "link")
        .filter_map(|link| Some((link.attribute("rel")?, link.attribute("href")?)))
        .collect();
    OLDER.iter().find_map(|wanted| {
        links.iter().find_map(|(rel, href)| {
            let rel = rel.trim();
            let rel = rel.strip_prefix(IANA_RELATIONS).unwrap_or(rel);
            let href = href.trim();
            (rel.eq_ignore_ascii_case(wanted) && !href.is_empty()).then(|| href.to_owned())
        })
    })
}

fn children<'a, 'input>(
    node: Node<'a, 'input>,
    name: &'static str,
) -> impl Iterator<Item = Node<'a, 'input>> {
    node.children()
        .filter(move |child| child.is_element() && child.tag_name().name() == name)
}

fn child<'a, 'input>(node: Node<'a, 'input>, name: &'static str) -> Option<Node<'a, 'input>> {
    children(node, name).next()
}

/// The text inside an element (CDATA included), trimmed; `None` when empty.
fn text(node: Node) -> Option<String> {
    let text: String = node
        .descendants()
        .filter(Node::is_text)
        .filter_map(|text| text.text())
        .collect();
    let text = text.trim();
    (!text.is_empty()).then(|| text.to_owned())
}

fn text_of(node: Node, name: &'static str) -> Option<String> {
    child(node, name).and_then(text)
}

/// RSS's `<link>` holds the URL; Atom's holds it in `href`, preferring `rel="alternate"`.
fn link_of(node: Node) -> Option<String> {
    let links: Vec<Node> = children(node, "link").collect();
    let alternate = links.iter().find(|link| {
        link.attribute("href").is_some()
            && matches!(link.attribute("rel"), None | Some("alternate"))
    });
    if let Some(href) = alternate.and_then(|link| link.attribute("href")) {
        return Some(href.to_owned());
    }
    links.into_iter().find_map(text)
}

/// The first of `names` that holds a date: RFC 3339 (Atom, Dublin Core) or RFC 2822 (RSS).
fn date_of(node: Node, names: &[&'static str]) -> Option<DateTime<Utc>> {
    names
        .iter()
        .filter_map(|name| text_of(node, name))
        .find_map(|value| parse_date(&value))
}

/// A date as sources and cursors write them: RFC 3339 (with `T` or a space between date and
/// time), RFC 2822, or an ISO 8601 date and time without a zone, read as UTC (Python's
/// `datetime.isoformat()` and `str()` of a naive datetime, as the seed's cursors hold:
/// `2025-03-02 10:30:09`). Fractional seconds are kept.
pub(super) fn parse_date(value: &str) -> Option<DateTime<Utc>> {
    let value = value.trim();
    DateTime::parse_from_rfc3339(value)
        .or_else(|_| DateTime::parse_from_rfc2822(value))
        .map(|date| date.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"]
                .iter()
                .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
                .map(|naive| naive.and_utc())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_should_read_rss_items_with_their_guid_and_date() {
        let rss = r#"<?xml version="1.0"?>
            <rss version="2.0" xmlns:dc="http://purl.org/dc/elements/1.1/">
              <channel><title>Blog</title><link>https://blog.example.com/</link>
                <item><guid>post-2</guid><title>Two</title><link>https://blog.example.com/2</link>
                  <description><![CDATA[<p>second</p>]]></description><dc:creator>Ada</dc:creator>
                  <category>rust</category><pubDate>Sun, 02 Mar 2025 09:00:00 +0000</pubDate></item>
                <item><title>One</title><link>https://blog.example.com/1</link></item>
              </channel></rss>"#;
        let page = parse("https://blog.example.com/feed", rss).unwrap();
        assert_eq!(page.next, None, "one page");
        let items = page.items;
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].id, "post-2");
        assert_eq!(
            items[0].timestamp,
            Some("2025-03-02T09:00:00Z".parse().unwrap())
        );
        let item = &items[0].payload["item"];
        assert_eq!(item["summary"], "<p>second</p>");
        assert_eq!(item["author"], "Ada");
        assert_eq!(item["categories"], json!(["rust"]));
        assert_eq!(items[0].payload["feed"]["title"], "Blog");
        assert_eq!(
            items[1].id, "https://blog.example.com/1",
            "the link stands in"
        );
    }

    #[test]
    fn it_should_read_atom_entries() {
        let atom = r#"<feed xmlns="http://www.w3.org/2005/Atom"><title>Log</title>
              <link rel="self" href="https://example.com/atom"/><link href="https://example.com/"/>
              <entry><id>urn:1</id><title>First</title><link href="https://example.com/1"/>
                <author><name>Grace</name></author><category term="ops"/>
                <summary>short</summary><content type="html">long</content>
                <published>2025-03-02T09:00:00Z</published><updated>2025-03-03T09:00:00Z</updated>
              </entry></feed>"#;
        let items = parse("https://example.com/atom", atom).unwrap().items;
        let item = &items[0].payload["item"];
        assert_eq!(items[0].id, "urn:1");
        assert_eq!(item["link"], "https://example.com/1");
        assert_eq!(item["author"], "Grace");
        assert_eq!(item["categories"], json!(["ops"]));
        assert_eq!(item["content"], "long");
        assert_eq!(items[0].payload["feed"]["link"], "https://example.com/");
        assert_eq!(
            items[0].timestamp,
            Some("2025-03-02T09:00:00Z".parse().unwrap())
        );
    }

    #[test]
    fn it_should_find_the_next_page_of_a_paged_atom_feed() {
        let atom = r#"<feed xmlns="http://www.w3.org/2005/Atom"><title>Log</title>
              <link rel="self" href="https://example.com/atom?page=2"/>
              <link rel="previous" href="/atom?page=1"/>
              <link rel="next" href="/atom?page=3"/>
              <link rel="alternate" href="https://example.com/"/>
              <entry><id>urn:5</id><title>Five</title></entry></feed>"#;
        let page = parse("https://example.com/atom", atom).unwrap();
        assert_eq!(page.next.as_deref(), Some("/atom?page=3"));
        assert_eq!(page.items.len(), 1);
        assert_eq!(
            page.items[0].payload["feed"]["link"], "https://example.com/",
            "paging links are not the feed's link"
        );
        let iri = atom.replace(
            r#"rel="next""#,
            r#"rel="http://www.iana.org/assignments/relation/next""#,
        );
        assert_eq!(
            parse("u", &iri).unwrap().next.as_deref(),
            Some("/atom?page=3")
        );
    }

    #[test]
    fn it_should_follow_an_archived_feed_to_its_previous_archive() {
        let atom = r#"<feed xmlns="http://www.w3.org/2005/Atom"
              xmlns:fh="http://purl.org/syndication/history/1.0"><title>Log</title>
              <link rel="current" href="https://example.com/atom"/>
              <link rel="next-archive" href="https://example.com/2025-03.xml"/>
              <link rel="prev-archive" href="2025-01.xml"/>
              <fh:archive/>
              <entry><id>urn:1</id></entry></feed>"#;
        let page = parse("https://example.com/atom", atom).unwrap();
        assert_eq!(
            page.next.as_deref(),
            Some("2025-01.xml"),
            "older archives, never newer ones"
        );
        let both = atom.replace(
            "<fh:archive/>",
            r#"<link rel="next" href="https://example.com/atom?page=2"/>"#,
        );
        assert_eq!(
            parse("u", &both).unwrap().next.as_deref(),
            Some("https://example.com/atom?page=2"),
            "`next` first"
        );
    }

    #[test]
    fn it_should_find_the_next_page_of_an_rss_channel_in_its_atom_link() {
        let rss = r#"<?xml version="1.0"?>
            <rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">
              <channel><title>Blog</title><link>https://blog.example.com/</link>
                <atom:link rel="self" type="application/rss+xml" href="https://blog.example.com/feed"/>
                <atom:link rel="next" href="feed?paged=2"/>
                <item><guid>post-9</guid></item>
              </channel></rss>"#;
        let page = parse("https://blog.example.com/feed", rss).unwrap();
        assert_eq!(page.next.as_deref(), Some("feed?paged=2"));
        assert_eq!(
            page.items[0].payload["feed"]["link"],
            "https://blog.example.com/"
        );
        let last = rss.replace(r#"<atom:link rel="next" href="feed?paged=2"/>"#, "");
        assert_eq!(parse("u", &last).unwrap().next, None);
    }

    #[test]
    fn it_should_read_dates_without_a_zone_as_utc() {
        let at = |text| parse_date(text).map(|date| date.to_rfc3339());
        let ten = Some("2025-03-02T10:30:09+00:00".to_owned());
        assert_eq!(at("2025-03-02 10:30:09"), ten);
        assert_eq!(at("2025-03-02T10:30:09"), ten);
        assert_eq!(at("2025-03-02T11:30:09+01:00"), ten);
        assert_eq!(at("2025-03-02 10:30:09+00:00"), ten);
        assert_eq!(at("Sun, 02 Mar 2025 10:30:09 +0000"), ten);
        assert_eq!(
            at("2025-03-02 10:30:09.250"),
            Some("2025-03-02T10:30:09.250+00:00".to_owned())
        );
        assert_eq!(
            at("2025-03-02T10:30:09.123456"),
            Some("2025-03-02T10:30:09.123456+00:00".to_owned())
        );
        assert_eq!(at("yesterday"), None);
        assert_eq!(at("2025-03-02"), None, "a day is not a time");
    }

    #[test]
    fn it_should_read_a_feed_that_declares_its_doctype() {
        let rss = r#"<?xml version="1.0"?>
            <!DOCTYPE rss PUBLIC "-//Netscape Communications//DTD RSS 0.91//EN"
              "http://my.netscape.com/publish/formats/rss-0.91.dtd">
            <rss version="0.91"><channel><title>Old</title>
              <item><title>A &amp; B</title><link>https://old.example.com/1</link></item>
            </channel></rss>"#;
        let page = parse("u", rss).unwrap();
        assert_eq!(page.items[0].payload["item"]["title"], "A & B");
    }

    #[test]
    fn it_should_refuse_a_billion_laughs_quickly() {
        let mut dtd = String::from(r#"<!ENTITY lol0 "lol">"#);
        for level in 1..=9 {
            let previous = format!("&lol{};", level - 1).repeat(10);
            dtd.push_str(&format!(r#"<!ENTITY lol{level} "{previous}">"#));
        }
        let xml = format!(
            "<?xml version=\"1.0\"?><!DOCTYPE rss [{dtd}]><rss><channel><title>&lol9;</title>\
             <item><guid>1</guid><title>&lol9;</title></item></channel></rss>"
        );
        let started = std::time::Instant::now();
        let refused = parse("u", &xml).unwrap_err();
        assert!(refused.contains("entity"), "{refused}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn it_should_never_fetch_or_expand_an_external_entity() {
        let xml = r#"<?xml version="1.0"?><!DOCTYPE rss [
              <!ENTITY secret SYSTEM "file:///etc/passwd">
              <!ENTITY remote SYSTEM "http://169.254.169.254/latest/meta-data/">]>
            <rss><channel><item><guid>1</guid><title>&secret;&remote;</title></item></channel></rss>"#;
        // Without a resolver an external entity is discarded, and a reference to it refused.
        let refused = parse("u", xml).unwrap_err();
        assert!(refused.contains("entity"), "{refused}");
    }

    #[test]
    fn it_should_refuse_a_feed_nested_a_hundred_thousand_deep() {
        let depth = 100_000;
        let xml = format!(
            "<rss><channel><item><guid>1</guid>{}{}</item></channel></rss>",
            "<x>".repeat(depth),
            "</x>".repeat(depth)
        );
        let started = std::time::Instant::now();
        let refused = parse("u", &xml).unwrap_err();
        assert!(refused.contains("deep"), "{refused}");
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn it_should_refuse_what_is_not_a_feed() {
        assert!(parse("u", "<html/>").is_err());
        assert!(parse("u", "not xml").is_err());
    }
}
