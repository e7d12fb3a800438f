//! The engine's settings from the maintenance flags: compaction policy, defrag rule, schedule,
//! who acts, and how a heal goes.
//!
//! Why here: the engine takes a complete, valid `engine::Config` and never sees a flag; every
//! check (the CEL rule compiles, the cron's fields are in range, the retention means what its
//! mode says, the data dir exists) happens once, at start-up, naming the flag.

use std::path::Path;
use std::time::Duration;

use crate::cli::{self, GlobalArgs, HealingArgs, MaintenanceArgs};
use crate::decide::actor::ActWhen;
use crate::decide::compaction::CompactionPolicy;
use crate::decide::defrag_rule::{DEFAULT_RULE, DefragRule};
use crate::engine::Config;

use super::ConfigError;
use super::cron::cron_with_seconds;

/// The engine of `run`.
pub(super) fn for_run(
    g: &GlobalArgs,
    m: &MaintenanceArgs,
    poll: Duration,
) -> Result<Config, ConfigError> {
    let mut config = base(g, &m.healing, poll)?;
    config.compaction = compaction_policy(m.compaction_mode, m.compaction_retention.as_deref())?;
    config.rule = DefragRule::parse(&m.defrag_rule).map_err(|e| ConfigError(e.to_string()))?;
    config.schedule = m
        .defrag_schedule
        .as_deref()
        .map(cron_with_seconds)
        .transpose()?;
    config.min_defrag_interval = super::at_most(
        "--min-defrag-interval",
        m.min_defrag_interval,
        super::A_WEEK,
    )?;
    config.auto_heal = m.auto_heal;
    config.act_when = m.act_when;
    Ok(config)
}

/// The engine of the one-shot `heal`: a person runs it, so it is the one actor (unless daemons
/// are registered; see `oneshot::heal`), and only the healing flags apply.
pub(super) fn for_heal(g: &GlobalArgs, h: &HealingArgs) -> Result<Config, ConfigError> {
    base(g, h, Duration::from_secs(1))
}

fn base(g: &GlobalArgs, h: &HealingArgs, poll: Duration) -> Result<Config, ConfigError> {
    if let Some(dir) = &h.data_dir
        && !dir.is_dir()
    {
        return Err(ConfigError(format!(
            "--data-dir {}: not a directory",
            dir.display()
        )));
    }
    Ok(Config {
        compaction: CompactionPolicy::Off,
        rule: DefragRule::parse(DEFAULT_RULE).map_err(|e| ConfigError(e.to_string()))?,
        schedule: None,
        min_defrag_interval: Duration::from_secs(3600),
        move_leader: h.move_leader,
        data_dir: h.data_dir.as_deref().map(Path::to_path_buf),
        auto_heal: true,
        disarm_threshold: h.disarm_threshold,
        dry_run: h.dry_run,
        act_when: ActWhen::Always,
        health_timeout: g.dial_timeout,
        settle: poll * 2,
        poll,
        forecast_horizon: None,
        space: None,
    })
}

/// `--compaction-mode` with `--compaction-retention`: a duration for periodic, a count for
/// revision mode.
fn compaction_policy(
    mode: cli::CompactionMode,
    retention: Option<&str>,
) -> Result<CompactionPolicy, ConfigError> {
    match mode {
        cli::CompactionMode::Off => Ok(CompactionPolicy::Off),
        cli::CompactionMode::Periodic => {
            let text = retention.unwrap_or("30m");
            let retention = crate::units::parse_duration(text)
                .map_err(|e| ConfigError(format!("--compaction-retention: {e}")))?;
            if retention < Duration::from_secs(1) {
                return Err(ConfigError(
                    "--compaction-retention: must be at least 1s".into(),
                ));
            }
            Ok(CompactionPolicy::Periodic { retention })
        }
        cli::CompactionMode::Revision => {
            let text = retention.unwrap_or("10000");
            let keep: i64 = text.trim().parse().map_err(|_| {
                ConfigError(format!(
                    "--compaction-retention '{text}': revision mode takes a count of revisions, e.g. 10000"
                ))
            })?;
            if keep < 1 {
                return Err(ConfigError(format!(
                    "--compaction-retention '{text}': must be at least 1"
                )));
            }
            Ok(CompactionPolicy::Revision { keep })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_means_what_its_mode_says() {
        use cli::CompactionMode;
        assert!(compaction_policy(CompactionMode::Periodic, Some("30m")).is_ok());
        assert!(compaction_policy(CompactionMode::Periodic, Some("30")).is_err());
        assert!(compaction_policy(CompactionMode::Revision, Some("30m")).is_err());
        assert_eq!(
            compaction_policy(CompactionMode::Revision, None).unwrap(),
            CompactionPolicy::Revision { keep: 10000 }
        );
    }
}
