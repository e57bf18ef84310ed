//! Loading a deployment: the configuration files (platform, cooperators, teams, issue taxonomy,
//! rules) and the registries they point to, validated and compiled into a [`Router`].
//!
//! Loading either yields a router that is entirely valid, or every problem found, each with its
//! file and line — never a router built from part of the files. The checks:
//! - syntax and shape of each file (unknown keys are errors: a typo must not silently do nothing);
//! - unique ids; every reference (team, cooperator, sector, issue type, EPCI, commune) resolves;
//! - rules: exactly one target or an urgency raise; a rule that an earlier one hides entirely is an
//!   error; a `team_of` target exists for every cooperator the rule can match;
//! - every cooperator answers `U1` requests when closed (on-call transfer or an always-staffed team);
//! - registry rows: well-formed, known cooperator and sector, a postcode that belongs to the commune,
//!   a commune inside the cooperator's territory, no address listed twice.

pub mod files;
mod model;
mod registries;
mod rules;
mod validate;

use std::path::{Path, PathBuf};

use self::files::{IssueTypesFile, MainFile, RulesFile};
use self::model::compile_model;
use self::registries::{check_buildings, check_tenants};
use self::rules::{compile_issue_types, compile_rules};
use crate::diagnostics::{ConfigError, Problem, SourceFile};
use crate::registry;
use crate::routing::address::AddressIndex;
use crate::routing::places::{Commune, Epci};
use crate::routing::{Router, RouterParts};

/// The path of the demo deployment's main file, relative to the repository root.
pub const DEMO_CONFIG: &str = "config/callrouter.toml";

/// The main file, parsed, with the paths of the files it names resolved.
pub struct MainConfig {
    pub source: SourceFile,
    pub file: MainFile,
    pub dir: PathBuf,
}

impl MainConfig {
    /// Reads and parses the main configuration file.
    pub fn read(path: &Path) -> Result<MainConfig, ConfigError> {
        let source = SourceFile::read(path)?;
        let file: MainFile = source.parse_toml()?;
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        Ok(MainConfig { source, file, dir })
    }

    /// A path named in the main file, resolved against its directory.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.join(relative)
    }

    /// The current communes of each cooperator's territory, by cooperator id.
    pub fn territories(
        &self,
        communes: &[Commune],
        epci: &[Epci],
    ) -> Result<Vec<(String, Vec<String>)>, ConfigError> {
        let mut problems = Vec::new();
        let territories = self
            .file
            .cooperators
            .iter()
            .map(|c| {
                (
                    c.id.get_ref().clone(),
                    self.territory_of(c, communes, epci, &mut problems),
                )
            })
            .collect();
        if problems.is_empty() {
            Ok(territories)
        } else {
            Err(problems.into())
        }
    }

    fn territory_of(
        &self,
        coop: &files::CooperatorFile,
        communes: &[Commune],
        epci: &[Epci],
        problems: &mut Vec<Problem>,
    ) -> Vec<String> {
        let mut codes: Vec<String> = Vec::new();
        for group in &coop.territory.epci {
            match epci.iter().find(|e| &e.code == group.get_ref()) {
                Some(e) => codes.extend(e.members.iter().cloned()),
                None => problems.push(self.source.problem_at(
                    group.span(),
                    format!(
                        "unknown EPCI '{}' in the territory of {}",
                        group.get_ref(),
                        coop.id.get_ref()
                    ),
                )),
            }
        }
        for commune in &coop.territory.communes {
            if communes.iter().any(|c| &c.insee == commune.get_ref()) {
                codes.push(commune.get_ref().clone());
            } else {
                problems.push(self.source.problem_at(
                    commune.span(),
                    format!(
                        "unknown INSEE code '{}' in the territory of {}",
                        commune.get_ref(),
                        coop.id.get_ref()
                    ),
                ));
            }
        }
        codes.sort();
        codes.dedup();
        codes
    }
}

/// A digest of the configuration's files — the main file, issue types, rules, communes,
/// groupings, buildings and tenants — in hexadecimal: instances that read the same files show the
/// same digest. Not a security measure: it only tells configurations apart.
pub fn digest(path: &Path) -> Result<String, ConfigError> {
    use std::hash::Hasher;
    let main = MainConfig::read(path)?;
    let files = &main.file.files;
    let mut hasher = rustc_hash::FxHasher::default();
    let mut paths = vec![path.to_path_buf()];
    for relative in [
        &files.issue_types,
        &files.rules,
        &files.communes,
        &files.epci,
        &files.buildings,
        &files.tenants,
    ] {
        paths.push(main.path(relative));
    }
    for file in paths {
        let bytes = std::fs::read(&file)
            .map_err(|e| Problem::new(&file, None, format!("cannot read: {e}")))?;
        hasher.write_usize(bytes.len());
        hasher.write(&bytes);
    }
    Ok(format!("{:016x}", hasher.finish()))
}

/// Loads and validates a deployment from its main file.
pub fn load(path: &Path) -> Result<Router, ConfigError> {
    let main = MainConfig::read(path)?;
    let issue_source = SourceFile::read(&main.path(&main.file.files.issue_types))?;
    let rules_source = SourceFile::read(&main.path(&main.file.files.rules))?;
    let issues_file: IssueTypesFile = issue_source.parse_toml()?;
    let rules_file: RulesFile = rules_source.parse_toml()?;
    let communes_path = main.path(&main.file.files.communes);
    let communes = registry::load_communes(&communes_path)?;
    let epci = registry::load_epci(&main.path(&main.file.files.epci))?;

    let mut problems = Vec::new();
    let territories = match main.territories(&communes, &epci) {
        Ok(t) => t,
        Err(e) => {
            problems.extend(e.problems);
            Vec::new()
        }
    };
    let mut address = AddressIndex::new(&communes);
    let model = compile_model(&main, &territories, &address, &mut problems);
    let issue_types = compile_issue_types(&issue_source, issues_file, &mut problems);
    let rules = compile_rules(
        &rules_source,
        rules_file,
        &model,
        &issue_types,
        &mut problems,
    );

    let buildings_path = main.path(&main.file.files.buildings);
    let tenants_path = main.path(&main.file.files.tenants);
    let before_buildings = problems.len();
    let buildings = match registry::load_buildings(&buildings_path) {
        Ok(rows) => check_buildings(&buildings_path, rows, &model, &mut address, &mut problems),
        Err(e) => {
            problems.extend(e);
            Vec::new()
        }
    };
    // Tenants point at buildings: with a broken building registry every tenant of a missing row
    // would be reported too, hiding the one mistake to fix.
    let buildings_sound = problems.len() == before_buildings;
    let tenants = match registry::load_tenants(&tenants_path) {
        Ok(rows) if buildings_sound => {
            check_tenants(&tenants_path, rows, &buildings, &mut problems)
        }
        Ok(_) => Vec::new(),
        Err(e) => {
            problems.extend(e);
            Vec::new()
        }
    };
    if !problems.is_empty() {
        return Err(problems.into());
    }
    let Some(platform) = model.platform else {
        return Err(
            Problem::new(&main.source.path, None, "the platform section is invalid").into(),
        );
    };
    let router = Router::new(RouterParts {
        platform,
        cooperators: model.cooperators,
        sectors: model.sectors,
        teams: model.teams,
        issue_types,
        rules,
        buildings,
        tenants,
        address,
    });
    let problems = validate::check_router(&router);
    if problems.is_empty() {
        Ok(router)
    } else {
        Err(problems.into())
    }
}
