//! `/api/v1/cluster` (admin only): the nodes sharing this database.

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use utoipa::ToSchema;
use wagate_core::Scope;
use wagate_service::time::rfc3339;

use super::extract::Auth;
use crate::app::AppState;
use crate::error::{ApiError, ApiResult, Problem};

pub fn routes() -> Router<AppState> {
    Router::new().route("/cluster", get(show))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ClusterView {
    /// The node that answered.
    pub node: String,
    /// Every node heard from within a lease, oldest first.
    pub nodes: Vec<NodeView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct NodeView {
    pub id: String,
    pub version: String,
    pub started_at: String,
    pub heartbeat_at: String,
    /// Whether this node runs the jobs that run once per cluster (retention, the OTP sweeper,
    /// webhook deliveries, alert checks).
    pub runs_jobs: bool,
}

/// The nodes sharing this database.
#[utoipa::path(get, path = "/api/v1/cluster", tag = "health",
    responses((status = 200, body = ClusterView), (status = 403, body = Problem)),
    security(("bearer" = []), ("api_key" = [])))]
pub async fn show(State(state): State<AppState>, Auth(principal): Auth) -> ApiResult<Json<ClusterView>> {
    principal.require(Scope::Admin)?;
    if !principal.sees_all() {
        return Err(ApiError::forbidden("admin_only", "only admins see the cluster"));
    }
    let nodes = state.cluster.nodes().await?;
    Ok(Json(ClusterView {
        node: state.cluster.node_id().to_owned(),
        nodes: nodes
            .into_iter()
            .map(|view| NodeView {
                id: view.node.id,
                version: view.node.version,
                started_at: rfc3339(view.node.started_at),
                heartbeat_at: rfc3339(view.node.heartbeat_at),
                runs_jobs: view.runs_jobs,
            })
            .collect(),
    }))
}
