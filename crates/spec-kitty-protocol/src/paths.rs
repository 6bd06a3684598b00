//! The API paths of the contract, written once: the server routes them and
//! the client requests them, so the two cannot drift apart.

/// Log-in (contract section 1).
pub const LOGIN: &str = "/api/v1/token/";
/// Refresh (contract section 1).
pub const REFRESH: &str = "/api/v1/token/refresh/";
/// Log-out: revoke a refresh token's family (contract section 1).
pub const REVOKE: &str = "/api/v1/token/revoke/";

/// Device authorization (RFC 8628): ask for a pair of codes.
pub const DEVICE_CODE: &str = "/api/v1/device/code/";

/// Device authorization: poll with the device code.
pub const DEVICE_TOKEN: &str = "/api/v1/device/token/";
/// Batch ingest (contract section 2).
pub const BATCH: &str = "/api/v1/events/batch/";
/// The authenticated health check.
pub const SYNC_HEALTH: &str = "/api/v1/sync/health/";
/// Liveness, for load balancers.
pub const HEALTHZ: &str = "/healthz";
/// The team's projects (contract section 8).
pub const PROJECTS: &str = "/api/v1/projects/";

/// `GET /api/v1/projects/{uuid}/board/`.
pub fn board(project_uuid: &str) -> String {
    format!("{PROJECTS}{project_uuid}/board/")
}

/// `GET /api/v1/projects/{uuid}/events/`.
pub fn events(project_uuid: &str) -> String {
    format!("{PROJECTS}{project_uuid}/events/")
}

/// `GET /api/v1/projects/{uuid}/stream/`.
pub fn stream(project_uuid: &str) -> String {
    format!("{PROJECTS}{project_uuid}/stream/")
}
