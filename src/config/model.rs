//! Compiling the main file's organisation — cooperators, their sectors and teams, the platform —
//! into the routing model, with every id resolved to an index and every problem reported with its
//! line: unique and well-formed ids, sectors inside their cooperator's territory with one `rest`
//! sector, teams of known cooperators and sectors, a default team of one's own, an on-call team, a
//! supervisor team for every partition's escalations, a known time zone and a triage team.

use rustc_hash::FxHashMap;
use toml::Spanned;

use super::MainConfig;
use super::files::{CooperatorFile, MainFile, PlatformFile, TeamFile};
use crate::diagnostics::{Origin, Problem, SourceFile};
use crate::routing::address::AddressIndex;
use crate::routing::calendar::OpeningHours;
use crate::routing::model::{
    Cooperator, CooperatorIdx, Platform, Sector, SectorIdx, Team, TeamIdx, TeamKind,
};
use crate::routing::partition::{PLATFORM, Partition};

/// Cooperators, sectors, teams and the platform, with their ids resolved.
pub(super) struct Model {
    pub platform: Option<Platform>,
    pub cooperators: Vec<Cooperator>,
    pub sectors: Vec<Sector>,
    pub teams: Vec<Team>,
    pub cooperator_by_id: FxHashMap<String, CooperatorIdx>,
    pub sector_by_id: FxHashMap<String, SectorIdx>,
    pub team_by_id: FxHashMap<String, TeamIdx>,
}

/// Ids already seen in a file, to report duplicates at their second definition.
pub(super) struct Ids<'a> {
    source: &'a SourceFile,
    what: &'static str,
    seen: FxHashMap<String, usize>,
}

impl<'a> Ids<'a> {
    pub fn new(source: &'a SourceFile, what: &'static str) -> Ids<'a> {
        Ids {
            source,
            what,
            seen: FxHashMap::default(),
        }
    }

    /// Records an id; reports it if it is a duplicate or malformed.
    pub fn add(&mut self, id: &Spanned<String>, problems: &mut Vec<Problem>) {
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

/// Compiles the organisation of the main file; `territories` are the cooperators' communes, in
/// file order.
pub(super) fn compile_model(
    main: &MainConfig,
    territories: &[(String, Vec<String>)],
    address: &AddressIndex,
    problems: &mut Vec<Problem>,
) -> Model {
    let source = &main.source;
    let file = &main.file;
    let cooperator_by_id = cooperator_ids(source, file, problems);
    let (sectors, sector_by_id) = compile_sectors(source, file, territories, address, problems);
    let mut team_ids = Ids::new(source, "team");
    let mut teams = Vec::new();
    let mut team_by_id = FxHashMap::default();
    for team in &file.teams {
        team_ids.add(&team.id, problems);
        let resolved = Resolved {
            cooperators: &cooperator_by_id,
            sectors: &sectors,
            sector_by_id: &sector_by_id,
        };
        team_by_id.insert(team.id.get_ref().clone(), teams.len() as TeamIdx);
        teams.push(resolved.team(source, team, problems));
    }
    let teams_of = TeamRefs {
        source,
        teams: &teams,
        by_id: &team_by_id,
    };
    let cooperators = file
        .cooperators
        .iter()
        .enumerate()
        .map(|(c, coop)| {
            let territory = territories.get(c).map(|t| t.1.clone()).unwrap_or_default();
            compile_cooperator(&teams_of, c as CooperatorIdx, coop, territory, problems)
        })
        .collect();
    check_supervisors(source, file, &teams, problems);
    let platform = compile_platform(&teams_of, &file.platform, problems);
    Model {
        platform,
        cooperators,
        sectors,
        teams,
        cooperator_by_id,
        sector_by_id,
        team_by_id,
    }
}

/// The cooperators' ids and short codes: unique, well formed, and not the platform's name.
fn cooperator_ids(
    source: &SourceFile,
    file: &MainFile,
    problems: &mut Vec<Problem>,
) -> FxHashMap<String, CooperatorIdx> {
    let mut ids = Ids::new(source, "cooperator");
    let mut short_codes = Ids::new(source, "short code");
    let mut by_id = FxHashMap::default();
    for (i, coop) in file.cooperators.iter().enumerate() {
        ids.add(&coop.id, problems);
        if coop.id.get_ref() == PLATFORM {
            problems.push(source.problem_at(
                coop.id.span(),
                format!("'{PLATFORM}' names the platform's own partition, not a cooperator"),
            ));
        }
        by_id.insert(coop.id.get_ref().clone(), i as CooperatorIdx);
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
    by_id
}

/// Every cooperator's sectors: inside its territory, exactly one of them the `rest` sector.
fn compile_sectors(
    source: &SourceFile,
    file: &MainFile,
    territories: &[(String, Vec<String>)],
    address: &AddressIndex,
    problems: &mut Vec<Problem>,
) -> (Vec<Sector>, FxHashMap<String, SectorIdx>) {
    let mut ids = Ids::new(source, "sector");
    let mut sectors = Vec::new();
    let mut by_id = FxHashMap::default();
    for (c, coop) in file.cooperators.iter().enumerate() {
        let territory = territories
            .get(c)
            .map(|t| t.1.as_slice())
            .unwrap_or_default();
        for sector in &coop.sectors {
            ids.add(&sector.id, problems);
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
            by_id.insert(sector.id.get_ref().clone(), sectors.len() as SectorIdx);
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
        let rest = coop.sectors.iter().filter(|s| s.rest).count();
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
    (sectors, by_id)
}

/// What a team may refer to: the cooperators and sectors compiled before it.
struct Resolved<'a> {
    cooperators: &'a FxHashMap<String, CooperatorIdx>,
    sectors: &'a [Sector],
    sector_by_id: &'a FxHashMap<String, SectorIdx>,
}

impl Resolved<'_> {
    /// A team with its cooperator and sector resolved; shared kinds (triage, contractors) name no
    /// cooperator, the others must (supervisors exist both ways).
    fn team(&self, source: &SourceFile, team: &TeamFile, problems: &mut Vec<Problem>) -> Team {
        let id = team.id.get_ref();
        let cooperator = team.cooperator.as_ref().and_then(|c| {
            let found = self.cooperators.get(c.get_ref()).copied();
            if found.is_none() {
                problems.push(source.problem_at(
                    c.span(),
                    format!("team {id} names unknown cooperator '{}'", c.get_ref()),
                ));
            }
            found
        });
        let sector = team.sector.as_ref().and_then(|s| {
            let found = self.sector_by_id.get(s.get_ref()).copied();
            let message = match found {
                None => Some(format!("team {id} names unknown sector '{}'", s.get_ref())),
                Some(idx) if Some(self.sectors[idx as usize].cooperator) != cooperator => {
                    Some(format!(
                        "team {id}: sector '{}' is not a sector of its cooperator",
                        s.get_ref()
                    ))
                }
                Some(_) => None,
            };
            if let Some(message) = message {
                problems.push(source.problem_at(s.span(), message));
            }
            found
        });
        let shared_kind = matches!(team.kind, TeamKind::Triage | TeamKind::Contractor);
        let either = team.kind == TeamKind::Supervisor;
        if !either && shared_kind == team.cooperator.is_some() {
            let rule = if shared_kind {
                "are shared and must not name"
            } else {
                "must name"
            };
            problems.push(source.problem_at(
                team.id.span(),
                format!(
                    "team {id}: {} teams {rule} a cooperator",
                    team.kind.as_str()
                ),
            ));
        }
        Team {
            id: id.clone(),
            name: team.name.clone(),
            cooperator,
            kind: team.kind,
            sector,
            always_staffed: team.always_staffed || team.kind == TeamKind::OnCall,
        }
    }
}

/// The compiled teams, for entries that name one.
struct TeamRefs<'a> {
    source: &'a SourceFile,
    teams: &'a [Team],
    by_id: &'a FxHashMap<String, TeamIdx>,
}

impl TeamRefs<'_> {
    /// The team an entry names; an unknown one is reported.
    fn resolve(
        &self,
        id: &Spanned<String>,
        what: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<&Team> {
        let found = self
            .by_id
            .get(id.get_ref())
            .map(|&t| &self.teams[t as usize]);
        if found.is_none() {
            problems.push(self.source.problem_at(
                id.span(),
                format!("{what} names unknown team '{}'", id.get_ref()),
            ));
        }
        found
    }

    fn index(&self, id: &str) -> TeamIdx {
        self.by_id.get(id).copied().unwrap_or(0)
    }
}

fn compile_cooperator(
    teams: &TeamRefs<'_>,
    c: CooperatorIdx,
    coop: &CooperatorFile,
    territory: Vec<String>,
    problems: &mut Vec<Problem>,
) -> Cooperator {
    let source = teams.source;
    let id = coop.id.get_ref();
    let hours = parse_hours(source, &coop.hours, problems);
    check_phone(source, &coop.on_call, id, problems);
    let named = format!("cooperator {id}");
    if let Some(team) = teams.resolve(&coop.default_team, &named, problems)
        && team.cooperator != Some(c)
    {
        problems.push(source.problem_at(
            coop.default_team.span(),
            format!("default team of {id} must be one of its own teams"),
        ));
    }
    let on_call_team = teams
        .teams
        .iter()
        .position(|t| t.cooperator == Some(c) && t.kind == TeamKind::OnCall);
    if on_call_team.is_none() {
        problems.push(source.problem_at(
            coop.id.span(),
            format!("cooperator {id} has no on_call team"),
        ));
    }
    Cooperator {
        id: id.clone(),
        name: coop.name.clone(),
        short_code: coop.short_code.get_ref().clone(),
        hours,
        on_call: coop.on_call.get_ref().clone(),
        on_call_team: on_call_team.unwrap_or(0) as TeamIdx,
        default_team: teams.index(coop.default_team.get_ref()),
        territory,
        origin: Origin {
            file: source.path.clone(),
            line: source.line_of(coop.id.span().start),
        },
    }
}

/// Tickets of a partition escalate to its supervisor team after too many expired leases: every
/// partition needs one.
fn check_supervisors(
    source: &SourceFile,
    file: &MainFile,
    teams: &[Team],
    problems: &mut Vec<Problem>,
) {
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
}

/// The platform: a known time zone, opening hours, an on-call number and a triage team.
fn compile_platform(
    teams: &TeamRefs<'_>,
    platform: &PlatformFile,
    problems: &mut Vec<Problem>,
) -> Option<Platform> {
    let source = teams.source;
    let timezone = platform.timezone.get_ref().parse::<chrono_tz::Tz>().ok();
    if timezone.is_none() {
        problems.push(source.problem_at(
            platform.timezone.span(),
            format!("unknown time zone '{}'", platform.timezone.get_ref()),
        ));
    }
    let hours = parse_hours(source, &platform.hours, problems);
    check_phone(source, &platform.on_call, "the platform", problems);
    if let Some(team) = teams.resolve(&platform.triage_team, "platform", problems)
        && team.kind != TeamKind::Triage
    {
        problems.push(source.problem_at(
            platform.triage_team.span(),
            format!(
                "platform triage team '{}' must be of kind triage",
                platform.triage_team.get_ref()
            ),
        ));
    }
    Some(Platform {
        name: platform.name.clone(),
        timezone: timezone?,
        hours,
        on_call: platform.on_call.get_ref().clone(),
        triage_team: teams.index(platform.triage_team.get_ref()),
    })
}
