//! `AgentDesk`: the agents' service. Ticket actions carry the claim's lease token.

use std::pin::Pin;
use std::task::{Context, Poll};

use tonic::codegen::tokio_stream::Stream;
use tonic::{Request, Response, Status};

use super::convert::{self, agent_to_pb, ticket_to_pb, watch_event_to_pb};
use super::{authenticate, pb};
use crate::app::App;
use crate::app::requests::{HeldAction, list_limit};
use crate::app::watch::Watch;
use crate::routing::Router;
use crate::store::Ticket;

/// The gRPC `AgentDesk` service.
#[derive(Clone)]
pub struct AgentDeskService {
    pub app: App,
}

/// A ticket for a desk: on the wire, with its issue type's label in the taxonomy in force.
fn for_desk(router: &Router, ticket: Ticket) -> pb::Ticket {
    labelled(router, ticket_to_pb(ticket))
}

fn labelled(router: &Router, mut ticket: pb::Ticket) -> pb::Ticket {
    if let Some(issue) = router.issue_type(&ticket.issue_type) {
        ticket.issue_label = issue.label.clone();
    }
    ticket
}

impl AgentDeskService {
    /// A ticket answered to a desk, labelled with the configuration in force now.
    fn answer(&self, ticket: Ticket) -> Response<pb::Ticket> {
        Response::new(for_desk(&self.app.current().router, ticket))
    }
}

/// A watch as a server stream; dropping it (the client left) stops the watch's readers.
pub struct WatchStream {
    watch: Watch,
    app: App,
}

impl Stream for WatchStream {
    type Item = Result<pb::TicketEvent, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.watch.poll_next(cx);
        polled.map(|event| {
            event.map(|e| {
                e.map(|e| {
                    let mut event = watch_event_to_pb(e);
                    let router = &self.app.current().router;
                    event.ticket = event.ticket.map(|t| labelled(router, t));
                    event
                })
                .map_err(Status::from)
            })
        })
    }
}

#[tonic::async_trait]
impl pb::agent_desk_server::AgentDesk for AgentDeskService {
    type WatchTicketsStream = WatchStream;

    async fn claim_next_ticket(
        &self,
        request: Request<pb::ClaimNextTicketRequest>,
    ) -> Result<Response<pb::ClaimNextTicketResponse>, Status> {
        let principal = authenticate(&self.app, &request)?;
        let message = request.into_inner();
        let lease = convert::lease(message.lease_seconds)?;
        let claim_id = Some(message.claim_id.as_str()).filter(|c| !c.is_empty());
        let (completed, ticket) = match &message.complete {
            Some(done) => {
                let action = HeldAction::new(&done.ticket_id, done.lease_token)?;
                let (completed, ticket) = self
                    .app
                    .complete_and_claim_next(
                        &principal,
                        &action,
                        &done.resolution,
                        &message.team_ids,
                        lease,
                        claim_id,
                    )
                    .await?;
                (Some(completed), ticket)
            }
            None => {
                let ticket = self
                    .app
                    .claim_next_ticket(&principal, &message.team_ids, lease, claim_id)
                    .await?;
                (None, ticket)
            }
        };
        let router = &self.app.current().router;
        Ok(Response::new(pb::ClaimNextTicketResponse {
            ticket: ticket.map(|t| for_desk(router, t)),
            completed: completed.map(|t| for_desk(router, t)),
        }))
    }

    async fn accept_ticket(
        &self,
        request: Request<pb::TicketActionRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let principal = authenticate(&self.app, &request)?;
        let message = request.into_inner();
        let lease = convert::optional_lease(message.lease_seconds)?;
        let action = HeldAction::new(&message.ticket_id, message.lease_token)?;
        let ticket = self.app.accept_ticket(&principal, &action, lease).await?;
        Ok(self.answer(ticket))
    }

    async fn complete_ticket(
        &self,
        request: Request<pb::CompleteTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let principal = authenticate(&self.app, &request)?;
        let message = request.into_inner();
        let action = HeldAction::new(&message.ticket_id, message.lease_token)?;
        let ticket = self
            .app
            .complete_ticket(&principal, &action, &message.resolution)
            .await?;
        Ok(self.answer(ticket))
    }

    async fn release_ticket(
        &self,
        request: Request<pb::TicketActionRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let principal = authenticate(&self.app, &request)?;
        let message = request.into_inner();
        let action = HeldAction::new(&message.ticket_id, message.lease_token)?;
        let ticket = self.app.release_ticket(&principal, &action).await?;
        Ok(self.answer(ticket))
    }

    async fn transfer_ticket(
        &self,
        request: Request<pb::TransferTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let principal = authenticate(&self.app, &request)?;
        let message = request.into_inner();
        let to = convert::transfer_to(&message)?;
        let action = HeldAction::new(&message.ticket_id, message.lease_token)?;
        let ticket = self.app.transfer_ticket(&principal, &action, &to).await?;
        Ok(self.answer(ticket))
    }

    async fn get_ticket(
        &self,
        request: Request<pb::GetTicketRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let principal = authenticate(&self.app, &request)?;
        let ticket_id = &request.get_ref().ticket_id;
        let (ticket, history) = self
            .app
            .get_ticket_with_history(&principal, ticket_id)
            .await?;
        Ok(Response::new(labelled(
            &self.app.current().router,
            convert::ticket_with_history(ticket, history),
        )))
    }

    async fn list_tickets(
        &self,
        request: Request<pb::ListTicketsRequest>,
    ) -> Result<Response<pb::ListTicketsResponse>, Status> {
        let principal = authenticate(&self.app, &request)?;
        let message = request.into_inner();
        let limit = list_limit("limit", message.limit)?;
        let tickets = if message.held_by_me {
            self.app.list_held_tickets(&principal, limit).await?
        } else {
            self.app
                .list_tickets(&principal, &message.team_id, limit)
                .await?
        };
        let router = &self.app.current().router;
        Ok(Response::new(pb::ListTicketsResponse {
            tickets: tickets.into_iter().map(|t| for_desk(router, t)).collect(),
        }))
    }

    async fn watch_tickets(
        &self,
        request: Request<pb::WatchTicketsRequest>,
    ) -> Result<Response<Self::WatchTicketsStream>, Status> {
        let principal = authenticate(&self.app, &request)?;
        let message = request.into_inner();
        let watch = self
            .app
            .watch_tickets(&principal, &message.team_ids, &message.resume_from)
            .await?;
        Ok(Response::new(WatchStream {
            watch,
            app: self.app.clone(),
        }))
    }

    async fn set_agent_status(
        &self,
        request: Request<pb::SetAgentStatusRequest>,
    ) -> Result<Response<pb::AgentStatus>, Status> {
        let principal = authenticate(&self.app, &request)?;
        let presence = convert::presence(request.get_ref().presence)?;
        let status = self.app.set_agent_status(&principal, presence).await?;
        Ok(Response::new(agent_to_pb(status)))
    }
}
