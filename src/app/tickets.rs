//! The agents' use-cases on tickets: claim the next one across their teams, then, as its holder
//! (the claim's lease token fences stale holders out), accept, complete, release or transfer it;
//! read one ticket or a queue's waiting tickets.

use std::time::Duration;

use super::calls::queue_of;
use super::policy::{self, UseCase};
use super::principal::Principal;
use super::requests::HeldAction;
use super::{App, AppError, allow, teams_named};
use crate::routing::model::TeamKind;
use crate::routing::partition::{Partition, QueueRef};
use crate::routing::request::{FieldError, required_text};
use crate::routing::urgency::Urgency;
use crate::store::{Hold, Millis, NextClaim, Ticket, partition_of};

/// Where a transfer sends a ticket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransferTo {
    pub team_id: String,
    /// For a shared contractor: which cooperator's queue (the ticket's own when `None`).
    pub cooperator_id: Option<String>,
    /// Raises the ticket's urgency; `None` keeps it.
    pub urgency: Option<Urgency>,
}

/// One line of a ticket's history: when (the store's clock) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub at: Millis,
    pub what: String,
}

impl HistoryEntry {
    /// A line as the store keeps it, `<milliseconds> <what>`; one without a time keeps it all.
    pub fn parse(line: &str) -> HistoryEntry {
        let timed = line
            .split_once(' ')
            .and_then(|(at, what)| Some((at.parse::<Millis>().ok()?, what)));
        let (at, what) = timed.unwrap_or((0, line));
        HistoryEntry {
            at,
            what: what.to_owned(),
        }
    }
}

impl App {
    /// Claims the most urgent, longest-waiting ticket across the caller's teams (all of them
    /// when none are named), under a lease. With a claim id chosen by the desk, a retry whose
    /// first answer was lost gets the same hold back, as long as it is current.
    pub async fn claim_next_ticket(
        &self,
        principal: &Principal,
        team_ids: &[String],
        lease: Duration,
        claim_id: Option<&str>,
    ) -> Result<Option<Ticket>, AppError> {
        allow(principal, UseCase::ClaimNextTicket)?;
        let claim_id = claim_id.map(|c| required_text("claim_id", c)).transpose()?;
        let queues = self.claimable(principal, team_ids)?;
        let ticket = self
            .store
            .claim_next(&principal.agent_id, &queues, lease, claim_id.as_deref())
            .await?;
        if let Some(t) = &ticket {
            self.record_claim(t);
        }
        Ok(ticket)
    }

    /// A desk's "done, next": completes a held ticket, then claims the next one as
    /// [`App::claim_next_ticket`] does, in one step of the store when it can (one Redis round
    /// trip when the next ticket waits in the ticket's partition). A refused completion claims
    /// nothing; a retry whose answer was lost finds the completion done and, with the same claim
    /// id, the same hold. The completed ticket, and the claimed one if any.
    pub async fn complete_and_claim_next(
        &self,
        principal: &Principal,
        action: &HeldAction,
        resolution: &str,
        team_ids: &[String],
        lease: Duration,
        claim_id: Option<&str>,
    ) -> Result<(Ticket, Option<Ticket>), AppError> {
        allow(principal, UseCase::CompleteTicket)?;
        allow(principal, UseCase::ClaimNextTicket)?;
        let resolution = required_text("resolution", resolution)?;
        let hold = holder(principal, action)?;
        let claim_id = claim_id.map(|c| required_text("claim_id", c)).transpose()?;
        let queues = self.claimable(principal, team_ids)?;
        let next = NextClaim {
            queues: &queues,
            lease,
            claim_id: claim_id.as_deref(),
        };
        let (completed, claimed) = self
            .store
            .complete_and_claim(&action.ticket_id, &hold, &resolution, &next)
            .await?;
        self.record_completion(&completed);
        if let Some(t) = &claimed {
            self.record_claim(t);
        }
        Ok((completed, claimed))
    }

    /// The queues an agent claims from: those of the named teams (all the agent's when none are
    /// named) that the policy lets the agent claim.
    fn claimable(
        &self,
        principal: &Principal,
        team_ids: &[String],
    ) -> Result<Vec<QueueRef>, AppError> {
        if let Some(team) = team_ids.iter().find(|t| !principal.has_team(t)) {
            return Err(policy::Refusal::NotYourTeam(team.clone()).into());
        }
        let snapshot = self.current();
        let router = &snapshot.router;
        let teams = teams_named(router, "team_ids", team_ids, &principal.teams)?;
        Ok(policy::claimable_queues(router, principal, &teams)?)
    }

    /// A claim's wait and whether it was on time, in the metrics.
    fn record_claim(&self, t: &Ticket) {
        let claimed = t.claimed_at.unwrap_or(t.enqueued_at);
        let on_time = t.sla_due_at <= 0 || claimed <= t.sla_due_at;
        self.metrics
            .claimed(&queue_of(t), t.urgency, claimed - t.enqueued_at, on_time);
    }

    /// A completion's handle time and whether it breached its due time, in the metrics.
    fn record_completion(&self, ticket: &Ticket) {
        if let (Some(closed), Some(claimed)) = (ticket.closed_at, ticket.claimed_at) {
            let breached = ticket.sla_due_at > 0 && closed > ticket.sla_due_at;
            self.metrics.completed(
                &queue_of(ticket),
                ticket.urgency,
                closed - claimed,
                breached,
            );
        }
    }

    /// `RESERVED → IN_PROGRESS`, renewing the lease (the default lease when none is asked for).
    pub async fn accept_ticket(
        &self,
        principal: &Principal,
        action: &HeldAction,
        lease: Option<Duration>,
    ) -> Result<Ticket, AppError> {
        allow(principal, UseCase::AcceptTicket)?;
        let hold = holder(principal, action)?;
        let lease = lease.unwrap_or(self.settings.default_lease);
        Ok(self.store.accept(&action.ticket_id, &hold, lease).await?)
    }

    /// Completes a held ticket with a resolution.
    pub async fn complete_ticket(
        &self,
        principal: &Principal,
        action: &HeldAction,
        resolution: &str,
    ) -> Result<Ticket, AppError> {
        allow(principal, UseCase::CompleteTicket)?;
        let resolution = required_text("resolution", resolution)?;
        let hold = holder(principal, action)?;
        let ticket = self
            .store
            .complete(&action.ticket_id, &hold, &resolution)
            .await?;
        self.record_completion(&ticket);
        Ok(ticket)
    }

    /// Puts a held ticket back in its queue, at its original place.
    pub async fn release_ticket(
        &self,
        principal: &Principal,
        action: &HeldAction,
    ) -> Result<Ticket, AppError> {
        allow(principal, UseCase::ReleaseTicket)?;
        let hold = holder(principal, action)?;
        let ticket = self.store.release(&action.ticket_id, &hold).await?;
        self.metrics.released(&queue_of(&ticket));
        Ok(ticket)
    }

    /// Sends a held ticket to another team's queue (another partition's, when the policy allows).
    pub async fn transfer_ticket(
        &self,
        principal: &Principal,
        action: &HeldAction,
        to: &TransferTo,
    ) -> Result<Ticket, AppError> {
        allow(principal, UseCase::TransferTicket)?;
        let team_id = required_text("team_id", &to.team_id)?;
        let hold = holder(principal, action)?;
        let source = partition_of(&action.ticket_id)?;
        let target = {
            let snapshot = self.current();
            let router = &snapshot.router;
            let team = router
                .team(&team_id)
                .ok_or_else(|| FieldError::new("team_id", format!("unknown team '{team_id}'")))?;
            let partition = match (team.cooperator, team.kind, &to.cooperator_id) {
                (Some(c), _, _) => router.partition_of(c),
                (None, TeamKind::Contractor, Some(coop)) => {
                    if router.cooperator(coop).is_none() {
                        return Err(FieldError::new(
                            "cooperator_id",
                            format!("unknown cooperator '{coop}'"),
                        )
                        .into());
                    }
                    Partition::Cooperator(coop.clone())
                }
                (None, TeamKind::Contractor, None) => source.clone(),
                (None, _, _) => Partition::Platform,
            };
            policy::may_transfer(router, principal, &source, &partition, team)?;
            QueueRef::new(partition, &team_id)
        };
        let ticket = self
            .store
            .transfer(&action.ticket_id, &hold, &target, to.urgency)
            .await?;
        self.metrics.transferred(&target, &source);
        Ok(ticket)
    }

    /// A ticket the caller may see.
    pub async fn get_ticket(
        &self,
        principal: &Principal,
        ticket_id: &str,
    ) -> Result<Ticket, AppError> {
        allow(principal, UseCase::GetTicket)?;
        let ticket_id = required_text("ticket_id", ticket_id)?;
        policy::may_act_in(principal, &partition_of(&ticket_id)?)?;
        match self.store.get(&ticket_id).await? {
            Some(t) if policy::may_see(principal, &t.partition, &t.team_id) => Ok(t),
            _ => Err(AppError::NotFound),
        }
    }

    /// A ticket the caller may see, with its history, oldest first.
    pub async fn get_ticket_with_history(
        &self,
        principal: &Principal,
        ticket_id: &str,
    ) -> Result<(Ticket, Vec<HistoryEntry>), AppError> {
        let ticket = self.get_ticket(principal, ticket_id).await?;
        let lines = self.store.history(&ticket.ticket_id).await?;
        Ok((
            ticket,
            lines.iter().map(|l| HistoryEntry::parse(l)).collect(),
        ))
    }

    /// The waiting tickets of a team the caller may see, most urgent and oldest first.
    pub async fn list_tickets(
        &self,
        principal: &Principal,
        team_id: &str,
        limit: usize,
    ) -> Result<Vec<Ticket>, AppError> {
        allow(principal, UseCase::ListTickets)?;
        let team_id = required_text("team_id", team_id)?;
        let queues = {
            let snapshot = self.current();
            let router = &snapshot.router;
            let teams = teams_named(router, "team_ids", &[team_id], &[])?;
            policy::visible_queues(router, principal, &teams)?
        };
        let mut tickets = Vec::new();
        for q in &queues {
            tickets.extend(self.store.list_queued(q, limit).await?);
        }
        tickets.sort_by_key(|t| (t.urgency, t.enqueued_at));
        tickets.truncate(limit);
        Ok(tickets)
    }

    /// The tickets the caller holds, across the partitions it works in: a desk restarted
    /// mid-hold recovers its tickets and their lease tokens.
    pub async fn list_held_tickets(
        &self,
        principal: &Principal,
        limit: usize,
    ) -> Result<Vec<Ticket>, AppError> {
        allow(principal, UseCase::ListTickets)?;
        let partitions = if principal.is_platform() {
            self.current().router.partitions()
        } else {
            vec![principal.partition.clone()]
        };
        let mut held = Vec::new();
        for partition in &partitions {
            held.extend(self.store.held_by(partition, &principal.agent_id).await?);
        }
        held.truncate(limit);
        Ok(held)
    }
}

/// The caller's hold on the ticket an action names, in a partition it works in.
fn holder(principal: &Principal, action: &HeldAction) -> Result<Hold, AppError> {
    policy::may_act_in(principal, &partition_of(&action.ticket_id)?)?;
    Ok(Hold {
        agent_id: principal.agent_id.clone(),
        lease_token: action.lease_token,
    })
}

#[cfg(test)]
mod tests {
    use super::HistoryEntry;

    #[test]
    fn a_history_line_is_its_time_and_what() {
        assert_eq!(
            HistoryEntry::parse("1700000000123 completed by ana: fixed the tap"),
            HistoryEntry {
                at: 1_700_000_000_123,
                what: "completed by ana: fixed the tap".to_owned()
            }
        );
        assert_eq!(HistoryEntry::parse("moved in").at, 0);
        assert_eq!(HistoryEntry::parse("moved in").what, "moved in");
    }
}
