//! The three gRPC services over one shared application state: the loaded configuration (swapped
//! whole on reload), the token table, and the queue store.
//!
//! Access control happens first in every method, through [`Principal`]: a missing or bad token is
//! `UNAUTHENTICATED`, a role acting outside its remit `PERMISSION_DENIED`, and a ticket of another
//! cooperator `NOT_FOUND` (its existence is not revealed).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use chrono::Utc;
use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::auth::{Principal, Role, Tokens};
use super::convert::{
    self, decision_to_pb, field_status, required_id, store_status, ticket_to_pb, timestamp,
    urgency_to_pb,
};
use super::pb;
use crate::diagnostics::ConfigError;
use crate::metrics::Metrics;
use crate::routing::model::{Team, TeamKind};
use crate::routing::request::FieldError;
use crate::routing::{RouteError, Router, calendar};
use crate::store::instrumented::InstrumentedStore;
use crate::store::{
    AgentStatus, Hold, NewTicket, PLATFORM_PARTITION, QueueRef, StoreError, Ticket, TicketStore,
    partition_of, supervisor_team,
};

/// A loaded configuration: the router and the tokens that go with it.
pub struct Loaded {
    pub router: Router,
    pub tokens: Tokens,
    /// 1 for the configuration loaded at start, then one more per successful reload.
    pub generation: u64,
}

/// Settings of the service layer.
#[derive(Debug, Clone)]
pub struct ServiceSettings {
    pub config_path: PathBuf,
    pub secrets_path: PathBuf,
    /// Lease of a claim when the agent does not ask for one.
    pub default_lease: Duration,
    /// How long `RouteCall` waits for the store before answering with the decision alone.
    pub store_deadline: Duration,
}

/// The shared state of the service. Cheap to clone.
#[derive(Clone)]
pub struct App {
    loaded: Arc<RwLock<Arc<Loaded>>>,
    store: Arc<dyn TicketStore>,
    settings: Arc<ServiceSettings>,
    /// Turns true when the server shuts down: watch streams end.
    closing: tokio::sync::watch::Receiver<bool>,
    metrics: Arc<Metrics>,
}

/// Loads configuration and tokens from files (blocking I/O: call from a blocking context).
pub fn load_files(settings: &ServiceSettings, generation: u64) -> Result<Loaded, ConfigError> {
    let router = crate::config::load(&settings.config_path)?;
    let tokens = Tokens::load(&settings.secrets_path, &router)?;
    Ok(Loaded {
        router,
        tokens,
        generation,
    })
}

impl App {
    /// The state over a store; when metrics record, store operations are timed too.
    pub fn new(
        loaded: Loaded,
        store: Arc<dyn TicketStore>,
        settings: ServiceSettings,
        metrics: Arc<Metrics>,
    ) -> App {
        metrics.config(loaded.generation);
        metrics.prime(&partitions_of(&loaded.router));
        let store: Arc<dyn TicketStore> = if metrics.is_enabled() {
            Arc::new(InstrumentedStore::new(store, metrics.clone()))
        } else {
            store
        };
        App {
            loaded: Arc::new(RwLock::new(Arc::new(loaded))),
            store,
            settings: Arc::new(settings),
            closing: tokio::sync::watch::channel(false).1,
            metrics,
        }
    }

    pub fn metrics(&self) -> Arc<Metrics> {
        self.metrics.clone()
    }

    /// The same state, with streams ending when `closing` turns true.
    pub fn with_closing(mut self, closing: tokio::sync::watch::Receiver<bool>) -> App {
        self.closing = closing;
        self
    }

    /// The configuration in force. The lock is held only to clone the `Arc`.
    pub fn current(&self) -> Arc<Loaded> {
        self.loaded
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn store(&self) -> Arc<dyn TicketStore> {
        self.store.clone()
    }

    /// Reloads configuration and tokens; a broken new configuration is refused with its problems
    /// and the one in force keeps serving.
    pub async fn reload(&self) -> Result<Arc<Loaded>, ConfigError> {
        let settings = self.settings.clone();
        let generation = self.current().generation + 1;
        let loaded = tokio::task::spawn_blocking(move || load_files(&settings, generation))
            .await
            .map_err(|e| {
                ConfigError::from(crate::diagnostics::Problem::new(
                    &self.settings.config_path,
                    None,
                    format!("reload task failed: {e}"),
                ))
            })??;
        let loaded = Arc::new(loaded);
        *self
            .loaded
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = loaded.clone();
        Ok(loaded)
    }

    /// Every partition: one per cooperator, and the platform's.
    pub fn partitions(&self) -> Vec<String> {
        partitions_of(&self.current().router)
    }

    fn authenticate<T>(&self, request: &Request<T>) -> Result<(Principal, Arc<Loaded>), Status> {
        let loaded = self.current();
        let principal = loaded.tokens.authenticate(request.metadata())?;
        Ok((principal, loaded))
    }
}

/// Every partition: one per cooperator, and the platform's.
pub fn partitions_of(router: &Router) -> Vec<String> {
    router
        .cooperators
        .iter()
        .map(|c| c.id.clone())
        .chain([PLATFORM_PARTITION.to_owned()])
        .collect()
}

/// The queues of a team: its cooperator's partition, or every partition for shared teams
/// (contractors), or the platform's for the platform's own teams.
pub fn queues_of(router: &Router, team: &Team) -> Vec<QueueRef> {
    match (team.cooperator, team.kind) {
        (Some(c), _) => vec![QueueRef::new(&router.cooperators[c as usize].id, &team.id)],
        (None, TeamKind::Contractor) => partitions_of(router)
            .iter()
            .map(|p| QueueRef::new(p, &team.id))
            .collect(),
        (None, _) => vec![QueueRef::new(PLATFORM_PARTITION, &team.id)],
    }
}

/// The queues of a team named in a request; an unknown team is `INVALID_ARGUMENT`.
fn queues_of_team(router: &Router, team_id: &str) -> Result<Vec<QueueRef>, Status> {
    let team = router.team(team_id).ok_or_else(|| {
        field_status(FieldError::new(
            "team_ids",
            format!("unknown team '{team_id}'"),
        ))
    })?;
    Ok(queues_of(router, team))
}

/// The queues a caller asks for (all of its teams when none are named), limited to what it may see.
fn visible_queues(
    router: &Router,
    principal: &Principal,
    team_ids: &[String],
) -> Result<Vec<QueueRef>, Status> {
    let teams: Vec<String> = if team_ids.is_empty() {
        principal.teams.clone()
    } else {
        team_ids.to_vec()
    };
    let mut queues = Vec::new();
    for team in &teams {
        let mine = principal.teams.contains(team);
        let candidates = queues_of_team(router, team)?;
        let visible: Vec<QueueRef> = candidates
            .into_iter()
            // One's own team's queues, or any queue of a partition one oversees.
            .filter(|q| {
                (mine && principal.may_see(&q.partition, &q.team))
                    || principal.may_oversee(&q.partition)
            })
            .collect();
        if visible.is_empty() {
            return Err(Status::permission_denied(format!(
                "team '{team}' is not one of yours"
            )));
        }
        queues.extend(visible);
    }
    Ok(queues)
}

/// Refuses, as not found, a ticket id whose partition the caller cannot act in.
fn check_partition(principal: &Principal, ticket_id: &str) -> Result<(), Status> {
    let partition = partition_of(ticket_id).map_err(store_status)?;
    if principal.is_platform()
        || principal.role == Role::Operator
        || partition == principal.cooperator
    {
        Ok(())
    } else {
        Err(Status::not_found("no such ticket"))
    }
}

/// Gets a ticket the caller may see, or `NOT_FOUND`.
async fn visible_ticket(
    app: &App,
    principal: &Principal,
    ticket_id: &str,
) -> Result<Ticket, Status> {
    check_partition(principal, ticket_id)?;
    match app.store.get(ticket_id).await.map_err(store_status)? {
        Some(t) if principal.may_see(&t.partition, &t.team_id) => Ok(t),
        _ => Err(Status::not_found("no such ticket")),
    }
}

/// The gRPC `CallRouting` service.
#[derive(Clone)]
pub struct CallRoutingService {
    pub app: App,
}

#[tonic::async_trait]
impl pb::call_routing_server::CallRouting for CallRoutingService {
    async fn route_call(
        &self,
        request: Request<pb::RouteCallRequest>,
    ) -> Result<Response<pb::RouteCallResponse>, Status> {
        let (principal, loaded) = self.app.authenticate(&request)?;
        principal.require(&[Role::Telephony])?;
        let route = convert::route_request(request.into_inner(), true)?;
        let now = Utc::now();
        let deciding = std::time::Instant::now();
        let decision = loaded.router.decide(&route, now).map_err(route_status)?;
        let decision_time = deciding.elapsed();
        let partition = decision
            .cooperator_id
            .clone()
            .unwrap_or_else(|| PLATFORM_PARTITION.to_owned());
        let (team, category, level) = (
            decision.team_id.clone(),
            decision.issue_category.clone(),
            decision.address_match.level.as_str(),
        );
        let metrics_partition = partition.clone();
        let new = NewTicket {
            call_id: route.call_id.clone(),
            escalation_team: supervisor_team(&partition),
            partition,
            cooperator_id: decision.cooperator_id.clone(),
            team_id: decision.team_id.clone(),
            urgency: decision.urgency,
            issue_type: route.issue_type.clone(),
            building_id: decision.address_match.building_id.clone(),
            incident_id: decision.incident_id.clone(),
            sla_due_at: calendar::sla_due(decision.urgency, loaded.router.platform.timezone, now)
                .timestamp_millis(),
            details: serde_json::to_string(&decision).unwrap_or_default(),
        };
        let stored =
            tokio::time::timeout(self.app.settings.store_deadline, self.app.store.create(new))
                .await;
        let outcome = match &stored {
            Ok(Ok(created)) if created.duplicate => "duplicate",
            Ok(Ok(created)) if created.joined_incident => "incident",
            Ok(Ok(_)) => "queued",
            _ => "degraded",
        };
        self.app.metrics.routed(
            &metrics_partition,
            &team,
            &category,
            outcome,
            level,
            decision_time,
        );
        let mut response = pb::RouteCallResponse {
            decision: Some(decision_to_pb(decision)),
            ..Default::default()
        };
        match stored {
            Ok(Ok(created)) => {
                let mut ticket = created.ticket;
                if let Some(moved_to) = ticket.moved_to.clone()
                    && let Ok(Some(moved)) = self.app.store.get(&moved_to).await
                {
                    ticket = moved;
                }
                response.duplicate = created.duplicate;
                response.joined_incident = created.joined_incident;
                response.queued = true;
                if let Some(position) = created.position {
                    response.queue_position = position.position;
                    response.estimated_wait_seconds = position.estimated_wait_seconds;
                }
                response.ticket = Some(ticket_to_pb(ticket));
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "RouteCall answered without queueing: store error")
            }
            Err(_) => tracing::warn!("RouteCall answered without queueing: store deadline passed"),
        }
        Ok(Response::new(response))
    }

    async fn explain_route(
        &self,
        request: Request<pb::RouteCallRequest>,
    ) -> Result<Response<pb::RoutingDecision>, Status> {
        let (principal, loaded) = self.app.authenticate(&request)?;
        principal.require(&[Role::Telephony, Role::Operator])?;
        let message = request.into_inner();
        let at = message
            .received_at
            .as_ref()
            .and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
            .unwrap_or_else(Utc::now);
        let route = convert::route_request(message, false)?;
        let decision = loaded.router.decide(&route, at).map_err(route_status)?;
        Ok(Response::new(decision_to_pb(decision)))
    }

    async fn cancel_call(
        &self,
        request: Request<pb::CancelCallRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let (principal, _) = self.app.authenticate(&request)?;
        principal.require(&[Role::Telephony])?;
        let message = request.into_inner();
        let ticket_id = required_id("ticket_id", &message.ticket_id)?;
        let ticket = self.app.store.get(&ticket_id).await.map_err(store_status)?;
        match ticket {
            Some(t) if message.call_id.is_empty() || t.call_id == message.call_id => {}
            _ => return Err(Status::not_found("no such ticket")),
        }
        let cancelled = self
            .app
            .store
            .cancel(&ticket_id)
            .await
            .map_err(store_status)?;
        Ok(Response::new(ticket_to_pb(cancelled)))
    }
}

fn route_status(error: RouteError) -> Status {
    match error {
        RouteError::UnknownIssueType(_) => {
            field_status(FieldError::new("issue_type", error.to_string()))
        }
    }
}

/// The gRPC `AgentDesk` service.
#[derive(Clone)]
pub struct AgentDeskService {
    pub app: App,
}

const DESK_ROLES: &[Role] = &[Role::Agent, Role::Supervisor];

impl AgentDeskService {
    /// The caller's hold on the ticket it names: a well-formed id in a partition it works in, and
    /// the lease token of its claim.
    fn holder(
        principal: &Principal,
        ticket_id: &str,
        lease_token: u64,
    ) -> Result<(String, Hold), Status> {
        let ticket_id = required_id("ticket_id", ticket_id)?;
        check_partition(principal, &ticket_id)?;
        if lease_token == 0 {
            return Err(field_status(FieldError::new(
                "lease_token",
                "is required (from the claimed ticket)",
            )));
        }
        let hold = Hold {
            agent_id: principal.agent_id.clone(),
            lease_token,
        };
        Ok((ticket_id, hold))
    }
}

/// A server stream of ticket events that stops its feed readers when the client leaves.
pub struct WatchStream {
    events: tokio::sync::mpsc::Receiver<Result<pb::TicketEvent, Status>>,
    readers: Vec<tokio::task::AbortHandle>,
}

impl Stream for WatchStream {
    type Item = Result<pb::TicketEvent, Status>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.events.poll_recv(cx)
    }
}

impl Drop for WatchStream {
    fn drop(&mut self) {
        for reader in &self.readers {
            reader.abort();
        }
    }
}

/// How long one feed read waits for news before asking again.
const FEED_WAIT: Duration = Duration::from_secs(5);

/// The key of a feed in `WatchTicketsRequest.resume_from`: `<partition>/<team>`.
fn feed_key(queue: &QueueRef) -> String {
    format!("{}/{}", queue.partition, queue.team)
}

#[tonic::async_trait]
impl pb::agent_desk_server::AgentDesk for AgentDeskService {
    type WatchTicketsStream = WatchStream;

    async fn claim_next_ticket(
        &self,
        request: Request<pb::ClaimNextTicketRequest>,
    ) -> Result<Response<pb::ClaimNextTicketResponse>, Status> {
        let (principal, loaded) = self.app.authenticate(&request)?;
        principal.require(DESK_ROLES)?;
        let message = request.into_inner();
        let lease = convert::lease("lease_seconds", message.lease_seconds)?;
        for team in &message.team_ids {
            if !principal.teams.contains(team) {
                return Err(Status::permission_denied(format!(
                    "team '{team}' is not one of yours"
                )));
            }
        }
        let queues: Vec<QueueRef> = visible_queues(&loaded.router, &principal, &message.team_ids)?
            .into_iter()
            .filter(|q| {
                principal.teams.contains(&q.team) && principal.may_see(&q.partition, &q.team)
            })
            .collect();
        let ticket = self
            .app
            .store
            .claim_next(&principal.agent_id, &queues, lease)
            .await
            .map_err(store_status)?;
        if let Some(t) = &ticket {
            let waited = t.claimed_at.unwrap_or(t.enqueued_at) - t.enqueued_at;
            self.app.metrics.claimed(&t.partition, t.urgency, waited);
        }
        Ok(Response::new(pb::ClaimNextTicketResponse {
            ticket: ticket.map(ticket_to_pb),
        }))
    }

    async fn accept_ticket(
        &self,
        request: Request<pb::TicketActionRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let (principal, _) = self.app.authenticate(&request)?;
        principal.require(DESK_ROLES)?;
        let message = request.into_inner();
        let lease = match message.lease_seconds {
            0 => self.app.settings.default_lease,
            seconds => convert::lease("lease_seconds", seconds)?,
        };
        let (ticket_id, hold) = Self::holder(&principal, &message.ticket_id, message.lease_token)?;
        let ticket = self
            .app
            .store
            .accept(&ticket_id, &hold, lease)
            .await
            .map_err(store_status)?;
        Ok(Response::new(ticket_to_pb(ticket)))
    }

    async fn complete_ticket(
        &self,
        request: Request<pb::CompleteTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let (principal, _) = self.app.authenticate(&request)?;
        principal.require(DESK_ROLES)?;
        let message = request.into_inner();
        let resolution = required_id("resolution", &message.resolution)?;
        let (ticket_id, hold) = Self::holder(&principal, &message.ticket_id, message.lease_token)?;
        let ticket = self
            .app
            .store
            .complete(&ticket_id, &hold, &resolution)
            .await
            .map_err(store_status)?;
        if let (Some(closed), Some(claimed)) = (ticket.closed_at, ticket.claimed_at) {
            let breached = ticket.sla_due_at > 0 && closed > ticket.sla_due_at;
            self.app.metrics.completed(
                &ticket.partition,
                ticket.urgency,
                closed - claimed,
                breached,
            );
        }
        Ok(Response::new(ticket_to_pb(ticket)))
    }

    async fn release_ticket(
        &self,
        request: Request<pb::TicketActionRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let (principal, _) = self.app.authenticate(&request)?;
        principal.require(DESK_ROLES)?;
        let message = request.into_inner();
        let (ticket_id, hold) = Self::holder(&principal, &message.ticket_id, message.lease_token)?;
        let ticket = self
            .app
            .store
            .release(&ticket_id, &hold)
            .await
            .map_err(store_status)?;
        Ok(Response::new(ticket_to_pb(ticket)))
    }

    async fn transfer_ticket(
        &self,
        request: Request<pb::TransferTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let (principal, loaded) = self.app.authenticate(&request)?;
        principal.require(DESK_ROLES)?;
        let message = request.into_inner();
        let team_id = required_id("team_id", &message.team_id)?;
        let urgency = convert::optional_urgency("urgency", message.urgency)?;
        let (ticket_id, hold) = Self::holder(&principal, &message.ticket_id, message.lease_token)?;
        let source = partition_of(&ticket_id).map_err(store_status)?.to_owned();
        let team = loaded.router.team(&team_id).ok_or_else(|| {
            field_status(FieldError::new(
                "team_id",
                format!("unknown team '{team_id}'"),
            ))
        })?;
        let target = match team.cooperator {
            Some(c) => loaded.router.cooperators[c as usize].id.clone(),
            None if team.kind == TeamKind::Contractor && !message.cooperator_id.is_empty() => {
                if loaded.router.cooperator(&message.cooperator_id).is_none() {
                    return Err(field_status(FieldError::new(
                        "cooperator_id",
                        format!("unknown cooperator '{}'", message.cooperator_id),
                    )));
                }
                message.cooperator_id.clone()
            }
            None if team.kind == TeamKind::Contractor => source.clone(),
            None => PLATFORM_PARTITION.to_owned(),
        };
        let triage = principal.is_platform()
            && principal.teams.iter().any(|t| {
                loaded
                    .router
                    .team(t)
                    .is_some_and(|x| x.kind == TeamKind::Triage)
            });
        // Any agent may hand a call that is not its cooperator's back to the platform's triage.
        let back_to_triage = team.kind == TeamKind::Triage;
        if target != source && !triage && !back_to_triage {
            return Err(Status::permission_denied(
                "only the platform's triage agents transfer tickets to another cooperator; others may send them back to triage",
            ));
        }
        let ticket = self
            .app
            .store
            .transfer(
                &ticket_id,
                &hold,
                &QueueRef::new(&target, &team_id),
                urgency,
            )
            .await
            .map_err(store_status)?;
        Ok(Response::new(ticket_to_pb(ticket)))
    }

    async fn get_ticket(
        &self,
        request: Request<pb::GetTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let (principal, _) = self.app.authenticate(&request)?;
        principal.require(DESK_ROLES)?;
        let ticket_id = required_id("ticket_id", &request.get_ref().ticket_id)?;
        let ticket = visible_ticket(&self.app, &principal, &ticket_id).await?;
        Ok(Response::new(ticket_to_pb(ticket)))
    }

    async fn list_tickets(
        &self,
        request: Request<pb::ListTicketsRequest>,
    ) -> Result<Response<pb::ListTicketsResponse>, Status> {
        let (principal, loaded) = self.app.authenticate(&request)?;
        principal.require(DESK_ROLES)?;
        let message = request.into_inner();
        let team_id = required_id("team_id", &message.team_id)?;
        let limit = match message.limit {
            0 => 50,
            n if n <= 1000 => n as usize,
            n => {
                return Err(field_status(FieldError::new(
                    "limit",
                    format!("{n} is more than 1000"),
                )));
            }
        };
        let queues = visible_queues(&loaded.router, &principal, &[team_id])?;
        let mut tickets = Vec::new();
        for q in &queues {
            tickets.extend(
                self.app
                    .store
                    .list_queued(q, limit)
                    .await
                    .map_err(store_status)?,
            );
        }
        tickets.sort_by_key(|t| (t.urgency, t.enqueued_at));
        tickets.truncate(limit);
        Ok(Response::new(pb::ListTicketsResponse {
            tickets: tickets.into_iter().map(ticket_to_pb).collect(),
        }))
    }

    async fn watch_tickets(
        &self,
        request: Request<pb::WatchTicketsRequest>,
    ) -> Result<Response<Self::WatchTicketsStream>, Status> {
        let (principal, loaded) = self.app.authenticate(&request)?;
        principal.require(DESK_ROLES)?;
        let message = request.into_inner();
        let queues = visible_queues(&loaded.router, &principal, &message.team_ids)?;
        let (sender, events) = tokio::sync::mpsc::channel(256);
        let mut readers = Vec::new();
        for queue in queues {
            let resume = message.resume_from.get(&feed_key(&queue)).cloned();
            let store = self.app.store.clone();
            let sender = sender.clone();
            let mut closing = self.app.closing.clone();
            let task = tokio::spawn(async move {
                let mut after = resume.clone();
                // A store outage is logged once per stream, not on every retry.
                let mut failing = false;
                if resume.is_none() {
                    // Where the feed is now, then the queue as it stands: nothing falls in between
                    // unseen, since events after `after` are sent next (possibly repeating a snapshot).
                    after = match store.read_events(&queue, None, 1000, None).await {
                        Ok(events) => events.last().map(|e| e.event_id.clone()),
                        Err(e) => {
                            let _ = sender.send(Err(store_status(e))).await;
                            return;
                        }
                    };
                    match store.list_queued(&queue, 1000).await {
                        Ok(tickets) => {
                            for t in tickets {
                                let event = pb::TicketEvent {
                                    kind: "snapshot".to_owned(),
                                    team_id: queue.team.clone(),
                                    position: String::new(),
                                    at: timestamp(t.enqueued_at),
                                    ticket: Some(ticket_to_pb(t)),
                                };
                                if sender.send(Ok(event)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(e) => {
                            let _ = sender.send(Err(store_status(e))).await;
                            return;
                        }
                    }
                }
                loop {
                    let read = store.read_events(&queue, after.as_deref(), 100, Some(FEED_WAIT));
                    let read = tokio::select! {
                        _ = closing.wait_for(|closing| *closing) => return,
                        read = read => read,
                    };
                    match read {
                        Ok(events) => {
                            failing = false;
                            for e in events {
                                after = Some(e.event_id.clone());
                                let event = pb::TicketEvent {
                                    kind: e.kind,
                                    team_id: e.team_id.clone(),
                                    position: format!("{}@{}", feed_key(&queue), e.event_id),
                                    at: timestamp(e.at),
                                    ticket: Some(pb::Ticket {
                                        ticket_id: e.ticket_id,
                                        state: pb::TicketState::from_str_name(&e.state)
                                            .unwrap_or_default()
                                            as i32,
                                        team_id: e.team_id,
                                        urgency: pb::Urgency::from_str_name(&e.urgency)
                                            .unwrap_or_default()
                                            as i32,
                                        agent_id: e.agent_id.unwrap_or_default(),
                                        ..Default::default()
                                    }),
                                };
                                if sender.send(Ok(event)).await.is_err() {
                                    return;
                                }
                            }
                        }
                        Err(StoreError::Invalid(message)) => {
                            let _ = sender
                                .send(Err(field_status(FieldError::new("resume_from", message))))
                                .await;
                            return;
                        }
                        Err(e) => {
                            if !failing {
                                tracing::warn!(error = %e, "ticket feed reads fail; retrying");
                                failing = true;
                            }
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                    }
                }
            });
            readers.push(task.abort_handle());
        }
        Ok(Response::new(WatchStream { events, readers }))
    }

    async fn set_agent_status(
        &self,
        request: Request<pb::SetAgentStatusRequest>,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        let (principal, _) = self.app.authenticate(&request)?;
        principal.require(DESK_ROLES)?;
        let presence = convert::presence(request.get_ref().presence)?;
        let status = AgentStatus {
            agent_id: principal.agent_id.clone(),
            partition: principal.cooperator.clone(),
            teams: principal.teams.clone(),
            presence,
            last_seen: Utc::now().timestamp_millis(),
        };
        self.app
            .store
            .heartbeat(&status)
            .await
            .map_err(store_status)?;
        Ok(Response::new(agent_to_pb(status)))
    }
}

fn agent_to_pb(a: AgentStatus) -> pb::AgentStatus {
    pb::AgentStatus {
        agent_id: a.agent_id,
        cooperator_id: a.partition,
        team_ids: a.teams,
        presence: convert::presence_to_pb(a.presence) as i32,
        last_seen: timestamp(a.last_seen),
    }
}

/// The gRPC `Operations` service.
#[derive(Clone)]
pub struct OperationsService {
    pub app: App,
}

#[tonic::async_trait]
impl pb::operations_server::Operations for OperationsService {
    async fn get_queue_stats(
        &self,
        request: Request<pb::GetQueueStatsRequest>,
    ) -> Result<Response<pb::GetQueueStatsResponse>, Status> {
        let (principal, loaded) = self.app.authenticate(&request)?;
        principal.require(&[Role::Supervisor, Role::Operator])?;
        let message = request.into_inner();
        let teams: Vec<String> = if message.team_ids.is_empty() {
            loaded.router.teams.iter().map(|t| t.id.clone()).collect()
        } else {
            message.team_ids
        };
        let mut queues = Vec::new();
        for team in &teams {
            queues.extend(
                queues_of_team(&loaded.router, team)?
                    .into_iter()
                    .filter(|q| principal.may_oversee(&q.partition)),
            );
        }
        if queues.is_empty() {
            return Err(Status::permission_denied(
                "none of these teams is yours to oversee",
            ));
        }
        let (stats, counts) = self
            .app
            .store
            .queue_stats(&queues)
            .await
            .map_err(store_status)?;
        let agents = self.app.store.agents().await.map_err(store_status)?;
        let partition_coop = |p: &str| {
            if p == PLATFORM_PARTITION {
                String::new()
            } else {
                p.to_owned()
            }
        };
        Ok(Response::new(pb::GetQueueStatsResponse {
            queues: stats
                .into_iter()
                .map(|s| pb::QueueStats {
                    team_id: s.queue.team.clone(),
                    cooperator_id: partition_coop(&s.queue.partition),
                    urgency: urgency_to_pb(s.urgency) as i32,
                    depth: s.depth,
                    oldest_wait_seconds: s.oldest_wait_ms.map_or(0, |ms| (ms.max(0) / 1000) as u64),
                })
                .collect(),
            teams: counts
                .into_iter()
                .map(|(q, c)| {
                    let mut by_presence = BTreeMap::new();
                    for a in agents.iter().filter(|a| {
                        a.teams.contains(&q.team)
                            && (a.partition == q.partition || a.partition == PLATFORM_PARTITION)
                    }) {
                        *by_presence
                            .entry(a.presence.as_str().to_owned())
                            .or_insert(0u64) += 1;
                    }
                    pb::TeamCounts {
                        team_id: q.team.clone(),
                        cooperator_id: partition_coop(&q.partition),
                        queued: c.queued,
                        reserved: c.reserved,
                        in_progress: c.in_progress,
                        completed: c.completed,
                        cancelled: c.cancelled,
                        agents_by_presence: by_presence.into_iter().collect(),
                    }
                })
                .collect(),
        }))
    }

    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let (principal, _) = self.app.authenticate(&request)?;
        principal.require(&[Role::Supervisor, Role::Operator])?;
        let agents = self.app.store.agents().await.map_err(store_status)?;
        Ok(Response::new(pb::ListAgentsResponse {
            agents: agents
                .into_iter()
                .filter(|a| principal.may_oversee(&a.partition))
                .map(agent_to_pb)
                .collect(),
        }))
    }

    async fn reload_config(
        &self,
        request: Request<pb::ReloadConfigRequest>,
    ) -> Result<Response<pb::ReloadConfigResponse>, Status> {
        let (principal, _) = self.app.authenticate(&request)?;
        principal.require(&[Role::Operator])?;
        match self.app.reload().await {
            Ok(loaded) => {
                tracing::info!(generation = loaded.generation, "configuration reloaded");
                Ok(Response::new(pb::ReloadConfigResponse {
                    generation: loaded.generation,
                    summary: format!(
                        "{} cooperators, {} teams, {} rules, {} buildings",
                        loaded.router.cooperators.len(),
                        loaded.router.teams.len(),
                        loaded.router.rules.len(),
                        loaded.router.buildings.len()
                    ),
                }))
            }
            Err(e) => {
                tracing::warn!(
                    problems = e.problems.len(),
                    "configuration reload refused; the previous one keeps serving"
                );
                Err(Status::failed_precondition(format!(
                    "the new configuration is refused; the previous one keeps serving:\n{e}"
                )))
            }
        }
    }
}
