//! The `trigger-engine` binary: parse the command line, set up logging, run the subcommand.

use std::io::{stdin, stdout};
use std::sync::Arc;

use clap::Parser;
use tracing_subscriber::EnvFilter;
use trigger_engine::app::{open_store, shutdown_signal, App};
use trigger_engine::cli;
use trigger_engine::config::{Cli, Command, ServeConfig};
use trigger_engine::identity::{Identity, DEFAULT_TOKEN_TTL};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // Logs go to stderr so that the subcommands' JSON on stdout stays machine-readable.
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let command = cli
        .command
        .clone()
        .unwrap_or(Command::Serve(ServeConfig::from_env()));
    match command {
        Command::Serve(serve) => {
            let app = App::build(&cli.store, &serve).await?;
            app.run(shutdown_signal()).await
        }
        Command::Migrate => {
            open_store(&cli.store).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::Projections(command) => {
            let store = open_store(&cli.store).await?;
            cli::projections::run(&store, &command, &mut stdout().lock()).await
        }
        Command::History(args) => {
            let store = open_store(&cli.store).await?;
            cli::history::run(&store, &args, &mut stdout().lock()).await
        }
        Command::Events(args) => {
            let store = open_store(&cli.store).await?;
            cli::events::run(&store, &args, &mut stdout().lock()).await
        }
        Command::Log(command) => {
            let store = open_store(&cli.store).await?;
            cli::log::run(&store, &command, &mut stdout().lock()).await
        }
        Command::Admin(command) => {
            let store = Arc::new(open_store(&cli.store).await?);
            let identity = Identity::load(store, DEFAULT_TOKEN_TTL).await?;
            cli::admin::run(
                &identity,
                &command,
                &mut stdin().lock(),
                &mut stdout().lock(),
            )
            .await
        }
    }
}
