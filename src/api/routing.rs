//! `CallRouting`: the telephony platform's service.

use tonic::{Request, Response, Status};

use super::convert::{self, decision_to_pb, routed_to_pb, ticket_to_pb};
use super::{authenticate, pb};
use crate::app::App;

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
        let principal = authenticate(&self.app, &request)?;
        let route = convert::route_request(request.into_inner())?;
        let routed = self.app.route_call(&principal, route).await?;
        Ok(Response::new(routed_to_pb(routed)))
    }

    async fn explain_route(
        &self,
        request: Request<pb::RouteCallRequest>,
    ) -> Result<Response<pb::RoutingDecision>, Status> {
        let principal = authenticate(&self.app, &request)?;
        let at = convert::received_at(request.get_ref())?;
        let route = convert::route_request(request.into_inner())?;
        let decision = self.app.explain_route(&principal, &route, at)?;
        Ok(Response::new(decision_to_pb(decision)))
    }

    async fn cancel_call(
        &self,
        request: Request<pb::CancelCallRequest>,
    ) -> Result<Response<pb::Ticket>, Status> {
        let principal = authenticate(&self.app, &request)?;
        let message = request.into_inner();
        let call_id = Some(message.call_id.as_str()).filter(|c| !c.is_empty());
        let ticket = self
            .app
            .cancel_call(&principal, &message.ticket_id, call_id)
            .await?;
        Ok(Response::new(ticket_to_pb(ticket)))
    }
}
