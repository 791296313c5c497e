//! RSS and Atom pages (src/poller/feed.rs, `feed::parse`), as a feed's server answers them: the
//! body is read lossily as UTF-8 like the poller reads it, and the items go through the cursor.
#![no_main]

use libfuzzer_sys::fuzz_target;
use trigger_engine::poller::feed;

fuzz_target!(|data: &[u8]| {
    let body = String::from_utf8_lossy(data);
    if let Ok(page) = feed::parse("https://example.com/feed.xml", &body) {
        trigger_engine_fuzz::poll_twice(&page.items);
    }
});
