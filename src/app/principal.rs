//! Who is calling: a principal (role, partition, teams, agent id) as the secrets file maps it to a
//! token. Identity never comes from a request field; the edge finds the token, [`super::tokens`]
//! finds the principal.

use serde::Deserialize;

use crate::routing::partition::Partition;

/// What a caller is allowed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// The telephony platform: routes, explains and cancels calls.
    Telephony,
    /// Works tickets of its own teams.
    Agent,
    /// An agent of its teams who also oversees its partition's tickets, queues and agents.
    Supervisor,
    /// Reads every queue and agent, explains routes, reloads the configuration.
    Operator,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Telephony => "telephony",
            Role::Agent => "agent",
            Role::Supervisor => "supervisor",
            Role::Operator => "operator",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    /// A cooperator's partition, or the platform's for the platform's own staff (triage, shared
    /// contractors, operators).
    pub partition: Partition,
    pub teams: Vec<String>,
    /// The agent id (agents and supervisors), or a name for logs (others).
    pub agent_id: String,
}

impl Principal {
    pub fn is_platform(&self) -> bool {
        self.partition.is_platform()
    }

    /// Whether `team` is one of the caller's own teams.
    pub fn has_team(&self, team: &str) -> bool {
        self.teams.iter().any(|t| t == team)
    }
}
