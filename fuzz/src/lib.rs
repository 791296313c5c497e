//! What the poller does with the items a page yields, shared by the `feed` and `json_page`
//! targets: the items reach the cursor (src/poller/cursor.rs) exactly as they would in a poll.

use trigger_engine::poller::cursor::MAX_SEEN;
use trigger_engine::poller::{Cursor, Item};

/// Polls `items` twice, as the poller does: the cursor after the first poll must survive being
/// stored and read back, and must take none of the same items for new on the second poll.
pub fn poll_twice(items: &[Item]) {
    let first = Cursor::default().after(items);
    let stored = first.to_value();
    assert_eq!(
        Cursor::read(Some(&stored)).as_ref(),
        Some(&first),
        "the cursor {stored} does not read back"
    );
    if items.len() <= MAX_SEEN {
        let again = first.new_among(items);
        assert!(again.is_empty(), "{again:?} are new again after {first:?}");
    }
    let _ = first.after(items);
}
