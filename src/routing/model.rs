//! The routing model: cooperators, sectors, teams, the issue taxonomy and the ordered rules, as
//! compiled from configuration files. Ids are resolved to indices once, at load time, so that a
//! decision compares small integers, never strings.

use serde::{Deserialize, Serialize};

use super::calendar::OpeningHours;
use super::places::Heating;
use super::urgency::Urgency;
use crate::diagnostics::Origin;

/// Index of a cooperator in [`super::Router::cooperators`].
pub type CooperatorIdx = u16;
/// Index of a sector in [`super::Router::sectors`].
pub type SectorIdx = u16;
/// Index of a team in [`super::Router::teams`].
pub type TeamIdx = u16;

/// What a team does; rules can target "the located cooperator's team of this kind".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamKind {
    FrontDesk,
    /// One per sector: rules targeting it pick the building's sector.
    Technical,
    Rent,
    Social,
    OnCall,
    Supervisor,
    /// The platform's own team for requests that could not be located.
    Triage,
    /// A contractor shared by all cooperators.
    Contractor,
}

impl TeamKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TeamKind::FrontDesk => "front_desk",
            TeamKind::Technical => "technical",
            TeamKind::Rent => "rent",
            TeamKind::Social => "social",
            TeamKind::OnCall => "on_call",
            TeamKind::Supervisor => "supervisor",
            TeamKind::Triage => "triage",
            TeamKind::Contractor => "contractor",
        }
    }
}

/// The shared call-reception platform itself.
#[derive(Debug, Clone)]
pub struct Platform {
    pub name: String,
    pub timezone: chrono_tz::Tz,
    pub hours: OpeningHours,
    /// Where emergencies that could not be located are transferred when the platform is closed.
    pub on_call: String,
    pub triage_team: TeamIdx,
}

/// A landlord.
#[derive(Debug, Clone)]
pub struct Cooperator {
    pub id: String,
    pub name: String,
    /// Two or three capitals used to prefix registry ids (`TL`).
    pub short_code: String,
    pub hours: OpeningHours,
    /// The on-call (astreinte) number emergencies are transferred to out of hours.
    pub on_call: String,
    pub on_call_team: TeamIdx,
    /// Where a request goes when no rule targets it.
    pub default_team: TeamIdx,
    /// INSEE codes of the communes the cooperator serves.
    pub territory: Vec<String>,
    pub origin: Origin,
}

/// A cooperator's local agency.
#[derive(Debug, Clone)]
pub struct Sector {
    pub id: String,
    pub name: String,
    pub cooperator: CooperatorIdx,
    /// INSEE codes of the communes this sector covers; the cooperator's `rest` sector covers the others.
    pub communes: Vec<String>,
    pub rest: bool,
}

/// Where tickets queue.
#[derive(Debug, Clone)]
pub struct Team {
    pub id: String,
    pub name: String,
    /// `None` for the platform's and contractors' teams.
    pub cooperator: Option<CooperatorIdx>,
    pub kind: TeamKind,
    pub sector: Option<SectorIdx>,
    /// Staffed day and night: may take `U1` requests when the cooperator is closed.
    pub always_staffed: bool,
}

/// A building-wide issue: later calls about the same building and group join the open incident.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncidentGroup {
    pub name: String,
    /// Only buildings with collective heating share the incident (a flat's own boiler is its own).
    pub collective_heating_only: bool,
}

/// An entry of the issue taxonomy.
#[derive(Debug, Clone)]
pub struct IssueType {
    pub code: String,
    pub label: String,
    pub urgency: Urgency,
    pub incident: Option<IncidentGroup>,
}

impl IssueType {
    /// The first segment of the code (`technical`), used as a bounded label.
    pub fn category(&self) -> &str {
        category_of(&self.code)
    }
}

/// The category of an issue type's code: its first segment (`technical` of
/// `technical.plumbing.leak`).
pub fn category_of(code: &str) -> &str {
    code.split('.').next().unwrap_or(code)
}

/// When, relative to the cooperator's calendar, a rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeCondition {
    /// Within opening hours, not a public holiday.
    Open,
    /// Outside opening hours, including public holidays.
    Closed,
    /// A public holiday.
    Holiday,
}

/// The conditions of a rule; every one given must hold. `None` means "any".
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Condition {
    pub cooperators: Option<Vec<CooperatorIdx>>,
    pub sectors: Option<Vec<SectorIdx>>,
    /// Dotted prefixes of issue codes, matched on whole segments (`technical.heating`).
    pub issue_prefixes: Option<Vec<String>>,
    pub urgencies: Option<Vec<Urgency>>,
    pub time: Option<TimeCondition>,
    pub has_lift: Option<bool>,
    pub heating: Option<Heating>,
}

/// Where a rule sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// A named team (a contractor, or one cooperator's team).
    Team(TeamIdx),
    /// The located cooperator's team of this kind (for `technical`, the building's sector's).
    TeamOf(TeamKind),
    /// The cooperator's on-call team, with a transfer to its on-call number.
    OnCall,
}

/// One routing rule. A rule without a target only raises urgency, and evaluation continues.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub when: Condition,
    pub target: Option<Target>,
    pub raise_urgency: Option<Urgency>,
    pub origin: Origin,
}

/// Whether issue code `code` falls under dotted prefix `prefix`, on whole segments.
pub fn issue_has_prefix(code: &str, prefix: &str) -> bool {
    code == prefix
        || (code.len() > prefix.len()
            && code.starts_with(prefix)
            && code.as_bytes()[prefix.len()] == b'.')
}

impl Condition {
    /// Whether every request this condition matches is also matched by `self` (so a later rule
    /// with `other` can never be reached behind a rule with `self`).
    pub fn covers(&self, other: &Condition) -> bool {
        fn set_covers<T: PartialEq>(a: &Option<Vec<T>>, b: &Option<Vec<T>>) -> bool {
            match (a, b) {
                (None, _) => true,
                (Some(_), None) => false,
                (Some(a), Some(b)) => b.iter().all(|x| a.contains(x)),
            }
        }
        fn value_covers<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
            a.is_none() || a == b
        }
        let prefixes = match (&self.issue_prefixes, &other.issue_prefixes) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(a), Some(b)) => b.iter().all(|p| a.iter().any(|q| issue_has_prefix(p, q))),
        };
        let time = match (self.time, other.time) {
            (None, _) => true,
            (Some(TimeCondition::Closed), Some(TimeCondition::Holiday)) => true,
            (a, b) => a == b,
        };
        set_covers(&self.cooperators, &other.cooperators)
            && set_covers(&self.sectors, &other.sectors)
            && set_covers(&self.urgencies, &other.urgencies)
            && prefixes
            && time
            && value_covers(&self.has_lift, &other.has_lift)
            && value_covers(&self.heating, &other.heating)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        assert!(issue_has_prefix(
            "technical.heating.no_heat",
            "technical.heating"
        ));
        assert!(issue_has_prefix("technical.heating.no_heat", "technical"));
        assert!(issue_has_prefix("technical", "technical"));
        assert!(!issue_has_prefix("technical.heatingx", "technical.heating"));
        assert!(!issue_has_prefix("technical", "technical.heating"));
    }

    #[test]
    fn coverage_of_conditions() {
        let any = Condition::default();
        let technical = Condition {
            issue_prefixes: Some(vec!["technical".into()]),
            ..Condition::default()
        };
        let heating_closed = Condition {
            issue_prefixes: Some(vec!["technical.heating".into()]),
            time: Some(TimeCondition::Holiday),
            ..Condition::default()
        };
        let closed_technical = Condition {
            time: Some(TimeCondition::Closed),
            ..technical.clone()
        };
        assert!(any.covers(&technical));
        assert!(technical.covers(&heating_closed));
        assert!(closed_technical.covers(&heating_closed));
        assert!(!heating_closed.covers(&technical));
        assert!(!closed_technical.covers(&technical));
        let lift = Condition {
            has_lift: Some(true),
            ..Condition::default()
        };
        assert!(!lift.covers(&any));
        assert!(any.covers(&lift));
    }
}
