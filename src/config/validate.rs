//! Checks that need the whole compiled configuration: rules hidden by earlier rules, `team_of`
//! targets that some cooperator lacks, and `U1` cover when a cooperator is closed.
//!
//! The `U1` check is exhaustive rather than heuristic: the space of facts a rule can test is small
//! (cooperator × sector × lift × heating × issue type × closed/holiday), so every combination is
//! decided with the real rules and each one that leaves a `U1` request with a closed team is reported.

use std::collections::BTreeSet;

use crate::diagnostics::Problem;
use crate::routing::calendar::TimeFacts;
use crate::routing::model::{CooperatorIdx, SectorIdx, Target};
use crate::routing::places::Heating;
use crate::routing::urgency::Urgency;
use crate::routing::{Router, RuleFacts};

/// Every problem of the compiled configuration.
pub fn check_router(router: &Router) -> Vec<Problem> {
    let mut problems = unreachable_rules(router);
    problems.extend(missing_team_of(router));
    problems.extend(u1_cover(router));
    problems
}

fn unreachable_rules(router: &Router) -> Vec<Problem> {
    let mut problems = Vec::new();
    for (j, later) in router.rules.iter().enumerate() {
        let hidden_by = router.rules[..j].iter().enumerate().find(|(i, earlier)| {
            // Urgency conditions are only comparable when no rule in between can raise urgency.
            let urgency_stable = earlier.when.urgencies.is_none()
                || router.rules[*i..j]
                    .iter()
                    .all(|r| r.raise_urgency.is_none());
            earlier.target.is_some() && urgency_stable && earlier.when.covers(&later.when)
        });
        if let Some((_, earlier)) = hidden_by {
            problems.push(Problem::new(
                &later.origin.file,
                Some(later.origin.line),
                format!(
                    "rule {} can never match: rule {} (line {}) takes every request it would",
                    later.id, earlier.id, earlier.origin.line
                ),
            ));
        }
    }
    problems
}

/// The cooperators a rule can match.
fn cooperators_of(router: &Router, listed: &Option<Vec<CooperatorIdx>>) -> Vec<CooperatorIdx> {
    match listed {
        Some(list) => list.clone(),
        None => (0..router.cooperators.len() as CooperatorIdx).collect(),
    }
}

fn sectors_of(router: &Router, coop: CooperatorIdx) -> Vec<SectorIdx> {
    router
        .sectors
        .iter()
        .enumerate()
        .filter(|(_, s)| s.cooperator == coop)
        .map(|(i, _)| i as SectorIdx)
        .collect()
}

fn missing_team_of(router: &Router) -> Vec<Problem> {
    let mut problems = Vec::new();
    for rule in &router.rules {
        let Some(Target::TeamOf(kind)) = rule.target else {
            continue;
        };
        for coop in cooperators_of(router, &rule.when.cooperators) {
            let missing: Vec<&str> = sectors_of(router, coop)
                .into_iter()
                .filter(|s| {
                    rule.when
                        .sectors
                        .as_ref()
                        .is_none_or(|list| list.contains(s))
                })
                .filter(|&s| router.team_of(coop, kind, Some(s)).is_none())
                .map(|s| router.sectors[s as usize].id.as_str())
                .collect();
            if !missing.is_empty() {
                problems.push(Problem::new(
                    &rule.origin.file,
                    Some(rule.origin.line),
                    format!(
                        "rule {} sends to the {} team, but {} has none for sector {}",
                        rule.id,
                        kind.as_str(),
                        router.cooperators[coop as usize].id,
                        missing.join(", ")
                    ),
                ));
            }
        }
    }
    problems
}

/// A `U1` request decided while closed that reaches neither a staffed team nor an on-call line:
/// the cooperator, the rule (`None`: its default team), the team and the issue code.
type Gap = (CooperatorIdx, Option<usize>, String, String);

fn u1_cover(router: &Router) -> Vec<Problem> {
    let mut gaps: BTreeSet<Gap> = BTreeSet::new();
    for coop in 0..router.cooperators.len() as CooperatorIdx {
        let sectors: Vec<Option<SectorIdx>> = sectors_of(router, coop)
            .into_iter()
            .map(Some)
            .chain([None])
            .collect();
        for issue in &router.issue_types {
            for &sector in &sectors {
                for has_lift in [Some(true), Some(false), None] {
                    for heating in [Some(Heating::Collective), Some(Heating::Individual), None] {
                        let facts = RuleFacts {
                            cooperator: coop,
                            sector,
                            has_lift,
                            heating,
                            issue_code: &issue.code,
                            time: CLOSED,
                        };
                        gaps.extend(closed_gaps(router, facts, issue.urgency));
                    }
                }
            }
        }
    }
    report_gaps(router, &gaps)
}

/// Closed on a working day, and on a public holiday.
const CLOSED: TimeFacts = TimeFacts {
    open: false,
    holiday: false,
};

/// The gaps of one combination of facts, on a closed working day and a closed holiday.
fn closed_gaps(router: &Router, facts: RuleFacts<'_>, urgency: Urgency) -> Vec<Gap> {
    let holiday = TimeFacts {
        open: false,
        holiday: true,
    };
    [CLOSED, holiday]
        .into_iter()
        .filter_map(|time| {
            let facts = RuleFacts { time, ..facts };
            let choice = router.choose(&facts, urgency);
            let team = &router.teams[choice.team as usize];
            let uncovered = choice.urgency == Urgency::U1
                && choice.transfer_to.is_none()
                && !team.always_staffed;
            uncovered.then(|| {
                let rule = choice
                    .rule
                    .and_then(|r| router.rules.iter().position(|x| std::ptr::eq(x, r)));
                (
                    facts.cooperator,
                    rule,
                    team.id.clone(),
                    facts.issue_code.to_owned(),
                )
            })
        })
        .collect()
}

/// One problem per cooperator, rule and team, listing the issue codes left without cover.
fn report_gaps(router: &Router, gaps: &BTreeSet<Gap>) -> Vec<Problem> {
    let mut problems = Vec::new();
    let mut reported: BTreeSet<(CooperatorIdx, Option<usize>, String)> = BTreeSet::new();
    for (coop, rule, team, _) in gaps {
        if !reported.insert((*coop, *rule, team.clone())) {
            continue;
        }
        let issues: Vec<&str> = gaps
            .iter()
            .filter(|(c, r, t, _)| c == coop && r == rule && t == team)
            .map(|(_, _, _, code)| code.as_str())
            .collect();
        let cooperator = &router.cooperators[*coop as usize];
        let (origin, via) = match rule {
            Some(i) => {
                let r = &router.rules[*i];
                (&r.origin, format!("rule {}", r.id))
            }
            None => (&cooperator.origin, "its default team".to_owned()),
        };
        problems.push(Problem::new(
            &origin.file,
            Some(origin.line),
            format!(
                "{} has no U1 cover when closed: {} sends {} to team {}, which is not staffed out of hours and is no on-call transfer",
                cooperator.id,
                via,
                issues.join(", "),
                team
            ),
        ));
    }
    problems
}
