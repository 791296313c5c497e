//! Roles: what a user may do. Every user has exactly one; API keys have none, and keep the powers
//! of the URL they are part of.
//!
//! The roles are ranked, each allowing what the ones below it allow: `auditor` reads (every GET:
//! triggers, connections, runs, schedules), `member` also changes triggers, connections and runs,
//! and `admin` may do everything. Over HTTP no operation needs more than `member` today; `admin`
//! is the first-run admin's role, for what is to come (and for telling operators apart).

use std::fmt;
use std::str::FromStr;

/// A user's role. The order is the ranking: a role allows what every lesser role allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Role {
    /// Read-only: every GET, and the operator's read commands.
    Auditor,
    /// Everything on triggers, connections and runs.
    Member,
    /// Everything.
    Admin,
}

impl Role {
    /// What a user is unless told otherwise: one who can work, not one who can manage the store.
    pub const DEFAULT: Self = Self::Member;

    /// The name stored in `users.role`, carried in access tokens and shown in the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Auditor => "auditor",
            Self::Member => "member",
            Self::Admin => "admin",
        }
    }

    /// Whether a user of this role may do what needs `required`.
    pub fn allows(self, required: Self) -> bool {
        self >= required
    }

    /// Every role, least first.
    pub const ALL: [Self; 3] = [Self::Auditor, Self::Member, Self::Admin];
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is not a role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown role `{0}` (expected admin, member or auditor)")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|role| role.as_str() == name)
            .ok_or_else(|| UnknownRole(name.to_owned()))
    }
}

impl serde::Serialize for Role {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for Role {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn it_should_rank_each_role_above_the_ones_it_includes() {
        assert!(Role::Admin.allows(Role::Member) && Role::Admin.allows(Role::Auditor));
        assert!(Role::Member.allows(Role::Member) && Role::Member.allows(Role::Auditor));
        assert!(!Role::Member.allows(Role::Admin));
        assert!(Role::Auditor.allows(Role::Auditor));
        assert!(!Role::Auditor.allows(Role::Member));
    }

    #[test]
    fn it_should_read_back_every_name_it_writes() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            let json = serde_json::to_value(role).unwrap();
            assert_eq!(json, role.as_str());
            assert_eq!(serde_json::from_value::<Role>(json).unwrap(), role);
        }
        assert!("Admin".parse::<Role>().is_err());
        assert!("root".parse::<Role>().is_err());
    }
}
