//! `Operations`: supervisors' and operators' service.

use tonic::{Request, Response, Status};

use super::convert::{agent_to_pb, overview_to_pb, reloaded_to_pb};
use super::{authenticate, pb};
use crate::app::App;

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
        let principal = authenticate(&self.app, &request)?;
        let team_ids = &request.get_ref().team_ids;
        let overview = self.app.get_queue_stats(&principal, team_ids).await?;
        Ok(Response::new(overview_to_pb(overview)))
    }

    async fn list_agents(
        &self,
        request: Request<pb::ListAgentsRequest>,
    ) -> Result<Response<pb::ListAgentsResponse>, Status> {
        let principal = authenticate(&self.app, &request)?;
        let agents = self.app.list_agents(&principal).await?;
        Ok(Response::new(pb::ListAgentsResponse {
            agents: agents.into_iter().map(agent_to_pb).collect(),
        }))
    }

    async fn reload_config(
        &self,
        request: Request<pb::ReloadConfigRequest>,
    ) -> Result<Response<pb::ReloadConfigResponse>, Status> {
        let principal = authenticate(&self.app, &request)?;
        let reloaded = self.app.reload_config(&principal).await?;
        Ok(Response::new(reloaded_to_pb(reloaded)))
    }
}
