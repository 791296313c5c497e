//! The identity behind a change, as auditors read it back.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Who issued a command. Stored in every event's metadata and in the events that views read,
/// so "who changed this trigger" is answered from the log alone.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Actor {
    /// A person signed in through the API.
    User(Uuid),
    /// A holder of an organisation API key (the deprecated key endpoints).
    ApiKey(Uuid),
    /// A part of the engine itself, such as `system:poller`.
    System(String),
}

impl Actor {
    /// The identity as a UUID where it has one: what the API's `created_by`/`updated_by` carry.
    pub fn id(&self) -> Option<Uuid> {
        match self {
            Self::User(id) | Self::ApiKey(id) => Some(*id),
            Self::System(_) => None,
        }
    }

    /// An engine component acting on its own, e.g. `Actor::system("cli")`.
    pub fn system(component: &str) -> Self {
        Self::System(component.to_owned())
    }
}

impl fmt::Display for Actor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::User(id) => write!(f, "user:{id}"),
            Self::ApiKey(id) => write!(f, "api_key:{id}"),
            Self::System(component) => write!(f, "system:{component}"),
        }
    }
}

/// Why a stored actor string could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not an actor (expected user:<uuid>, api_key:<uuid> or system:<component>)")]
pub struct ActorParseError(String);

impl FromStr for Actor {
    type Err = ActorParseError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || ActorParseError(text.to_owned());
        let (kind, value) = text.split_once(':').ok_or_else(invalid)?;
        match kind {
            "user" => Uuid::parse_str(value)
                .map(Self::User)
                .map_err(|_| invalid()),
            "api_key" => Uuid::parse_str(value)
                .map(Self::ApiKey)
                .map_err(|_| invalid()),
            "system" if !value.is_empty() => Ok(Self::System(value.to_owned())),
            _ => Err(invalid()),
        }
    }
}

impl TryFrom<String> for Actor {
    type Error = ActorParseError;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Actor> for String {
    fn from(actor: Actor) -> Self {
        actor.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_should_read_back_every_actor_it_writes() {
        for actor in [
            Actor::User(Uuid::new_v4()),
            Actor::ApiKey(Uuid::new_v4()),
            Actor::system("poller"),
        ] {
            assert_eq!(actor.to_string().parse::<Actor>(), Ok(actor));
        }
    }

    #[test]
    fn it_should_refuse_an_actor_without_a_kind() {
        assert!("someone".parse::<Actor>().is_err());
        assert!("user:not-a-uuid".parse::<Actor>().is_err());
        assert!("system:".parse::<Actor>().is_err());
    }
}
