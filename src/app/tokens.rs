//! The token table: the secrets file holds only SHA-256 hashes of bearer tokens, each mapped to a
//! principal; a token is looked up by its hash, so the table never holds a usable token. Loading
//! checks every entry against the routing configuration (known cooperator, its own teams).

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::principal::{Principal, Role};
use crate::diagnostics::{ConfigError, Problem, SourceFile};
use crate::routing::Router;
use crate::routing::partition::Partition;

/// The secrets file of the published development tokens, relative to the repository root.
pub const DEV_SECRETS: &str = "config/dev-secrets.toml";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsFile {
    /// A file of published tokens (the development ones): accepted in development mode only.
    #[serde(default)]
    development: bool,
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
    by_hash: HashMap<[u8; 32], Principal>,
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
    /// Loads the secrets file; each entry's cooperator and teams must exist in the routing config,
    /// and each agent id is listed once. A development file (published tokens) is refused unless
    /// `development` allows it.
    pub fn load(path: &Path, router: &Router, development: bool) -> Result<Tokens, ConfigError> {
        let source = SourceFile::read(path)?;
        let file: SecretsFile = source.parse_toml()?;
        if file.development && !development {
            return Err(Problem::new(
                path,
                None,
                "this file holds the published development tokens: it is accepted in development \
                 mode only (`callrouter serve --dev`, loopback addresses); give your own secrets \
                 file with --secrets",
            )
            .into());
        }
        let mut tokens = Tokens::default();
        let mut problems = Vec::new();
        let mut agents: HashMap<String, usize> = HashMap::new();
        for entry in file.tokens {
            let at = |message: String| source.problem_at(entry.sha256.span(), message);
            let Some(hash) = parse_hex(entry.sha256.get_ref()) else {
                problems.push(at(
                    "sha256 must be 64 hex digits (use `callrouter hash-token`)".to_owned(),
                ));
                continue;
            };
            let partition = Partition::parse(&entry.cooperator);
            if let Some(coop) = partition.cooperator_id()
                && router.cooperator(coop).is_none()
            {
                problems.push(at(format!("unknown cooperator '{coop}'")));
            }
            for team in &entry.teams {
                match router.team(team) {
                    None => problems.push(at(format!("unknown team '{team}'"))),
                    Some(t) => {
                        let owner = t.cooperator.map(|c| router.partition_of(c));
                        if owner.unwrap_or(Partition::Platform) != partition {
                            problems
                                .push(at(format!("team '{team}' is not a team of {partition}")));
                        }
                    }
                }
            }
            if matches!(entry.role, Role::Agent | Role::Supervisor) && entry.teams.is_empty() {
                problems.push(at("agents and supervisors need teams".to_owned()));
            }
            // Holds are by agent id: two tokens of one id could act on each other's tickets.
            let line = source.line_of(entry.sha256.span().start);
            if let Some(first) = agents.insert(entry.agent_id.clone(), line) {
                problems.push(at(format!(
                    "agent id '{}' is listed twice (first at line {first})",
                    entry.agent_id
                )));
            }
            let principal = Principal {
                role: entry.role,
                partition,
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

    /// The principal of a bearer token, if it is one of the table's.
    pub fn principal(&self, token: &str) -> Option<&Principal> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        self.by_hash.get(&digest)
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

    fn demo_router() -> Router {
        crate::config::load(Path::new(crate::config::DEMO_CONFIG)).expect("the demo loads")
    }

    fn secrets_file(name: &str, text: &str) -> std::path::PathBuf {
        let path =
            std::env::temp_dir().join(format!("callrouter-{name}-{}.toml", std::process::id()));
        std::fs::write(&path, text).expect("write");
        path
    }

    #[test]
    fn a_development_file_is_refused_outside_development_mode() {
        let router = demo_router();
        let dev = Path::new(DEV_SECRETS);
        let refused = Tokens::load(dev, &router, false).expect_err("published tokens");
        assert!(
            refused.to_string().contains("development mode only"),
            "{refused}"
        );
        assert!(Tokens::load(dev, &router, true).is_ok());
    }

    #[test]
    fn an_agent_id_listed_twice_is_refused() {
        let entry = |hash: &str| {
            format!(
                "[[tokens]]\nsha256 = \"{hash}\"\nrole = \"agent\"\ncooperator = \"lb-habitat\"\nteams = [\"lb-habitat.rent\"]\nagent_id = \"lb-1\"\n"
            )
        };
        let text = entry(&hash_token("one")) + &entry(&hash_token("two"));
        let path = secrets_file("twice", &text);
        let refused = Tokens::load(&path, &demo_router(), false).expect_err("twice");
        assert!(
            refused
                .to_string()
                .contains("agent id 'lb-1' is listed twice"),
            "{refused}"
        );
        let _ = std::fs::remove_file(path);
    }

    #[test]
    fn tokens_are_found_by_hash_only() {
        let agent = Principal {
            role: Role::Agent,
            partition: Partition::parse("lb-habitat"),
            teams: vec!["lb-habitat.front-desk".to_owned()],
            agent_id: "a".to_owned(),
        };
        let tokens = Tokens {
            by_hash: HashMap::from([(Sha256::digest(b"secret").into(), agent.clone())]),
        };
        assert_eq!(tokens.principal("secret"), Some(&agent));
        assert_eq!(tokens.principal("Secret"), None);
        assert_eq!(tokens.principal(""), None);
    }
}
