//! The one-shot commands: `status` (read) and `heal` (the NOSPACE runbook in one step).
//!
//! Why here and not in the daemon: a one-shot command exits with a verdict. Bad input exits 2,
//! an unreachable cluster or an impossible heal exits 1 with the reason on one line.

use std::process::ExitCode;
use std::time::Instant;

use crate::config::{AnalyzeSettings, ConfigError, HealSettings, Output, StatusSettings};
use crate::decide::actor::{ActWhen, ActorMemory, actor_verdict};
use crate::decide::gate::alarm_blockers;
use crate::diagnose::analyze::{self, Analysis};
use crate::engine::{Ctx, Engine, HealOutcome};
use crate::etcd::{AlarmKind, EtcdError};
use crate::observe;
use crate::report::state::Shared;
use crate::report::view::ClusterView;
use crate::shutdown::Shutdown;

/// Why a one-shot command failed, and the exit code each reason means (`main` maps it): 2 for
/// bad input, 1 for everything the cluster did or refused.
#[derive(Debug, thiserror::Error)]
pub enum OneshotError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Etcd(#[from] EtcdError),
    #[error(transparent)]
    Observe(#[from] observe::ObserveError),
    /// The heal cannot go on without a person (live data over the quota, a CORRUPT alarm,
    /// members that disagree).
    #[error("{0}")]
    CannotHeal(String),
    /// The heal ran out of its `--heal-timeout`, or was interrupted.
    #[error("{0}")]
    GaveUp(String),
    #[error("cannot print the result: {0}")]
    Output(#[from] serde_json::Error),
}

impl OneshotError {
    pub fn exit_code(&self) -> u8 {
        match self {
            OneshotError::Config(_) => 2,
            _ => 1,
        }
    }
}

type Result<T> = std::result::Result<T, OneshotError>;

pub async fn status(settings: StatusSettings) -> Result<ExitCode> {
    let etcd = settings.connection.etcd()?;
    let observation = observe::observe(&etcd, &settings.connection.observe, None).await?;
    let view = ClusterView::from_observation(&observation);
    match settings.output {
        Output::Table => print!("{}", view.to_table()),
        Output::Json => println!("{}", serde_json::to_string_pretty(&view)?),
    }
    Ok(ExitCode::SUCCESS)
}

pub async fn heal(settings: HealSettings) -> Result<ExitCode> {
    let etcd = settings.connection.etcd()?;
    // A person runs `heal`: this instance is the one actor (no leader-sidecar gating).
    let dry_run = settings.engine.dry_run;
    let poll = settings.engine.poll;
    let heal_timeout = settings.timeout;
    let observe_settings = settings.connection.observe.clone();
    let mut engine = Engine::new(settings.engine);
    let shared = Shared::new(poll, settings.connection.command_timeout);
    let shutdown = Shutdown::on_signals();
    let ctx = Ctx {
        etcd: &etcd,
        settings: &observe_settings,
        shared: &shared,
        shutdown: shutdown.clone(),
    };
    let deadline = Instant::now() + heal_timeout;
    let mut acted = false;
    let mut deferred = false;
    loop {
        let obs = ctx.observe().await?;
        if !obs.has_alarm(AlarmKind::NoSpace) {
            return no_alarm(&obs, acted);
        }
        if !acted {
            print!("{}", ClusterView::from_observation(&obs).to_table());
        }
        // Daemons registered as actor candidates heal by themselves: a second actor would only
        // fight them. Wait for them instead, and say so.
        let daemons = obs.candidates.clone().unwrap_or_default();
        if !daemons.is_empty() && !dry_run {
            acted = true;
            defer_to(&daemons, &mut deferred, deadline, heal_timeout, &shutdown)?;
            tokio::time::sleep(poll).await;
            continue;
        }
        acted = true;
        let fence = actor_verdict(
            &obs,
            ActWhen::Always,
            None,
            &mut ActorMemory::default(),
            crate::clock::mono_now(),
            0.0,
        )
        .map_err(|why| OneshotError::CannotHeal(why.to_string()))?
        .fence;
        // The daemon's own heal step, its checks included (alarms, a busy member, the members'
        // hashes): only the fence differs, "no registered daemon acts" (above).
        match engine.heal_step(&ctx, &obs, fence).await {
            HealOutcome::Healed { seconds } => {
                let after = ctx.observe().await?;
                print!("{}", ClusterView::from_observation(&after).to_table());
                println!("healed in {seconds:.1}s: NOSPACE disarmed, writes accepted again");
                return Ok(ExitCode::SUCCESS);
            }
            HealOutcome::NoAlarm => continue,
            HealOutcome::Blocked(why) => {
                return Err(OneshotError::CannotHeal(format!("cannot heal: {why}")));
            }
            HealOutcome::Pending(why) if dry_run => {
                println!("{why}");
                return Ok(ExitCode::SUCCESS);
            }
            HealOutcome::Pending(why) | HealOutcome::Failed(why) => {
                if Instant::now() >= deadline || shutdown.is_requested() {
                    return Err(OneshotError::GaveUp(format!(
                        "gave up after {}: {why}",
                        humantime::format_duration(heal_timeout)
                    )));
                }
                tracing::info!("not healed yet: {why}; retrying");
                tokio::time::sleep(poll).await;
            }
        }
    }
}

/// NOSPACE is gone (or never was): the table and one line saying which. Another alarm (CORRUPT)
/// is no healthy cluster: exit 1, naming it.
fn no_alarm(obs: &crate::observe::Observation, acted: bool) -> Result<ExitCode> {
    print!("{}", ClusterView::from_observation(obs).to_table());
    if let Some(blocker) = alarm_blockers(obs).first() {
        return Err(OneshotError::CannotHeal(format!(
            "no NOSPACE to heal, but {blocker}"
        )));
    }
    println!(
        "{}",
        if acted {
            "healed: NOSPACE disarmed, writes accepted again"
        } else {
            "no NOSPACE alarm: nothing to heal"
        }
    );
    Ok(ExitCode::SUCCESS)
}

/// Says once which daemons heal instead of this command; `Err` when they ran out of time.
fn defer_to(
    daemons: &[crate::observe::Candidate],
    said: &mut bool,
    deadline: Instant,
    timeout: std::time::Duration,
    shutdown: &Shutdown,
) -> Result<()> {
    if !*said {
        let names: Vec<&str> = daemons.iter().map(|c| c.instance.as_str()).collect();
        println!(
            "{} etcd-upkeep daemon(s) are running ({}); they heal NOSPACE themselves — waiting for them instead of acting",
            daemons.len(),
            names.join(", ")
        );
        *said = true;
    }
    if Instant::now() >= deadline || shutdown.is_requested() {
        return Err(OneshotError::GaveUp(format!(
            "NOSPACE still raised after {} while the daemons ({}) were healing; see their logs and /status",
            humantime::format_duration(timeout),
            daemons.len()
        )));
    }
    Ok(())
}

pub async fn analyze(args: AnalyzeSettings) -> Result<ExitCode> {
    let etcd = args.connection.etcd()?;
    // One member, serializable reads: the first endpoint given.
    let endpoint = args.connection.observe.endpoints[0].clone();
    etcd.status(&endpoint).await?;
    let breakdown = analyze::scan(&etcd, &endpoint, &args.prefix, args.page_size).await?;
    let resources = breakdown.resources();
    let churn = match args.watch {
        Some(duration) => {
            let prefix = if args.prefix.is_empty() {
                "/"
            } else {
                args.prefix.as_str()
            };
            eprintln!(
                "watching writes under {prefix} for {}…",
                humantime::format_duration(duration)
            );
            analyze::watch_churn(&etcd, &endpoint, prefix, duration, args.top).await?
        }
        None => Vec::new(),
    };
    let analysis = Analysis {
        endpoint,
        total_keys: resources.iter().map(|r| r.count).sum(),
        total_bytes: resources.iter().map(|r| r.bytes).sum(),
        resources,
        churn,
        watched_seconds: args.watch.map(|d| d.as_secs_f64()),
    };
    match args.output {
        Output::Table => print!("{}", analysis.to_table(args.top)),
        Output::Json => println!("{}", serde_json::to_string_pretty(&analysis)?),
    }
    Ok(ExitCode::SUCCESS)
}
