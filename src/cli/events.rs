//! `trigger-engine events`: the global log in position order.

use std::io::Write;
use std::time::Duration;

use super::history::audit_line;
use super::print_line;
use crate::config::EventsArgs;
use crate::store::Store;

/// Events read per query.
const PAGE: i64 = 1_000;

/// How often `--follow` looks for new events once it has caught up.
const FOLLOW_POLL: Duration = Duration::from_millis(500);

pub async fn run(store: &Store, args: &EventsArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let mut after = args.after;
    let stop = crate::app::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let page = store.read_log(after, PAGE).await?;
        for event in &page {
            print_line(out, &audit_line(event))?;
            after = event.position;
        }
        out.flush()?;
        if page.len() as i64 == PAGE {
            continue;
        }
        if !args.follow {
            return Ok(());
        }
        tokio::select! {
            () = &mut stop => return Ok(()),
            () = tokio::time::sleep(FOLLOW_POLL) => {}
        }
    }
}
