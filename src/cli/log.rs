//! `trigger-engine log verify`: recomputes the chain of hashes over the global log (see
//! [`crate::store::chain`]) and checks the heads an auditor recorded.

use std::io::Write;

use serde_json::json;

use super::print_line;
use crate::config::{LogCommand, VerifyArgs};
use crate::store::chain::Break;
use crate::store::Store;

pub async fn run(store: &Store, command: &LogCommand, out: &mut impl Write) -> anyhow::Result<()> {
    match command {
        LogCommand::Verify(args) => verify(store, args, out).await,
    }
}

/// Prints the verdict, then fails (a non-zero exit) naming the first position that does not match.
async fn verify(store: &Store, args: &VerifyArgs, out: &mut impl Write) -> anyhow::Result<()> {
    let verdict = store.verify_chain(args.from, None).await?;
    let mut broken = verdict.broken.clone();
    if broken.is_none() {
        for (position, hash) in &args.expect {
            // A recorded head before `--from` is not linked to what was verified.
            anyhow::ensure!(
                *position >= verdict.from - 1,
                "--expect {position}:... lies before --from {}",
                verdict.from
            );
            broken = store.has_link(*position, hash).await?;
            if broken.is_some() {
                break;
            }
        }
    }
    print_line(
        out,
        &json!({
            "holds": broken.is_none(),
            "from": verdict.from,
            "to": verdict.to,
            "hash": hex::encode(verdict.hash),
            "broken": broken,
        }),
    )?;
    out.flush()?;
    match broken {
        None => Ok(()),
        Some(Break { position, reason }) => Err(anyhow::anyhow!(
            "the chain does not hold at position {position}: {}",
            reason.describe()
        )),
    }
}
