//! Compiling the issue taxonomy and the ordered rules: well-formed and unique codes and ids, every
//! reference resolved (cooperators, sectors, teams, issue prefixes that match the taxonomy), and
//! exactly one target per rule or an urgency raise.

use rustc_hash::FxHashMap;
use toml::Spanned;

use super::files::{IssueTypesFile, RuleFile, RulesFile};
use super::model::{Ids, Model};
use crate::diagnostics::{Origin, Problem, SourceFile};
use crate::routing::model::{Condition, IncidentGroup, IssueType, Rule, Target, issue_has_prefix};

pub(super) fn compile_issue_types(
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

pub(super) fn compile_rules(
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
    let names = Names { source, rule: &id };
    let cooperators = names.resolve(
        &rule.cooperators,
        &model.cooperator_by_id,
        "cooperator",
        problems,
    );
    let sectors = names.resolve(&rule.sectors, &model.sector_by_id, "sector", problems);
    let issue_prefixes = rule
        .issue
        .as_ref()
        .map(|prefixes| names.issue_prefixes(prefixes, issue_types, problems));
    let target = compile_target(source, &rule, model, problems);
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

/// The references of one rule, resolved with problems that name the rule.
struct Names<'a> {
    source: &'a SourceFile,
    rule: &'a str,
}

impl Names<'_> {
    /// Ids resolved to indices; unknown ones are reported and left out.
    fn resolve(
        &self,
        list: &Option<Vec<Spanned<String>>>,
        map: &FxHashMap<String, u16>,
        what: &str,
        problems: &mut Vec<Problem>,
    ) -> Option<Vec<u16>> {
        list.as_ref().map(|items| {
            items
                .iter()
                .filter_map(|item| {
                    let found = map.get(item.get_ref()).copied();
                    if found.is_none() {
                        problems.push(self.source.problem_at(
                            item.span(),
                            format!(
                                "rule {} names unknown {what} '{}'",
                                self.rule,
                                item.get_ref()
                            ),
                        ));
                    }
                    found
                })
                .collect()
        })
    }

    /// Issue prefixes, each of which must match some issue type of the taxonomy.
    fn issue_prefixes(
        &self,
        prefixes: &[Spanned<String>],
        issue_types: &[IssueType],
        problems: &mut Vec<Problem>,
    ) -> Vec<String> {
        prefixes
            .iter()
            .map(|p| {
                let matches_some = issue_types
                    .iter()
                    .any(|t| issue_has_prefix(&t.code, p.get_ref()));
                if !matches_some {
                    problems.push(self.source.problem_at(
                        p.span(),
                        format!(
                            "rule {}: issue '{}' matches no issue type of the taxonomy",
                            self.rule,
                            p.get_ref()
                        ),
                    ));
                }
                p.get_ref().clone()
            })
            .collect()
    }
}

/// A rule's target: at most one of `team`, `team_of`, `on_call`; a rule with none must raise urgency.
fn compile_target(
    source: &SourceFile,
    rule: &RuleFile,
    model: &Model,
    problems: &mut Vec<Problem>,
) -> Option<Target> {
    let id = rule.id.get_ref();
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
    if let Some(team) = &rule.team {
        let found = model
            .team_by_id
            .get(team.get_ref())
            .map(|&t| Target::Team(t));
        if found.is_none() {
            problems.push(source.problem_at(
                team.span(),
                format!("rule {id} names unknown team '{}'", team.get_ref()),
            ));
        }
        found
    } else if let Some(kind) = rule.team_of {
        Some(Target::TeamOf(kind))
    } else {
        rule.on_call.then_some(Target::OnCall)
    }
}
