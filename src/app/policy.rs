//! Who may do what, decided in one place, as pure functions of the principal and the routing
//! configuration. A refusal is a typed [`Refusal`]; the transport maps it once.
//!
//! - `telephony` routes, explains and cancels calls;
//! - `agent` works tickets of its own teams, in its cooperator's partition (platform agents —
//!   triage and shared contractors — in every partition their teams have queues in);
//! - `supervisor` is an agent of its teams that also oversees its partition's tickets, queues and
//!   agents (the platform's supervisor: the platform's);
//! - `operator` reads every queue and agent, explains routes and reloads the configuration.
//!
//! A ticket of another cooperator is [`Refusal::Hidden`], answered as if it did not exist. Platform
//! staff work every cooperator's calls, so for them a ticket they do not hold is refused as not
//! held, not hidden. Transfers stay within the ticket's cooperator (shared contractors included),
//! except that the platform's triage agents hand calls to any cooperator and anyone may send a call
//! back to the platform's triage.

use std::fmt;

use super::principal::{Principal, Role};
use crate::routing::Router;
use crate::routing::model::{Team, TeamKind};
use crate::routing::partition::{Partition, QueueRef};

/// The use-cases of the service, named after the contract's RPCs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UseCase {
    RouteCall,
    ExplainRoute,
    CancelCall,
    ClaimNextTicket,
    AcceptTicket,
    CompleteTicket,
    ReleaseTicket,
    TransferTicket,
    GetTicket,
    ListTickets,
    WatchTickets,
    SetAgentStatus,
    GetQueueStats,
    ListAgents,
    ReloadConfig,
}

const DESK: &[Role] = &[Role::Agent, Role::Supervisor];
const OVERSIGHT: &[Role] = &[Role::Supervisor, Role::Operator];

impl UseCase {
    pub const ALL: [UseCase; 15] = [
        UseCase::RouteCall,
        UseCase::ExplainRoute,
        UseCase::CancelCall,
        UseCase::ClaimNextTicket,
        UseCase::AcceptTicket,
        UseCase::CompleteTicket,
        UseCase::ReleaseTicket,
        UseCase::TransferTicket,
        UseCase::GetTicket,
        UseCase::ListTickets,
        UseCase::WatchTickets,
        UseCase::SetAgentStatus,
        UseCase::GetQueueStats,
        UseCase::ListAgents,
        UseCase::ReloadConfig,
    ];

    /// The roles that may call this use-case at all (what they may reach is decided further).
    pub fn roles(self) -> &'static [Role] {
        match self {
            UseCase::RouteCall | UseCase::CancelCall => &[Role::Telephony],
            UseCase::ExplainRoute => &[Role::Telephony, Role::Operator],
            UseCase::ClaimNextTicket
            | UseCase::AcceptTicket
            | UseCase::CompleteTicket
            | UseCase::ReleaseTicket
            | UseCase::TransferTicket
            | UseCase::GetTicket
            | UseCase::ListTickets
            | UseCase::WatchTickets
            | UseCase::SetAgentStatus => DESK,
            UseCase::GetQueueStats | UseCase::ListAgents => OVERSIGHT,
            UseCase::ReloadConfig => &[Role::Operator],
        }
    }
}

impl fmt::Display for UseCase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Why the policy refuses.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("the {} role may not call {use_case}", role.as_str())]
    Role { role: Role, use_case: UseCase },
    #[error("team '{0}' is not one of yours")]
    NotYourTeam(String),
    #[error("none of these teams is yours to oversee")]
    NothingToOversee,
    #[error(
        "only the platform's triage agents transfer tickets to another cooperator; others may send them back to triage"
    )]
    CrossCooperatorTransfer,
    /// The ticket is in a partition the caller does not act in: its existence is not revealed.
    #[error("no such ticket")]
    Hidden,
}

/// Refuses a caller whose role may not call the use-case.
pub fn may_call(principal: &Principal, use_case: UseCase) -> Result<(), Refusal> {
    if use_case.roles().contains(&principal.role) {
        Ok(())
    } else {
        Err(Refusal::Role {
            role: principal.role,
            use_case,
        })
    }
}

/// Whether the caller may see a ticket of this partition and team.
pub fn may_see(principal: &Principal, partition: &Partition, team: &str) -> bool {
    match principal.role {
        Role::Telephony | Role::Operator => true,
        Role::Supervisor if *partition == principal.partition => true,
        Role::Agent | Role::Supervisor => {
            principal.has_team(team)
                && (principal.is_platform() || *partition == principal.partition)
        }
    }
}

/// Whether the caller may see queues and agents of this partition.
pub fn may_oversee(principal: &Principal, partition: &Partition) -> bool {
    match principal.role {
        Role::Operator => true,
        Role::Supervisor => *partition == principal.partition,
        Role::Agent | Role::Telephony => false,
    }
}

/// Refuses, as hidden, a ticket partition the caller does not act in.
pub fn may_act_in(principal: &Principal, partition: &Partition) -> Result<(), Refusal> {
    if principal.is_platform()
        || principal.role == Role::Operator
        || *partition == principal.partition
    {
        Ok(())
    } else {
        Err(Refusal::Hidden)
    }
}

/// The queues of the named teams the caller may read (list, watch): its own teams' queues it may
/// see, and every queue of a partition it oversees.
pub fn visible_queues(
    router: &Router,
    principal: &Principal,
    teams: &[&Team],
) -> Result<Vec<QueueRef>, Refusal> {
    queues_where(router, teams, |q| {
        (principal.has_team(&q.team) && may_see(principal, &q.partition, &q.team))
            || may_oversee(principal, &q.partition)
    })
}

/// The queues the caller claims from: only its own teams, in the partitions it works in.
pub fn claimable_queues(
    router: &Router,
    principal: &Principal,
    teams: &[&Team],
) -> Result<Vec<QueueRef>, Refusal> {
    queues_where(router, teams, |q| {
        principal.has_team(&q.team) && may_see(principal, &q.partition, &q.team)
    })
}

/// The teams' queues that pass `allowed`; a team left with none is refused as not the caller's.
fn queues_where(
    router: &Router,
    teams: &[&Team],
    allowed: impl Fn(&QueueRef) -> bool,
) -> Result<Vec<QueueRef>, Refusal> {
    let mut queues = Vec::new();
    for team in teams {
        let before = queues.len();
        queues.extend(router.queues_of(team).into_iter().filter(&allowed));
        if queues.len() == before {
            return Err(Refusal::NotYourTeam(team.id.clone()));
        }
    }
    Ok(queues)
}

/// The queues of the named teams in partitions the caller oversees (statistics).
pub fn overseen_queues(
    router: &Router,
    principal: &Principal,
    teams: &[&Team],
) -> Result<Vec<QueueRef>, Refusal> {
    let queues: Vec<QueueRef> = teams
        .iter()
        .flat_map(|team| router.queues_of(team))
        .filter(|q| may_oversee(principal, &q.partition))
        .collect();
    if queues.is_empty() {
        Err(Refusal::NothingToOversee)
    } else {
        Ok(queues)
    }
}

/// Whether the caller may move a ticket from partition `source` to `team` in partition `target`.
pub fn may_transfer(
    router: &Router,
    principal: &Principal,
    source: &Partition,
    target: &Partition,
    team: &Team,
) -> Result<(), Refusal> {
    let triage_agent = principal.is_platform()
        && principal
            .teams
            .iter()
            .any(|t| router.team(t).is_some_and(|x| x.kind == TeamKind::Triage));
    // Any agent may hand a call that is not its cooperator's back to the platform's triage.
    let back_to_triage = team.kind == TeamKind::Triage;
    if target == source || triage_agent || back_to_triage {
        Ok(())
    } else {
        Err(Refusal::CrossCooperatorTransfer)
    }
}
