//! Presence and oversight: an agent's desk keeps its presence alive; supervisors and operators read
//! queue statistics and agents of the partitions they oversee; operators reload the configuration.

use std::collections::BTreeMap;

use chrono::Utc;

use super::policy::{self, UseCase};
use super::principal::Principal;
use super::{App, AppError, allow, teams_named};
use crate::routing::partition::QueueRef;
use crate::store::{AgentStatus, Presence, QueueStats, StateCounts};

/// Statistics of the queues a caller oversees.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueOverview {
    /// Depth and oldest wait per queue and urgency.
    pub queues: Vec<QueueStats>,
    /// Per queue: tickets by state, and the team's agents by presence.
    pub teams: Vec<TeamOverview>,
}

/// One queue's counts.
#[derive(Debug, Clone, PartialEq)]
pub struct TeamOverview {
    pub queue: QueueRef,
    pub counts: StateCounts,
    pub agents_by_presence: BTreeMap<Presence, u64>,
}

/// What a successful reload put in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reloaded {
    pub generation: u64,
    pub summary: String,
}

impl App {
    /// Records the caller's presence; the desk calls it at least once per presence TTL.
    pub async fn set_agent_status(
        &self,
        principal: &Principal,
        presence: Presence,
    ) -> Result<AgentStatus, AppError> {
        allow(principal, UseCase::SetAgentStatus)?;
        let status = AgentStatus {
            agent_id: principal.agent_id.clone(),
            partition: principal.partition.clone(),
            teams: principal.teams.clone(),
            presence,
            last_seen: Utc::now().timestamp_millis(),
        };
        self.store.heartbeat(&status).await?;
        Ok(status)
    }

    /// Statistics of the named teams' queues (every team when none are named) in the partitions
    /// the caller oversees.
    pub async fn get_queue_stats(
        &self,
        principal: &Principal,
        team_ids: &[String],
    ) -> Result<QueueOverview, AppError> {
        allow(principal, UseCase::GetQueueStats)?;
        let queues = {
            let snapshot = self.current();
            let router = &snapshot.router;
            let every: Vec<String> = router.teams.iter().map(|t| t.id.clone()).collect();
            let teams = teams_named(router, "team_ids", team_ids, &every)?;
            policy::overseen_queues(router, principal, &teams)?
        };
        let (stats, counts) = self.store.queue_stats(&queues).await?;
        let agents = self.store.agents().await?;
        let teams = counts
            .into_iter()
            .map(|(queue, counts)| {
                let mut agents_by_presence = BTreeMap::new();
                // A team's agents: its cooperator's, and the platform's staff who serve it there.
                for a in agents.iter().filter(|a| {
                    a.teams.contains(&queue.team)
                        && (a.partition == queue.partition || a.partition.is_platform())
                }) {
                    *agents_by_presence.entry(a.presence).or_insert(0u64) += 1;
                }
                TeamOverview {
                    queue,
                    counts,
                    agents_by_presence,
                }
            })
            .collect();
        Ok(QueueOverview {
            queues: stats,
            teams,
        })
    }

    /// The agents of the partitions the caller oversees.
    pub async fn list_agents(&self, principal: &Principal) -> Result<Vec<AgentStatus>, AppError> {
        allow(principal, UseCase::ListAgents)?;
        let agents = self.store.agents().await?;
        Ok(agents
            .into_iter()
            .filter(|a| policy::may_oversee(principal, &a.partition))
            .collect())
    }

    /// Reloads the configuration on an operator's request.
    pub async fn reload_config(&self, principal: &Principal) -> Result<Reloaded, AppError> {
        allow(principal, UseCase::ReloadConfig)?;
        let snapshot = self
            .reload("ReloadConfig")
            .await
            .map_err(AppError::ConfigRefused)?;
        let router = &snapshot.router;
        Ok(Reloaded {
            generation: snapshot.generation,
            summary: format!(
                "{} cooperators, {} teams, {} rules, {} buildings",
                router.cooperators.len(),
                router.teams.len(),
                router.rules.len(),
                router.buildings.len()
            ),
        })
    }
}
