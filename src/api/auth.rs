//! Who is calling: `authorization: Bearer <token>` metadata, checked against the secrets file,
//! which holds only SHA-256 hashes of tokens, each mapped to a principal (role, cooperator scope,
//! teams, agent id). Identity never comes from a request field.
//!
//! What each role may do is decided here too, in one place:
//! - `telephony` routes, explains and cancels calls;
//! - `agent` works tickets of its own teams, in its cooperator's partition (platform agents — triage
//!   and shared contractors — in every partition their teams have queues in);
//! - `supervisor` is an agent of its teams that also sees its cooperator's tickets, queues and
//!   agents (the platform's supervisor: the platform's);
//! - `operator` reads every queue and agent, explains routes and reloads the configuration.
//!
//! A ticket of another cooperator answers `NOT_FOUND`, as if it did not exist. Platform staff
//! (triage, shared contractors) work every cooperator's calls, so for them a ticket they do not
//! hold is refused as not held, not hidden.

use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};
use tonic::Status;

use crate::diagnostics::{ConfigError, SourceFile};
use crate::store::PLATFORM_PARTITION;

/// What a caller is allowed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Telephony,
    Agent,
    Supervisor,
    Operator,
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub role: Role,
    /// A cooperator id, or `platform` for the shared platform.
    pub cooperator: String,
    pub teams: Vec<String>,
    /// The agent id (agents and supervisors), or a name for logs (others).
    pub agent_id: String,
}

impl Principal {
    pub fn is_platform(&self) -> bool {
        self.cooperator == PLATFORM_PARTITION
    }

    /// Refuses a caller whose role is not one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), Status> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(Status::permission_denied(format!(
                "the {:?} role may not call this method",
                self.role
            )))
        }
    }

    /// Whether the caller may see a ticket of this partition and team.
    pub fn may_see(&self, partition: &str, team: &str) -> bool {
        match self.role {
            Role::Telephony | Role::Operator => true,
            Role::Supervisor if partition == self.cooperator => true,
            Role::Agent | Role::Supervisor => {
                self.teams.iter().any(|t| t == team)
                    && (self.is_platform() || partition == self.cooperator)
            }
        }
    }

    /// Whether the caller may see queues and agents of this partition.
    pub fn may_oversee(&self, partition: &str) -> bool {
        match self.role {
            Role::Operator => true,
            Role::Supervisor => partition == self.cooperator,
            Role::Agent | Role::Telephony => false,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenEntry {
    /// Hex SHA-256 of the token.
    sha256: toml::Spanned<String>,
    role: Role,
    cooperator: String,
    #[serde(default)]
    teams: Vec<String>,
    agent_id: String,
}

/// The configured tokens, by hash.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    by_hash: std::collections::HashMap<[u8; 32], Principal>,
}

/// The SHA-256 of a token, as hex (what the secrets file holds).
pub fn hash_token(token: &str) -> String {
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn parse_hex(hex: &str) -> Option<[u8; 32]> {
    if hex.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

impl Tokens {
    /// Loads the secrets file; each entry's cooperator and teams must exist in the routing config.
    pub fn load(path: &Path, router: &crate::routing::Router) -> Result<Tokens, ConfigError> {
        let source = SourceFile::read(path)?;
        let file: SecretsFile = source.parse_toml()?;
        let mut tokens = Tokens::default();
        let mut problems = Vec::new();
        for entry in file.tokens {
            let at = |message: String| source.problem_at(entry.sha256.span(), message);
            let Some(hash) = parse_hex(entry.sha256.get_ref()) else {
                problems.push(at(
                    "sha256 must be 64 hex digits (use `callrouter hash-token`)".to_owned(),
                ));
                continue;
            };
            if entry.cooperator != PLATFORM_PARTITION
                && router.cooperator(&entry.cooperator).is_none()
            {
                problems.push(at(format!("unknown cooperator '{}'", entry.cooperator)));
            }
            for team in &entry.teams {
                match router.team(team) {
                    None => problems.push(at(format!("unknown team '{team}'"))),
                    Some(t) => {
                        let owner = t
                            .cooperator
                            .map(|c| router.cooperators[c as usize].id.as_str());
                        let allowed = match owner {
                            Some(coop) => coop == entry.cooperator,
                            None => entry.cooperator == PLATFORM_PARTITION,
                        };
                        if !allowed {
                            problems.push(at(format!(
                                "team '{team}' is not a team of {}",
                                entry.cooperator
                            )));
                        }
                    }
                }
            }
            if matches!(entry.role, Role::Agent | Role::Supervisor) && entry.teams.is_empty() {
                problems.push(at("agents and supervisors need teams".to_owned()));
            }
            let principal = Principal {
                role: entry.role,
                cooperator: entry.cooperator,
                teams: entry.teams,
                agent_id: entry.agent_id,
            };
            if tokens.by_hash.insert(hash, principal).is_some() {
                problems.push(at("the same token is listed twice".to_owned()));
            }
        }
        if problems.is_empty() {
            Ok(tokens)
        } else {
            Err(problems.into())
        }
    }

    /// The principal of a request's bearer token.
    pub fn authenticate(
        &self,
        metadata: &tonic::metadata::MetadataMap,
    ) -> Result<Principal, Status> {
        let header = metadata.get("authorization").ok_or_else(|| {
            Status::unauthenticated("missing authorization metadata (Bearer token)")
        })?;
        let token = header
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Status::unauthenticated("authorization must be 'Bearer <token>'"))?;
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.by_hash
            .get(&digest)
            .cloned()
            .ok_or_else(|| Status::unauthenticated("unknown token"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes_are_hex_sha256() {
        assert_eq!(
            hash_token("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(parse_hex(&hash_token("abc")).map(|h| h[0]), Some(0xba));
        assert_eq!(parse_hex("zz"), None);
    }

    #[test]
    fn visibility_by_role_and_scope() {
        let agent = Principal {
            role: Role::Agent,
            cooperator: "lb-habitat".to_owned(),
            teams: vec!["lb-habitat.front-desk".to_owned()],
            agent_id: "a".to_owned(),
        };
        assert!(agent.may_see("lb-habitat", "lb-habitat.front-desk"));
        assert!(!agent.may_see("lb-habitat", "lb-habitat.rent"));
        assert!(!agent.may_see("touraine-logement", "lb-habitat.front-desk"));
        let lifts = Principal {
            cooperator: "platform".to_owned(),
            teams: vec!["contractor.lifts".to_owned()],
            ..agent.clone()
        };
        assert!(lifts.may_see("touraine-logement", "contractor.lifts"));
        assert!(!lifts.may_see("touraine-logement", "touraine-logement.rent"));
        let supervisor = Principal {
            role: Role::Supervisor,
            ..agent
        };
        assert!(supervisor.may_see("lb-habitat", "lb-habitat.rent"));
        assert!(!supervisor.may_see("meduane-habitat", "meduane-habitat.rent"));
        assert!(supervisor.may_oversee("lb-habitat") && !supervisor.may_oversee("platform"));
    }
}
