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
mod validate;

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use rustc_hash::FxHashMap;
use toml::Spanned;

use self::files::{IssueTypesFile, MainFile, RuleFile, RulesFile};
use crate::diagnostics::{ConfigError, Origin, Problem, SourceFile};
use crate::registry;
use crate::routing::address::{AddressIndex, IndexedBuilding};
use crate::routing::calendar::OpeningHours;
use crate::routing::model::{
    Condition, Cooperator, CooperatorIdx, IncidentGroup, IssueType, Platform, Rule, Sector,
    SectorIdx, Target, Team, TeamIdx, TeamKind,
};
use crate::routing::partition::{PLATFORM, Partition};
use crate::routing::places::{Building, Commune, Epci, Tenant};
use crate::routing::{RegistryBuilding, Router, RouterParts};

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

/// Cooperators, sectors, teams and the platform, with their ids resolved.
struct Model {
    platform: Option<Platform>,
    cooperators: Vec<Cooperator>,
    sectors: Vec<Sector>,
    teams: Vec<Team>,
    cooperator_by_id: FxHashMap<String, CooperatorIdx>,
    sector_by_id: FxHashMap<String, SectorIdx>,
    team_by_id: FxHashMap<String, TeamIdx>,
}

/// Ids already seen in a file, to report duplicates at their second definition.
struct Ids<'a> {
    source: &'a SourceFile,
    what: &'static str,
    seen: FxHashMap<String, usize>,
}

impl<'a> Ids<'a> {
    fn new(source: &'a SourceFile, what: &'static str) -> Ids<'a> {
        Ids {
            source,
            what,
            seen: FxHashMap::default(),
        }
    }

    /// Records an id; reports it if it is a duplicate or malformed.
    fn add(&mut self, id: &Spanned<String>, problems: &mut Vec<Problem>) {
        let value = id.get_ref();
        if !is_valid_id(value) {
            problems.push(self.source.problem_at(
                id.span(),
                format!(
                    "{} id '{value}' must be lower-case letters, digits, '-', '_' or '.'",
                    self.what
                ),
            ));
        }
        let line = self.source.line_of(id.span().start);
        if let Some(first) = self.seen.insert(value.clone(), line) {
            problems.push(self.source.problem_at(
                id.span(),
                format!(
                    "duplicate {} id '{value}' (first defined at line {first})",
                    self.what
                ),
            ));
        }
    }
}

fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_' | b'.')
        })
}

fn parse_hours(
    source: &SourceFile,
    hours: &Spanned<Vec<String>>,
    problems: &mut Vec<Problem>,
) -> OpeningHours {
    OpeningHours::parse(hours.get_ref()).unwrap_or_else(|e| {
        problems.push(source.problem_at(hours.span(), format!("opening hours: {e}")));
        OpeningHours::always()
    })
}

fn check_phone(
    source: &SourceFile,
    phone: &Spanned<String>,
    whose: &str,
    problems: &mut Vec<Problem>,
) {
    let digits = phone.get_ref().chars().filter(char::is_ascii_digit).count();
    let allowed = phone
        .get_ref()
        .chars()
        .all(|c| c.is_ascii_digit() || matches!(c, '+' | ' ' | '.' | '-'));
    if !(allowed && (4..=15).contains(&digits)) {
        problems.push(source.problem_at(
            phone.span(),
            format!(
                "on-call number of {whose} must be a phone number, not '{}'",
                phone.get_ref()
            ),
        ));
    }
}

fn compile_model(
    main: &MainConfig,
    territories: &[(String, Vec<String>)],
    address: &AddressIndex,
    problems: &mut Vec<Problem>,
) -> Model {
    let source = &main.source;
    let file = &main.file;
    let mut cooperator_ids = Ids::new(source, "cooperator");
    let mut sector_ids = Ids::new(source, "sector");
    let mut team_ids = Ids::new(source, "team");
    let mut short_codes = Ids::new(source, "short code");

    let mut cooperator_by_id = FxHashMap::default();
    for (i, coop) in file.cooperators.iter().enumerate() {
        cooperator_ids.add(&coop.id, problems);
        if coop.id.get_ref() == PLATFORM {
            problems.push(source.problem_at(
                coop.id.span(),
                format!("'{PLATFORM}' names the platform's own partition, not a cooperator"),
            ));
        }
        cooperator_by_id.insert(coop.id.get_ref().clone(), i as CooperatorIdx);
        let code = coop.short_code.get_ref();
        if code.len() < 2 || code.len() > 3 || !code.bytes().all(|b| b.is_ascii_uppercase()) {
            problems.push(source.problem_at(
                coop.short_code.span(),
                format!("short code '{code}' must be 2 or 3 capital letters"),
            ));
        }
        short_codes.add(
            &Spanned::new(coop.short_code.span(), code.to_ascii_lowercase()),
            problems,
        );
    }

    let mut sectors = Vec::new();
    let mut sector_by_id = FxHashMap::default();
    for (c, coop) in file.cooperators.iter().enumerate() {
        let territory = territories
            .get(c)
            .map(|t| t.1.as_slice())
            .unwrap_or_default();
        let mut rest = 0;
        for sector in &coop.sectors {
            sector_ids.add(&sector.id, problems);
            rest += usize::from(sector.rest);
            for commune in &sector.communes {
                let current = address.current_commune(commune.get_ref());
                let inside = territory
                    .iter()
                    .any(|t| address.current_commune(t) == current && current.is_some());
                if !inside {
                    problems.push(source.problem_at(
                        commune.span(),
                        format!(
                            "sector {} lists commune '{}', which is not in the territory of {}",
                            sector.id.get_ref(),
                            commune.get_ref(),
                            coop.id.get_ref()
                        ),
                    ));
                }
            }
            sector_by_id.insert(sector.id.get_ref().clone(), sectors.len() as SectorIdx);
            sectors.push(Sector {
                id: sector.id.get_ref().clone(),
                name: sector.name.clone(),
                cooperator: c as CooperatorIdx,
                communes: sector
                    .communes
                    .iter()
                    .map(|s| s.get_ref().clone())
                    .collect(),
                rest: sector.rest,
            });
        }
        if coop.sectors.is_empty() || rest > 1 {
            problems.push(source.problem_at(
                coop.id.span(),
                format!(
                    "cooperator {} needs sectors, exactly one of them marked rest = true",
                    coop.id.get_ref()
                ),
            ));
        }
    }

    let mut teams = Vec::new();
    let mut team_by_id = FxHashMap::default();
    for team in &file.teams {
        team_ids.add(&team.id, problems);
        let cooperator = team.cooperator.as_ref().and_then(|c| {
            let found = cooperator_by_id.get(c.get_ref()).copied();
            if found.is_none() {
                problems.push(source.problem_at(
                    c.span(),
                    format!(
                        "team {} names unknown cooperator '{}'",
                        team.id.get_ref(),
                        c.get_ref()
                    ),
                ));
            }
            found
        });
        let sector = team.sector.as_ref().and_then(|s| {
            let found = sector_by_id.get(s.get_ref()).copied();
            match found {
                None => problems.push(source.problem_at(
                    s.span(),
                    format!(
                        "team {} names unknown sector '{}'",
                        team.id.get_ref(),
                        s.get_ref()
                    ),
                )),
                Some(idx) if Some(sectors[idx as usize].cooperator) != cooperator => {
                    problems.push(source.problem_at(
                        s.span(),
                        format!(
                            "team {}: sector '{}' is not a sector of its cooperator",
                            team.id.get_ref(),
                            s.get_ref()
                        ),
                    ))
                }
                Some(_) => {}
            }
            found
        });
        let shared_kind = matches!(team.kind, TeamKind::Triage | TeamKind::Contractor);
        // Supervisors exist both per cooperator and for the platform itself.
        let either = team.kind == TeamKind::Supervisor;
        if !either && shared_kind == team.cooperator.is_some() {
            problems.push(source.problem_at(
                team.id.span(),
                format!(
                    "team {}: {} teams {} a cooperator",
                    team.id.get_ref(),
                    team.kind.as_str(),
                    if shared_kind {
                        "are shared and must not name"
                    } else {
                        "must name"
                    }
                ),
            ));
        }
        team_by_id.insert(team.id.get_ref().clone(), teams.len() as TeamIdx);
        teams.push(Team {
            id: team.id.get_ref().clone(),
            name: team.name.clone(),
            cooperator,
            kind: team.kind,
            sector,
            always_staffed: team.always_staffed || team.kind == TeamKind::OnCall,
        });
    }

    let team_ref = |id: &Spanned<String>, what: &str, problems: &mut Vec<Problem>| -> TeamIdx {
        match team_by_id.get(id.get_ref()) {
            Some(&t) => t,
            None => {
                problems.push(source.problem_at(
                    id.span(),
                    format!("{what} names unknown team '{}'", id.get_ref()),
                ));
                0
            }
        }
    };

    let mut cooperators = Vec::new();
    for (c, coop) in file.cooperators.iter().enumerate() {
        let hours = parse_hours(source, &coop.hours, problems);
        check_phone(source, &coop.on_call, coop.id.get_ref(), problems);
        let default_team = team_ref(
            &coop.default_team,
            &format!("cooperator {}", coop.id.get_ref()),
            problems,
        );
        if let Some(team) = teams.get(default_team as usize)
            && team_by_id.contains_key(coop.default_team.get_ref())
            && team.cooperator != Some(c as CooperatorIdx)
        {
            problems.push(source.problem_at(
                coop.default_team.span(),
                format!(
                    "default team of {} must be one of its own teams",
                    coop.id.get_ref()
                ),
            ));
        }
        let on_call_team = teams
            .iter()
            .position(|t| t.cooperator == Some(c as CooperatorIdx) && t.kind == TeamKind::OnCall);
        if on_call_team.is_none() {
            problems.push(source.problem_at(
                coop.id.span(),
                format!("cooperator {} has no on_call team", coop.id.get_ref()),
            ));
        }
        cooperators.push(Cooperator {
            id: coop.id.get_ref().clone(),
            name: coop.name.clone(),
            short_code: coop.short_code.get_ref().clone(),
            hours,
            on_call: coop.on_call.get_ref().clone(),
            on_call_team: on_call_team.unwrap_or(0) as TeamIdx,
            default_team,
            territory: territories.get(c).map(|t| t.1.clone()).unwrap_or_default(),
            origin: Origin {
                file: source.path.clone(),
                line: source.line_of(coop.id.span().start),
            },
        });
    }

    // Tickets of a partition escalate to its supervisor team after too many expired leases.
    let partitions = std::iter::once((Partition::Platform, None)).chain(
        file.cooperators
            .iter()
            .map(|c| (Partition::parse(c.id.get_ref()), Some(c.id.span()))),
    );
    for (partition, span) in partitions {
        let wanted = partition.supervisor_team();
        let found = teams
            .iter()
            .any(|t| t.id == wanted && t.kind == TeamKind::Supervisor);
        if !found {
            let message = format!("no supervisor team '{wanted}' for escalations of {partition}");
            problems.push(match span {
                Some(span) => source.problem_at(span, message),
                None => Problem::new(&source.path, None, message),
            });
        }
    }

    let platform = &file.platform;
    let timezone = platform.timezone.get_ref().parse::<chrono_tz::Tz>().ok();
    if timezone.is_none() {
        problems.push(source.problem_at(
            platform.timezone.span(),
            format!("unknown time zone '{}'", platform.timezone.get_ref()),
        ));
    }
    let hours = parse_hours(source, &platform.hours, problems);
    check_phone(source, &platform.on_call, "the platform", problems);
    let triage_team = team_ref(&platform.triage_team, "platform", problems);
    if team_by_id.contains_key(platform.triage_team.get_ref())
        && teams[triage_team as usize].kind != TeamKind::Triage
    {
        problems.push(source.problem_at(
            platform.triage_team.span(),
            format!(
                "platform triage team '{}' must be of kind triage",
                platform.triage_team.get_ref()
            ),
        ));
    }
    Model {
        platform: timezone.map(|timezone| Platform {
            name: platform.name.clone(),
            timezone,
            hours,
            on_call: platform.on_call.get_ref().clone(),
            triage_team,
        }),
        cooperators,
        sectors,
        teams,
        cooperator_by_id,
        sector_by_id,
        team_by_id,
    }
}

fn compile_issue_types(
    source: &SourceFile,
    file: IssueTypesFile,
    problems: &mut Vec<Problem>,
) -> Vec<IssueType> {
    let mut ids = Ids::new(source, "issue type");
    let mut types = Vec::new();
    for t in file.issue_types {
        ids.add(&t.code, problems);
        let code = t.code.get_ref();
        let well_formed = code.split('.').all(|segment| {
            !segment.is_empty() && segment.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
        });
        if !well_formed {
            problems.push(source.problem_at(
                t.code.span(),
                format!("issue type '{code}' must be dotted lower-case words (e.g. technical.plumbing.leak)"),
            ));
        }
        if t.collective_heating_only && t.incident.is_none() {
            problems.push(source.problem_at(
                t.code.span(),
                format!("issue type '{code}': collective_heating_only needs an incident group"),
            ));
        }
        types.push(IssueType {
            code: t.code.into_inner(),
            label: t.label,
            urgency: t.urgency,
            incident: t.incident.map(|name| IncidentGroup {
                name,
                collective_heating_only: t.collective_heating_only,
            }),
        });
    }
    types
}

fn compile_rules(
    source: &SourceFile,
    file: RulesFile,
    model: &Model,
    issue_types: &[IssueType],
    problems: &mut Vec<Problem>,
) -> Vec<Rule> {
    let mut ids = Ids::new(source, "rule");
    file.rules
        .into_iter()
        .map(|rule| {
            ids.add(&rule.id, problems);
            compile_rule(source, rule, model, issue_types, problems)
        })
        .collect()
}

fn compile_rule(
    source: &SourceFile,
    rule: RuleFile,
    model: &Model,
    issue_types: &[IssueType],
    problems: &mut Vec<Problem>,
) -> Rule {
    let id = rule.id.get_ref().clone();
    let resolve = |list: &Option<Vec<Spanned<String>>>,
                   map: &FxHashMap<String, u16>,
                   what: &str,
                   problems: &mut Vec<Problem>|
     -> Option<Vec<u16>> {
        list.as_ref().map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    let found = map.get(item.get_ref()).copied();
                    if found.is_none() {
                        problems.push(source.problem_at(
                            item.span(),
                            format!("rule {id} names unknown {what} '{}'", item.get_ref()),
                        ));
                    }
                    found
                })
                .collect()
        })
    };
    let cooperators = resolve(
        &rule.cooperators,
        &model.cooperator_by_id,
        "cooperator",
        problems,
    );
    let sectors = resolve(&rule.sectors, &model.sector_by_id, "sector", problems);
    let issue_prefixes = rule.issue.as_ref().map(|prefixes| {
        prefixes
            .iter()
            .map(|p| {
                let matches_some = issue_types
                    .iter()
                    .any(|t| crate::routing::model::issue_has_prefix(&t.code, p.get_ref()));
                if !matches_some {
                    problems.push(source.problem_at(
                        p.span(),
                        format!(
                            "rule {id}: issue '{}' matches no issue type of the taxonomy",
                            p.get_ref()
                        ),
                    ));
                }
                p.get_ref().clone()
            })
            .collect::<Vec<_>>()
    });
    let targets = usize::from(rule.team.is_some())
        + usize::from(rule.team_of.is_some())
        + usize::from(rule.on_call);
    if targets > 1 {
        problems.push(source.problem_at(
            rule.id.span(),
            format!("rule {id} has {targets} targets: give one of team, team_of, on_call"),
        ));
    }
    if targets == 0 && rule.raise_urgency.is_none() {
        problems.push(source.problem_at(
            rule.id.span(),
            format!(
                "rule {id} does nothing: give a target (team, team_of, on_call) or raise_urgency"
            ),
        ));
    }
    let target = if let Some(team) = &rule.team {
        match model.team_by_id.get(team.get_ref()) {
            Some(&t) => Some(Target::Team(t)),
            None => {
                problems.push(source.problem_at(
                    team.span(),
                    format!("rule {id} names unknown team '{}'", team.get_ref()),
                ));
                None
            }
        }
    } else if let Some(kind) = rule.team_of {
        Some(Target::TeamOf(kind))
    } else if rule.on_call {
        Some(Target::OnCall)
    } else {
        None
    };
    Rule {
        origin: Origin {
            file: source.path.clone(),
            line: source.line_of(rule.id.span().start),
        },
        id,
        description: rule.description,
        when: Condition {
            cooperators,
            sectors,
            issue_prefixes,
            urgencies: rule.urgency,
            time: rule.time,
            has_lift: rule.has_lift,
            heating: rule.heating,
        },
        target,
        raise_urgency: rule.raise_urgency,
    }
}

fn check_buildings(
    path: &Path,
    rows: Vec<registry::Located<Building>>,
    model: &Model,
    address: &mut AddressIndex,
    problems: &mut Vec<Problem>,
) -> Vec<RegistryBuilding> {
    let mut seen: FxHashMap<String, usize> = FxHashMap::default();
    let mut buildings: Vec<RegistryBuilding> = Vec::with_capacity(rows.len());
    for row in rows {
        let b = row.value;
        let at = |message: String| Problem::new(path, Some(row.line), message);
        if let Some(first) = seen.insert(b.id.clone(), row.line) {
            problems.push(at(format!(
                "duplicate building id '{}' (first at line {first})",
                b.id
            )));
            continue;
        }
        let Some(&coop) = model.cooperator_by_id.get(&b.cooperator_id) else {
            problems.push(at(format!(
                "building {}: unknown cooperator '{}'",
                b.id, b.cooperator_id
            )));
            continue;
        };
        let sector = match model.sector_by_id.get(&b.sector_id) {
            Some(&s) if model.sectors[s as usize].cooperator == coop => s,
            Some(_) => {
                problems.push(at(format!(
                    "building {}: sector '{}' is not a sector of {}",
                    b.id, b.sector_id, b.cooperator_id
                )));
                continue;
            }
            None => {
                problems.push(at(format!(
                    "building {}: unknown sector '{}'",
                    b.id, b.sector_id
                )));
                continue;
            }
        };
        if address.current_commune(&b.insee_code).is_none() {
            problems.push(at(format!(
                "building {}: unknown INSEE code '{}'",
                b.id, b.insee_code
            )));
            continue;
        }
        if !address.postcode_belongs(&b.postcode, &b.insee_code) {
            problems.push(at(format!(
                "building {}: postcode {} does not belong to commune {} ({})",
                b.id, b.postcode, b.insee_code, b.city
            )));
            continue;
        }
        let territory = &model.cooperators[coop as usize].territory;
        let commune = address.current_commune(&b.insee_code);
        if !territory
            .iter()
            .any(|t| address.current_commune(t) == commune)
        {
            problems.push(at(format!(
                "building {}: commune {} is outside the territory of {}",
                b.id, b.insee_code, b.cooperator_id
            )));
            continue;
        }
        let indexed = IndexedBuilding {
            street_number: &b.street_number,
            street_name: &b.street_name,
            insee_code: &b.insee_code,
        };
        if let Err(e) = address.add_building(buildings.len() as u32, &indexed) {
            let message = match e {
                crate::routing::address::IndexError::Duplicate(other) => format!(
                    "building {}: same address as building {}",
                    b.id, buildings[other as usize].building.id
                ),
                other => format!("building {}: {other}", b.id),
            };
            problems.push(at(message));
            continue;
        }
        buildings.push(RegistryBuilding {
            building: b,
            cooperator: coop,
            sector,
        });
    }
    buildings
}

fn check_tenants(
    path: &Path,
    rows: Vec<registry::Located<Tenant>>,
    buildings: &[RegistryBuilding],
    problems: &mut Vec<Problem>,
) -> Vec<Tenant> {
    let known: HashSet<&str> = buildings.iter().map(|b| b.building.id.as_str()).collect();
    let mut seen: FxHashMap<String, usize> = FxHashMap::default();
    let mut tenants = Vec::with_capacity(rows.len());
    for row in rows {
        let t = row.value;
        if let Some(first) = seen.insert(t.reference.clone(), row.line) {
            problems.push(Problem::new(
                path,
                Some(row.line),
                format!("duplicate tenant reference (first at line {first})"),
            ));
            continue;
        }
        if !known.contains(t.building_id.as_str()) {
            problems.push(Problem::new(
                path,
                Some(row.line),
                format!("tenant row names unknown building '{}'", t.building_id),
            ));
            continue;
        }
        if crate::routing::text::normalize_phone(&t.phone).is_none() {
            problems.push(Problem::new(
                path,
                Some(row.line),
                "tenant phone has no digits",
            ));
            continue;
        }
        tenants.push(t);
    }
    tenants
}
