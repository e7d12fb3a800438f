//! The standby's one move: leadership to its own member when NOSPACE lasts with no progress and
//! nobody could register (see `decide::takeover` for why and when). After the move this
//! instance is the one beside the leader, and the ordinary choice makes it the actor.

use crate::decide::takeover::{Stall, takeover};
use crate::observe::Observation;

use crate::engine::{Ctx, Engine};

impl Engine {
    /// Called on every tick of an instance that does not act.
    pub(in crate::engine) async fn take_over_if_stalled(
        &mut self,
        ctx: &Ctx<'_>,
        obs: &Observation,
        stall: Stall,
        now: f64,
    ) {
        let wait = self.cfg.takeover_wait().as_secs_f64();
        let Ok(move_to) = takeover(obs, self.cfg.act_when, stall, wait) else {
            return;
        };
        let leader_name = obs.member_name(move_to.leader);
        let target_name = obs.member_name(move_to.target);
        tracing::warn!(
            stalled_seconds = move_to.stalled.round(),
            rank = move_to.rank,
            "NOSPACE for {:.0}s with no progress (no compaction, no member shrinking, no defragmentation seen) and no instance registered: moving leadership from {leader_name} to the local member {target_name}, whose instance then heals it",
            move_to.stalled
        );
        let purpose = "to heal a NOSPACE that no instance beside the leader heals";
        if ctx
            .act(self.cfg.dry_run)
            .move_leader(
                &move_to.leader_endpoint,
                &leader_name,
                move_to.target,
                &target_name,
                purpose,
            )
            .await
            .is_ok()
        {
            self.episode.took_over(now);
        }
    }
}
