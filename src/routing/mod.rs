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
mod decide;
mod locate;
pub mod model;
pub mod partition;
pub mod places;
pub mod request;
pub mod street_types;
pub mod text;
pub mod urgency;

pub use self::decide::{Choice, RuleFacts};

use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};

use self::address::{AddressIndex, MatchLevel};
use self::model::{
    Cooperator, CooperatorIdx, IssueType, Platform, Rule, Sector, SectorIdx, Team, TeamIdx,
    TeamKind,
};
use self::partition::{Partition, QueueRef};
use self::places::{Building, Tenant};
use self::urgency::Urgency;

/// A candidate for an ambiguous address: a building, or a commune when the commune itself is
/// ambiguous (a name shared by communes of two départements).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Candidate {
    pub building_id: Option<String>,
    /// The cooperator, when the candidate names one.
    pub cooperator_id: Option<String>,
    pub insee_code: String,
    /// The candidate's address (or postcode and commune), normalised.
    pub normalized: String,
}

/// How the address (or the caller) was matched to the registry.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    /// Its address normalised, as a decision located at the building shows it (made once, at
    /// load: normalising costs more than the rest of locating a call).
    pub normalized: String,
}

impl RegistryBuilding {
    pub fn new(building: Building, cooperator: CooperatorIdx, sector: SectorIdx) -> Self {
        let normalized = text::normalize(&format!(
            "{} {} {} {}",
            building.street_number, building.street_name, building.postcode, building.city
        ));
        RegistryBuilding {
            building,
            cooperator,
            sector,
            normalized,
        }
    }
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

impl Router {
    /// Indexes the parts. Registry consistency (known cooperators, sectors, buildings) is checked
    /// by the configuration loader before this is called; unknown references are skipped here.
    pub fn new(parts: RouterParts) -> Router {
        let building_by_id: FxHashMap<String, u32> = index_by(&parts.buildings, |b| &b.building.id);
        let (tenant_building, phone_buildings) = index_tenants(&parts.tenants, &building_by_id);
        let commune_cooperators = index_commune_cooperators(&parts);
        let mut team_of = FxHashMap::default();
        for (i, team) in parts.teams.iter().enumerate() {
            if let Some(coop) = team.cooperator {
                team_of
                    .entry((coop, team.kind, team.sector))
                    .or_insert(i as TeamIdx);
            }
        }
        Router {
            issue_by_code: index_by(&parts.issue_types, |t| &t.code),
            team_by_id: index_by(&parts.teams, |t| &t.id),
            cooperator_by_id: index_by(&parts.cooperators, |c| &c.id),
            platform: parts.platform,
            cooperators: parts.cooperators,
            sectors: parts.sectors,
            teams: parts.teams,
            issue_types: parts.issue_types,
            rules: parts.rules,
            buildings: parts.buildings,
            address: parts.address,
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
}

/// Items by their id, as indices of the same type the router keeps.
fn index_by<T, I: TryFrom<usize> + Default>(
    items: &[T],
    id: impl Fn(&T) -> &String,
) -> FxHashMap<String, I> {
    items
        .iter()
        .enumerate()
        .map(|(i, item)| (id(item).clone(), I::try_from(i).unwrap_or_default()))
        .collect()
}

/// Tenant reference → building, and normalised phone → the buildings it is registered for.
fn index_tenants(
    tenants: &[Tenant],
    building_by_id: &FxHashMap<String, u32>,
) -> (FxHashMap<String, u32>, FxHashMap<String, Vec<u32>>) {
    let mut tenant_building = FxHashMap::default();
    let mut phone_buildings: FxHashMap<String, Vec<u32>> = FxHashMap::default();
    for tenant in tenants {
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
    (tenant_building, phone_buildings)
}

/// Current commune → the cooperators serving it, by territory or by buildings.
fn index_commune_cooperators(parts: &RouterParts) -> FxHashMap<u32, Vec<CooperatorIdx>> {
    let mut served: FxHashMap<u32, Vec<CooperatorIdx>> = FxHashMap::default();
    let territories = parts.cooperators.iter().enumerate().flat_map(|(i, coop)| {
        coop.territory
            .iter()
            .map(move |insee| (insee.as_str(), i as CooperatorIdx))
    });
    let buildings = parts
        .buildings
        .iter()
        .map(|b| (b.building.insee_code.as_str(), b.cooperator));
    for (insee, coop) in territories.chain(buildings) {
        if let Some(c) = parts.address.current_commune(insee) {
            let list = served.entry(c).or_default();
            if !list.contains(&coop) {
                list.push(coop);
            }
        }
    }
    served
}
