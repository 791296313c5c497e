//! `trigger-engine admin create-org|create-user|set-role|create-api-key`: how an operator sets up
//! organisations, their users and their roles, and their API keys. Each prints exactly one JSON
//! object.

use std::io::{BufRead, Write};

use anyhow::{anyhow, Context};
use serde_json::json;
use uuid::Uuid;

use super::print_line;
use crate::config::{AdminCommand, CreateUserArgs};
use crate::identity::{Identity, IdentityError, Secret};

/// Runs one admin command; `input` is where `--password-stdin` reads from.
pub async fn run(
    identity: &Identity,
    command: &AdminCommand,
    input: &mut impl BufRead,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    match command {
        AdminCommand::CreateOrg { name } => {
            let org_id = identity.create_org(name).await?;
            print_line(out, &json!({ "org_id": org_id }))
        }
        AdminCommand::CreateUser(args) => {
            let password = password(args, input)?;
            let user_id = identity
                .create_user(args.org_id, &args.email, password.expose(), args.role)
                .await
                .map_err(|error| explain(error, args.org_id))?;
            print_line(out, &json!({ "user_id": user_id, "role": args.role }))
        }
        AdminCommand::SetRole { user_id, role } => {
            identity
                .set_role(*user_id, *role)
                .await
                .map_err(|error| match error {
                    IdentityError::UnknownUser => anyhow!("no user {user_id}"),
                    other => other.into(),
                })?;
            print_line(out, &json!({ "user_id": user_id, "role": role }))
        }
        AdminCommand::CreateApiKey { org_id } => {
            let (api_key_id, api_key) = identity
                .create_api_key(*org_id)
                .await
                .map_err(|error| explain(error, *org_id))?;
            print_line(
                out,
                &json!({ "api_key": api_key, "api_key_id": api_key_id }),
            )
        }
    }
}

/// The password from the command line, or the first line of `input` without its line ending.
fn password(args: &CreateUserArgs, input: &mut impl BufRead) -> anyhow::Result<Secret> {
    if let Some(password) = &args.password {
        return Ok(password.clone());
    }
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("reading the password from standard input")?;
    let password = line.strip_suffix('\n').unwrap_or(&line);
    let password = password.strip_suffix('\r').unwrap_or(password);
    Ok(Secret::new(password))
}

/// Names the organisation an operator mistyped: the error alone does not carry it.
fn explain(error: IdentityError, org_id: Uuid) -> anyhow::Error {
    match error {
        IdentityError::UnknownOrganisation => anyhow!("no organisation {org_id}"),
        other => other.into(),
    }
}
