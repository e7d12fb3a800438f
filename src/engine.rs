//! Placeholder replaced by the maintenance engine in the next commit.
use std::sync::Arc;
use tokio::sync::watch;
use crate::cli::{GlobalArgs, MaintenanceArgs};
use crate::daemon::Snapshot;
use crate::observe::ObserveSettings;
use crate::report::state::Shared;
use crate::shutdown::Shutdown;

pub struct Engine;
impl Engine {
    pub fn from_args(_: &MaintenanceArgs, _: &GlobalArgs) -> Result<Engine, String> { Ok(Engine) }
    pub async fn run(self, _: ObserveSettings, _: watch::Receiver<Option<Snapshot>>, _: Arc<Shared>, mut shutdown: Shutdown) {
        shutdown.requested().await;
    }
}
