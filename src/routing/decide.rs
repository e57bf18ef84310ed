//! Choosing and explaining: the decision for a located request, the ordered rules (urgency
//! raises in order, the first targeting rule wins, the cooperator's default team takes the rest),
//! and the platform's triage for what is not located to one cooperator.

use chrono::{DateTime, Utc};

use super::calendar::TimeFacts;
use super::calendar::time_facts;
use super::locate::Location;
use super::model::{
    CooperatorIdx, IssueType, Rule, SectorIdx, Target, TeamIdx, TeamKind, TimeCondition,
    issue_has_prefix,
};
use super::places::Heating;
use super::request::RouteRequest;
use super::urgency::Urgency;
use super::{DEFAULT_RULE_PREFIX, RouteError, Router, RoutingDecision, TRIAGE_RULE};

/// A request located to one cooperator, on its way to the rules.
struct Located<'a> {
    issue: &'a IssueType,
    location: Location,
    incident_id: Option<String>,
}

impl Router {
    /// Decides where a request goes at time `at`. The reasons every decision gives are joined with
    /// `concat` rather than `format!`, which costs several times more on a path taken per call.
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
        let urgency = issue.urgency;
        reasons.push(
            [
                "issue ",
                &issue.code,
                " (",
                &issue.label,
                "): default urgency ",
                urgency.as_str(),
            ]
            .concat(),
        );
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
        let located = Located {
            issue,
            location,
            incident_id,
        };
        Ok(self.decide_for(coop_idx, located, at, reasons))
    }

    /// The decision for a request located to one cooperator: its calendar, then the rules.
    fn decide_for(
        &self,
        coop_idx: CooperatorIdx,
        located: Located<'_>,
        at: DateTime<Utc>,
        mut reasons: Vec<String>,
    ) -> RoutingDecision {
        let Located {
            issue,
            location,
            incident_id,
        } = located;
        let coop = &self.cooperators[coop_idx as usize];
        let facts = time_facts(self.platform.timezone, &coop.hours, at);
        let open = match (facts.open, facts.holiday) {
            (true, _) => " is open",
            (false, true) => " is closed (public holiday)",
            (false, false) => " is closed",
        };
        reasons.push([coop.id.as_str(), open].concat());
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
        let mut urgency = issue.urgency;
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
                reasons.push(["rule ", &rule.id, ": ", &rule.description, " → ", team_id].concat());
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
        RoutingDecision {
            cooperator_id: Some(coop.id.clone()),
            team_id: team_id.clone(),
            urgency,
            rule_id,
            transfer_to,
            reasons,
            incident_id,
            address_match: location.matched,
            issue_category: issue.category().to_owned(),
        }
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
