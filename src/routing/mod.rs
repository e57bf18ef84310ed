//! The routing core: given a tenant request and a moment, decide which landlord, which team, how
//! urgent, and why — with no I/O.
//!
//! A [`Router`] is one loaded configuration (model, registries, address index). It is immutable:
//! a reload builds a new one and swaps it whole, so a decision never sees half of two
//! configurations. [`Router::decide`] is a pure function of the router, the request and the time.
//!
//! The decision takes three steps:
//! 1. **locate** the home: tenant reference, else caller phone, else the stated address;
//! 2. **choose** the target with the ordered rules (first targeting rule wins; rules without a
//!    target only raise urgency), falling back to the cooperator's default team — and sending
//!    anything not located to a single cooperator to the platform's triage team;
//! 3. **explain**: the rule id and the steps taken, in order.

pub mod address;
pub mod calendar;
pub mod model;
pub mod partition;
pub mod places;
pub mod request;
pub mod text;
pub mod urgency;

use chrono::{DateTime, Utc};
use rustc_hash::FxHashMap;
use serde::Serialize;

use self::address::{AddressIndex, AddressInput, Match, MatchLevel};
use self::calendar::{TimeFacts, time_facts};
use self::model::{
    Cooperator, CooperatorIdx, IssueType, Platform, Rule, Sector, SectorIdx, Target, Team, TeamIdx,
    TeamKind, TimeCondition, issue_has_prefix,
};
use self::partition::{Partition, QueueRef};
use self::places::{Building, Heating, Tenant};
use self::request::RouteRequest;
use self::urgency::Urgency;

/// A candidate for an ambiguous address: a building, or a commune when the commune itself is
/// ambiguous (a name shared by communes of two départements).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Candidate {
    pub building_id: Option<String>,
    /// The cooperator, when the candidate names one.
    pub cooperator_id: Option<String>,
    pub insee_code: String,
    /// The candidate's address (or postcode and commune), normalised.
    pub normalized: String,
}

/// How the address (or the caller) was matched to the registry.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AddressMatch {
    pub building_id: Option<String>,
    pub level: MatchLevel,
    pub confidence: f32,
    pub normalized: String,
    pub candidates: Vec<Candidate>,
    /// INSEE code of the commune, when known for sure.
    pub insee_code: Option<String>,
}

/// The routing decision, with the reasons for it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RoutingDecision {
    pub cooperator_id: Option<String>,
    pub team_id: String,
    pub urgency: Urgency,
    pub rule_id: String,
    /// The number to transfer the call to (on-call line), when the call must be transferred now.
    pub transfer_to: Option<String>,
    pub reasons: Vec<String>,
    /// Key of the building-wide incident this request belongs to, if any.
    pub incident_id: Option<String>,
    pub address_match: AddressMatch,
    /// The issue category (first segment of the issue type), a bounded label for metrics.
    pub issue_category: String,
}

/// A request the router cannot decide on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    #[error("unknown issue type '{0}'")]
    UnknownIssueType(String),
}

/// Rule ids of the decisions no configured rule takes.
pub const TRIAGE_RULE: &str = "platform-triage";
/// Prefix of the rule id of a cooperator's default team (`default:touraine-logement`).
pub const DEFAULT_RULE_PREFIX: &str = "default:";

/// A building with its resolved cooperator and sector.
#[derive(Debug, Clone)]
pub struct RegistryBuilding {
    pub building: Building,
    pub cooperator: CooperatorIdx,
    pub sector: SectorIdx,
}

/// What a configuration holds once its ids are resolved; [`Router::new`] indexes it.
pub struct RouterParts {
    pub platform: Platform,
    pub cooperators: Vec<Cooperator>,
    pub sectors: Vec<Sector>,
    pub teams: Vec<Team>,
    pub issue_types: Vec<IssueType>,
    pub rules: Vec<Rule>,
    pub buildings: Vec<RegistryBuilding>,
    pub tenants: Vec<Tenant>,
    pub address: AddressIndex,
}

/// One loaded configuration, ready to decide.
pub struct Router {
    pub platform: Platform,
    pub cooperators: Vec<Cooperator>,
    pub sectors: Vec<Sector>,
    pub teams: Vec<Team>,
    pub issue_types: Vec<IssueType>,
    pub rules: Vec<Rule>,
    pub buildings: Vec<RegistryBuilding>,
    address: AddressIndex,
    issue_by_code: FxHashMap<String, usize>,
    team_by_id: FxHashMap<String, TeamIdx>,
    cooperator_by_id: FxHashMap<String, CooperatorIdx>,
    building_by_id: FxHashMap<String, u32>,
    tenant_building: FxHashMap<String, u32>,
    phone_buildings: FxHashMap<String, Vec<u32>>,
    /// Current commune → cooperators serving it (territory or buildings).
    commune_cooperators: FxHashMap<u32, Vec<CooperatorIdx>>,
    team_of: FxHashMap<(CooperatorIdx, TeamKind, Option<SectorIdx>), TeamIdx>,
    tenant_count: usize,
}

/// Where a request was located.
struct Location {
    building: Option<u32>,
    cooperator: Option<CooperatorIdx>,
    sector: Option<SectorIdx>,
    matched: AddressMatch,
}

impl Router {
    /// Indexes the parts. Registry consistency (known cooperators, sectors, buildings) is checked
    /// by the configuration loader before this is called; unknown references are skipped here.
    pub fn new(parts: RouterParts) -> Router {
        let issue_by_code = parts
            .issue_types
            .iter()
            .enumerate()
            .map(|(i, t)| (t.code.clone(), i))
            .collect();
        let team_by_id = parts
            .teams
            .iter()
            .enumerate()
            .map(|(i, t)| (t.id.clone(), i as TeamIdx))
            .collect();
        let cooperator_by_id = parts
            .cooperators
            .iter()
            .enumerate()
            .map(|(i, c)| (c.id.clone(), i as CooperatorIdx))
            .collect();
        let building_by_id: FxHashMap<String, u32> = parts
            .buildings
            .iter()
            .enumerate()
            .map(|(i, b)| (b.building.id.clone(), i as u32))
            .collect();
        let mut tenant_building = FxHashMap::default();
        let mut phone_buildings: FxHashMap<String, Vec<u32>> = FxHashMap::default();
        for tenant in &parts.tenants {
            let Some(&b) = building_by_id.get(&tenant.building_id) else {
                continue;
            };
            tenant_building.insert(tenant.reference.clone(), b);
            if let Some(phone) = text::normalize_phone(&tenant.phone) {
                let homes = phone_buildings.entry(phone).or_default();
                if !homes.contains(&b) {
                    homes.push(b);
                }
            }
        }
        let mut commune_cooperators: FxHashMap<u32, Vec<CooperatorIdx>> = FxHashMap::default();
        let mut serve = |commune: Option<u32>, coop: CooperatorIdx| {
            if let Some(c) = commune {
                let list = commune_cooperators.entry(c).or_default();
                if !list.contains(&coop) {
                    list.push(coop);
                }
            }
        };
        for (i, coop) in parts.cooperators.iter().enumerate() {
            for insee in &coop.territory {
                serve(parts.address.current_commune(insee), i as CooperatorIdx);
            }
        }
        for b in &parts.buildings {
            serve(
                parts.address.current_commune(&b.building.insee_code),
                b.cooperator,
            );
        }
        let mut team_of = FxHashMap::default();
        for (i, team) in parts.teams.iter().enumerate() {
            if let Some(coop) = team.cooperator {
                team_of
                    .entry((coop, team.kind, team.sector))
                    .or_insert(i as TeamIdx);
            }
        }
        Router {
            platform: parts.platform,
            cooperators: parts.cooperators,
            sectors: parts.sectors,
            teams: parts.teams,
            issue_types: parts.issue_types,
            rules: parts.rules,
            buildings: parts.buildings,
            address: parts.address,
            issue_by_code,
            team_by_id,
            cooperator_by_id,
            building_by_id,
            tenant_building,
            phone_buildings,
            commune_cooperators,
            team_of,
            tenant_count: parts.tenants.len(),
        }
    }

    /// How many tenants the registry holds.
    pub fn tenant_count(&self) -> usize {
        self.tenant_count
    }

    /// The issue type of a code.
    pub fn issue_type(&self, code: &str) -> Option<&IssueType> {
        self.issue_by_code.get(code).map(|&i| &self.issue_types[i])
    }

    /// The team of an id.
    pub fn team(&self, id: &str) -> Option<&Team> {
        self.team_by_id.get(id).map(|&i| &self.teams[i as usize])
    }

    /// The cooperator of an id.
    pub fn cooperator(&self, id: &str) -> Option<&Cooperator> {
        self.cooperator_by_id
            .get(id)
            .map(|&i| &self.cooperators[i as usize])
    }

    /// A building of the registry by id.
    pub fn building(&self, id: &str) -> Option<&RegistryBuilding> {
        self.building_by_id
            .get(id)
            .map(|&i| &self.buildings[i as usize])
    }

    /// Every partition: one per cooperator, then the platform's.
    pub fn partitions(&self) -> Vec<Partition> {
        self.cooperators
            .iter()
            .map(|c| Partition::Cooperator(c.id.clone()))
            .chain([Partition::Platform])
            .collect()
    }

    /// The partition of a configured cooperator.
    pub fn partition_of(&self, cooperator: CooperatorIdx) -> Partition {
        Partition::Cooperator(self.cooperators[cooperator as usize].id.clone())
    }

    /// The queues of a team: its cooperator's partition, or every partition for shared teams
    /// (contractors), or the platform's for the platform's own teams.
    pub fn queues_of(&self, team: &Team) -> Vec<QueueRef> {
        match (team.cooperator, team.kind) {
            (Some(c), _) => vec![QueueRef::new(self.partition_of(c), &team.id)],
            (None, TeamKind::Contractor) => self
                .partitions()
                .into_iter()
                .map(|p| QueueRef::new(p, &team.id))
                .collect(),
            (None, _) => vec![QueueRef::new(Partition::Platform, &team.id)],
        }
    }

    /// Every queue of every team.
    pub fn all_queues(&self) -> Vec<QueueRef> {
        self.teams.iter().flat_map(|t| self.queues_of(t)).collect()
    }

    /// Matches an address alone, without the rest of a decision.
    pub fn match_address(&self, input: &AddressInput) -> AddressMatch {
        self.locate_address(input, &mut Vec::new()).matched
    }

    /// The cooperators serving a commune (by INSEE code).
    pub fn cooperators_of_commune(&self, insee: &str) -> Vec<&str> {
        self.address
            .current_commune(insee)
            .and_then(|c| self.commune_cooperators.get(&c))
            .map(|list| {
                list.iter()
                    .map(|&i| self.cooperators[i as usize].id.as_str())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Decides where a request goes at time `at`.
    pub fn decide(
        &self,
        request: &RouteRequest,
        at: DateTime<Utc>,
    ) -> Result<RoutingDecision, RouteError> {
        let issue = self
            .issue_type(&request.issue_type)
            .ok_or_else(|| RouteError::UnknownIssueType(request.issue_type.clone()))?;
        let mut reasons = Vec::with_capacity(6);
        let location = self.locate(request, &mut reasons);
        let mut urgency = issue.urgency;
        reasons.push(format!(
            "issue {} ({}): default urgency {}",
            issue.code, issue.label, urgency
        ));
        let incident_id = location.building.and_then(|b| {
            let building = &self.buildings[b as usize].building;
            let group = issue.incident.as_ref()?;
            if group.collective_heating_only && building.heating != Heating::Collective {
                return None;
            }
            Some(format!("{}/{}", building.id, group.name))
        });
        if let Some(id) = &incident_id {
            reasons.push(format!("building-wide issue: incident {id}"));
        }
        let Some(coop_idx) = location.cooperator else {
            return Ok(self.triage(issue, urgency, at, location, reasons, incident_id));
        };
        let coop = &self.cooperators[coop_idx as usize];
        let facts = time_facts(self.platform.timezone, &coop.hours, at);
        reasons.push(format!(
            "{} is {}",
            coop.id,
            match (facts.open, facts.holiday) {
                (true, _) => "open",
                (false, true) => "closed (public holiday)",
                (false, false) => "closed",
            }
        ));
        let building = location
            .building
            .map(|b| &self.buildings[b as usize].building);
        let facts_for_rules = RuleFacts {
            cooperator: coop_idx,
            sector: location.sector,
            has_lift: building.map(|b| b.has_lift),
            heating: building.map(|b| b.heating),
            issue_code: &issue.code,
            time: facts,
        };
        let choice = self.choose(&facts_for_rules, urgency);
        for rule in &choice.raised_by {
            reasons.push(format!(
                "rule {}: urgency raised to {} ({})",
                rule.id,
                rule.raise_urgency.unwrap_or(urgency),
                rule.description
            ));
        }
        urgency = choice.urgency;
        let team_id = &self.teams[choice.team as usize].id;
        let rule_id = match choice.rule {
            Some(rule) => {
                reasons.push(format!(
                    "rule {}: {} → {team_id}",
                    rule.id, rule.description
                ));
                rule.id.clone()
            }
            None => {
                reasons.push(format!("no rule matched: default team {team_id}"));
                format!("{DEFAULT_RULE_PREFIX}{}", coop.id)
            }
        };
        let transfer_to = choice.transfer_to;
        if let Some(number) = &transfer_to {
            reasons.push(format!("transfer the call to the on-call line {number}"));
        }
        Ok(RoutingDecision {
            cooperator_id: Some(coop.id.clone()),
            team_id: team_id.clone(),
            urgency,
            rule_id,
            transfer_to,
            reasons,
            incident_id,
            address_match: location.matched,
            issue_category: issue.category().to_owned(),
        })
    }

    /// Runs the ordered rules for a located request: urgency raises apply in order, the first
    /// rule with a target wins, and the cooperator's default team takes what no rule targets.
    pub fn choose(&self, facts: &RuleFacts<'_>, default_urgency: Urgency) -> Choice<'_> {
        let mut urgency = default_urgency;
        let mut raised_by = Vec::new();
        for rule in &self.rules {
            if !facts.matches(rule, urgency) {
                continue;
            }
            if let Some(raised) = rule.raise_urgency
                && raised < urgency
            {
                urgency = raised;
                raised_by.push(rule);
            }
            if let Some(target) = rule.target {
                let (team, transfer_to) = self.resolve(target, facts.cooperator, facts.sector);
                return Choice {
                    rule: Some(rule),
                    team,
                    transfer_to,
                    urgency,
                    raised_by,
                };
            }
        }
        Choice {
            rule: None,
            team: self.cooperators[facts.cooperator as usize].default_team,
            transfer_to: None,
            urgency,
            raised_by,
        }
    }

    fn triage(
        &self,
        issue: &IssueType,
        urgency: Urgency,
        at: DateTime<Utc>,
        location: Location,
        mut reasons: Vec<String>,
        incident_id: Option<String>,
    ) -> RoutingDecision {
        reasons.push("no single cooperator located: platform triage".to_owned());
        let facts = time_facts(self.platform.timezone, &self.platform.hours, at);
        let transfer_to = (urgency == Urgency::U1 && !facts.open).then(|| {
            reasons.push(format!(
                "U1 while the platform is closed: transfer to the platform's on-call line {}",
                self.platform.on_call
            ));
            self.platform.on_call.clone()
        });
        RoutingDecision {
            cooperator_id: None,
            team_id: self.teams[self.platform.triage_team as usize].id.clone(),
            urgency,
            rule_id: TRIAGE_RULE.to_owned(),
            transfer_to,
            reasons,
            incident_id,
            address_match: location.matched,
            issue_category: issue.category().to_owned(),
        }
    }

    /// The team a target names for a cooperator, and the number to transfer to if any.
    fn resolve(
        &self,
        target: Target,
        coop: CooperatorIdx,
        sector: Option<SectorIdx>,
    ) -> (TeamIdx, Option<String>) {
        let cooperator = &self.cooperators[coop as usize];
        match target {
            Target::Team(team) => (team, None),
            Target::OnCall => (cooperator.on_call_team, Some(cooperator.on_call.clone())),
            Target::TeamOf(kind) => (
                self.team_of(coop, kind, sector)
                    .unwrap_or(cooperator.default_team),
                None,
            ),
        }
    }

    /// The team a [`Target::TeamOf`] names, if the cooperator has it (for validation).
    pub fn team_of(
        &self,
        coop: CooperatorIdx,
        kind: TeamKind,
        sector: Option<SectorIdx>,
    ) -> Option<TeamIdx> {
        self.team_of
            .get(&(coop, kind, sector))
            .or_else(|| self.team_of.get(&(coop, kind, None)))
            .copied()
    }

    fn locate(&self, request: &RouteRequest, reasons: &mut Vec<String>) -> Location {
        let reference = request.tenant_reference.trim();
        if !reference.is_empty() {
            if let Some(&b) = self.tenant_building.get(reference) {
                reasons.push(format!(
                    "located by tenant reference: building {}",
                    self.buildings[b as usize].building.id
                ));
                return self.at_building(b, 1.0);
            }
            reasons.push("tenant reference not in the registry".to_owned());
        }
        if let Some(phone) = text::normalize_phone(&request.caller_number) {
            match self.phone_buildings.get(&phone).map(Vec::as_slice) {
                Some([b]) => {
                    reasons.push(format!(
                        "located by caller phone: building {}",
                        self.buildings[*b as usize].building.id
                    ));
                    return self.at_building(*b, 0.95);
                }
                Some(homes) => reasons.push(format!(
                    "caller phone is registered for {} homes",
                    homes.len()
                )),
                None => {}
            }
        }
        if request.address.is_empty() {
            reasons.push("no tenant reference, known phone or address".to_owned());
            return Location {
                building: None,
                cooperator: None,
                sector: None,
                matched: self.no_match(String::new()),
            };
        }
        self.locate_address(&request.address, reasons)
    }

    fn at_building(&self, b: u32, confidence: f32) -> Location {
        let rb = &self.buildings[b as usize];
        Location {
            building: Some(b),
            cooperator: Some(rb.cooperator),
            sector: Some(rb.sector),
            matched: AddressMatch {
                building_id: Some(rb.building.id.clone()),
                level: MatchLevel::Building,
                confidence,
                normalized: normalized_address(&rb.building),
                candidates: Vec::new(),
                insee_code: Some(rb.building.insee_code.clone()),
            },
        }
    }

    fn no_match(&self, normalized: String) -> AddressMatch {
        AddressMatch {
            building_id: None,
            level: MatchLevel::None,
            confidence: 0.0,
            normalized,
            candidates: Vec::new(),
            insee_code: None,
        }
    }

    fn locate_address(&self, input: &AddressInput, reasons: &mut Vec<String>) -> Location {
        let found: Match = self.address.find(input);
        if let Some(b) = found.building {
            reasons.push(format!(
                "address matched building {} (confidence {:.2})",
                self.buildings[b as usize].building.id, found.confidence
            ));
            let mut location = self.at_building(b, found.confidence);
            location.matched.normalized = found.normalized;
            return location;
        }
        let insee_code = found.commune.map(|c| self.address.commune(c).0.to_owned());
        let mut candidates: Vec<Candidate> = found
            .candidate_buildings
            .iter()
            .take(address::MAX_CANDIDATES)
            .map(|&b| {
                let rb = &self.buildings[b as usize];
                Candidate {
                    building_id: Some(rb.building.id.clone()),
                    cooperator_id: Some(self.cooperators[rb.cooperator as usize].id.clone()),
                    insee_code: rb.building.insee_code.clone(),
                    normalized: normalized_address(&rb.building),
                }
            })
            .collect();
        candidates.extend(found.candidate_communes.iter().map(|&c| {
            let (insee, name) = self.address.commune(c);
            let served = self.commune_cooperators.get(&c).map(Vec::as_slice);
            Candidate {
                building_id: None,
                cooperator_id: match served {
                    Some([one]) => Some(self.cooperators[*one as usize].id.clone()),
                    _ => None,
                },
                insee_code: insee.to_owned(),
                normalized: text::normalize(&format!(
                    "{} {name}",
                    self.address.postcodes(c).join(" ")
                )),
            }
        }));
        let matched = AddressMatch {
            building_id: None,
            level: found.level,
            confidence: found.confidence,
            normalized: found.normalized,
            candidates,
            insee_code,
        };
        let (cooperator, sector) = match found.level {
            MatchLevel::Street => {
                let coop = unanimous(
                    found
                        .candidate_buildings
                        .iter()
                        .map(|&b| self.buildings[b as usize].cooperator),
                );
                let sector = unanimous(
                    found
                        .candidate_buildings
                        .iter()
                        .map(|&b| self.buildings[b as usize].sector),
                );
                match coop {
                    Some(c) => reasons.push(format!(
                        "address matched a street of {} but not a building",
                        self.cooperators[c as usize].id
                    )),
                    None => reasons.push(
                        "address matched streets of several cooperators: ambiguous".to_owned(),
                    ),
                }
                (coop, sector)
            }
            MatchLevel::Commune => {
                let served = found
                    .commune
                    .and_then(|c| self.commune_cooperators.get(&c))
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                match (found.commune, served) {
                    (Some(c), [one]) => {
                        reasons.push(format!(
                            "address matched commune {} only, served by {} alone",
                            self.address.commune(c).0,
                            self.cooperators[*one as usize].id
                        ));
                        (Some(*one), None)
                    }
                    (Some(c), []) => {
                        reasons.push(format!(
                            "address matched commune {} only, which no cooperator serves",
                            self.address.commune(c).0
                        ));
                        (None, None)
                    }
                    (Some(c), many) => {
                        reasons.push(format!(
                            "address matched commune {} only, shared by {} cooperators: the building decides",
                            self.address.commune(c).0,
                            many.len()
                        ));
                        (None, None)
                    }
                    (None, _) => {
                        reasons.push(format!(
                            "address names {} possible communes: ambiguous",
                            found.candidate_communes.len().max(2)
                        ));
                        (None, None)
                    }
                }
            }
            MatchLevel::None | MatchLevel::Building => {
                reasons.push("address not recognised".to_owned());
                (None, None)
            }
        };
        Location {
            building: None,
            cooperator,
            sector,
            matched,
        }
    }
}

/// A registry building's address, normalised.
fn normalized_address(b: &Building) -> String {
    text::normalize(&format!(
        "{} {} {} {}",
        b.street_number, b.street_name, b.postcode, b.city
    ))
}

/// The one value every item shares, if they all share one.
fn unanimous<T: PartialEq + Copy>(mut items: impl Iterator<Item = T>) -> Option<T> {
    let first = items.next()?;
    items.all(|x| x == first).then_some(first)
}

/// The facts about a located request that rules test.
pub struct RuleFacts<'a> {
    pub cooperator: CooperatorIdx,
    pub sector: Option<SectorIdx>,
    /// Building attributes, known when the building is.
    pub has_lift: Option<bool>,
    pub heating: Option<Heating>,
    pub issue_code: &'a str,
    pub time: TimeFacts,
}

/// The outcome of the rules for a located request.
pub struct Choice<'a> {
    /// The rule that chose the target; `None` for the cooperator's default team.
    pub rule: Option<&'a Rule>,
    pub team: TeamIdx,
    pub transfer_to: Option<String>,
    pub urgency: Urgency,
    /// Rules that raised the urgency, in order.
    pub raised_by: Vec<&'a Rule>,
}

impl RuleFacts<'_> {
    fn matches(&self, rule: &Rule, urgency: Urgency) -> bool {
        let when = &rule.when;
        if when
            .cooperators
            .as_ref()
            .is_some_and(|c| !c.contains(&self.cooperator))
        {
            return false;
        }
        if let Some(sectors) = &when.sectors
            && !self.sector.is_some_and(|s| sectors.contains(&s))
        {
            return false;
        }
        if let Some(prefixes) = &when.issue_prefixes
            && !prefixes
                .iter()
                .any(|p| issue_has_prefix(self.issue_code, p))
        {
            return false;
        }
        if when
            .urgencies
            .as_ref()
            .is_some_and(|u| !u.contains(&urgency))
        {
            return false;
        }
        let time_ok = match when.time {
            None => true,
            Some(TimeCondition::Open) => self.time.open,
            Some(TimeCondition::Closed) => !self.time.open,
            Some(TimeCondition::Holiday) => self.time.holiday,
        };
        if !time_ok {
            return false;
        }
        if when.has_lift.is_some() && when.has_lift != self.has_lift {
            return false;
        }
        !(when.heating.is_some() && when.heating != self.heating)
    }
}
