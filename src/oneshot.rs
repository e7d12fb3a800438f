//! The one-shot commands: `status` (read) and `heal` (the NOSPACE runbook in one step).
//!
//! Why here and not in the daemon: a one-shot command exits with a verdict. Bad input exits 2,
//! an unreachable cluster or an impossible heal exits 1 with the reason on one line.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use crate::cli::{ActWhen, GlobalArgs, HealArgs, OutputFormat, StatusArgs};
use crate::config::{self, ConfigError};
use crate::decide::actor::{ActorMemory, actor_verdict};
use crate::decide::gate::alarm_blockers;
use crate::engine::{Ctx, Engine, HealOutcome};
use crate::etcd::AlarmKind;
use crate::observe::{self, unix_now};
use crate::report::state::Shared;
use crate::report::view::ClusterView;
use crate::shutdown::Shutdown;

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

pub async fn status(global: &GlobalArgs, args: &StatusArgs) -> Result<ExitCode> {
    let (settings, mut connector) = config::connection(global)?;
    let etcd = connector.etcd().map_err(|e| ConfigError(e.to_string()))?;
    let observation = observe::observe(&etcd, &settings, None).await?;
    let view = ClusterView::from_observation(&observation);
    match args.output {
        OutputFormat::Table => print!("{}", view.to_table()),
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&view)?),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn heal(global: &GlobalArgs, args: &HealArgs) -> Result<ExitCode> {
    let (settings, mut connector) = config::connection(global)?;
    let etcd = connector.etcd().map_err(|e| ConfigError(e.to_string()))?;
    // A person runs `heal`: this instance is the one actor (no leader-sidecar gating).
    let mut maintenance = args.maintenance.clone();
    maintenance.act_when = ActWhen::Always;
    let poll = Duration::from_secs(1);
    let mut engine = Engine::from_args(&maintenance, global, poll).map_err(ConfigError)?;
    let shared = Shared::new(poll);
    let shutdown = Shutdown::on_signals();
    let ctx = Ctx {
        etcd: &etcd,
        settings: &settings,
        shared: &shared,
        shutdown: shutdown.clone(),
    };
    let deadline = Instant::now() + args.heal_timeout;
    let mut acted = false;
    loop {
        let obs = ctx.observe().await?;
        if let Some(blocker) = alarm_blockers(&obs).first() {
            return Err(format!("not healing: {blocker}").into());
        }
        if !obs.has_alarm(AlarmKind::NoSpace) {
            print!("{}", ClusterView::from_observation(&obs).to_table());
            println!(
                "{}",
                if acted {
                    "healed: NOSPACE disarmed, writes accepted again"
                } else {
                    "no NOSPACE alarm: nothing to heal"
                }
            );
            return Ok(ExitCode::SUCCESS);
        }
        if !acted {
            print!("{}", ClusterView::from_observation(&obs).to_table());
        }
        acted = true;
        let fence = actor_verdict(
            &obs,
            ActWhen::Always,
            &mut ActorMemory::default(),
            unix_now(),
            0.0,
        )?;
        match engine.heal(&ctx, &obs, fence).await {
            HealOutcome::Healed { seconds } => {
                let after = ctx.observe().await?;
                print!("{}", ClusterView::from_observation(&after).to_table());
                println!("healed in {seconds:.1}s: NOSPACE disarmed, writes accepted again");
                return Ok(ExitCode::SUCCESS);
            }
            HealOutcome::NoAlarm => continue,
            HealOutcome::Blocked(why) => return Err(format!("cannot heal: {why}").into()),
            HealOutcome::Pending(why) if maintenance.dry_run => {
                println!("{why}");
                return Ok(ExitCode::SUCCESS);
            }
            HealOutcome::Pending(why) | HealOutcome::Failed(why) => {
                if Instant::now() >= deadline || shutdown.is_requested() {
                    return Err(format!(
                        "gave up after {}: {why}",
                        humantime::format_duration(args.heal_timeout)
                    )
                    .into());
                }
                tracing::info!("not healed yet: {why}; retrying");
                tokio::time::sleep(poll).await;
            }
        }
    }
}
