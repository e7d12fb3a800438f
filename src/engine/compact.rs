//! The one compaction every caller goes through (the space controller, periodic compaction, the
//! heal), fenced on a fresh observation.

use crate::decide::actor::{Fence, fence_holds};
use crate::decide::endpoints::mutation_endpoint;

use super::{Ctx, Engine};

impl Engine {
    /// Physical compaction to `target`, through the leader, fenced like every mutation: against
    /// a fresh observation, not the one the decision came from — between the two, another
    /// instance may have become the actor (a handover, a takeover), and two compactors would
    /// each give up history on their own clock. Safe to repeat; stops no member.
    pub(super) async fn compact(
        &mut self,
        ctx: &Ctx<'_>,
        fence: Fence,
        target: i64,
        why: &str,
        routine: bool,
    ) -> bool {
        let fresh = match ctx.observe().await {
            Ok(fresh) => fresh,
            Err(e) => {
                tracing::info!(
                    "not compacting: cannot observe the cluster to check who acts ({e})"
                );
                return false;
            }
        };
        if let Err(why_not) = fence_holds(fence, self.cfg.act_when, &fresh) {
            tracing::info!("not compacting: {why_not}");
            return false;
        }
        let Some(endpoint) = mutation_endpoint(&fresh) else {
            return false;
        };
        match ctx
            .act(self.cfg.dry_run)
            .compact(&endpoint, target, why, routine)
            .await
        {
            Ok(_) => {
                self.compaction.compacted(target);
                true
            }
            Err(_) => false,
        }
    }
}
