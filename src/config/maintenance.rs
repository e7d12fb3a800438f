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

/// The engine of `run`.
pub(super) fn for_run(
    g: &GlobalArgs,
    m: &MaintenanceArgs,
    poll: Duration,
) -> Result<Config, ConfigError> {
    let mut config = base(g, &m.healing, poll)?;
    config.compaction = compaction_policy(m.compaction_mode, m.compaction_retention.as_deref())?;
    config.rule = DefragRule::parse(&m.defrag_rule).map_err(ConfigError)?;
    config.schedule = m
        .defrag_schedule
        .as_deref()
        .map(cron_with_seconds)
        .transpose()?;
    config.min_defrag_interval = m.min_defrag_interval;
    config.auto_heal = m.auto_heal;
    config.act_when = match m.act_when {
        cli::ActWhen::Leader => ActWhen::Leader,
        cli::ActWhen::Elected => ActWhen::Elected,
        cli::ActWhen::Always => ActWhen::Always,
    };
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
        rule: DefragRule::parse(DEFAULT_RULE).map_err(ConfigError)?,
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

/// The five fields of a Kubernetes-CronJob-style expression, with their ranges and names.
const CRON_FIELDS: [(&str, u32, u32); 5] = [
    ("minute", 0, 59),
    ("hour", 0, 23),
    ("day of month", 1, 31),
    ("month", 1, 12),
    ("day of week", 0, 7),
];
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// Turns a 5-field expression into the 6-field form (seconds first) tokio-cron-scheduler parses,
/// after checking each field itself so that a bad one is named (the scheduler only says
/// "ParseSchedule"). Public for the fuzz target (`fuzz/fuzz_targets/cron.rs`).
pub fn cron_with_seconds(expr: &str) -> Result<String, ConfigError> {
    let bad = |why: String| ConfigError(format!("--defrag-schedule '{expr}': {why}"));
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(bad(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week, UTC), found {}",
            fields.len()
        )));
    }
    for (field, (name, min, max)) in fields.iter().zip(CRON_FIELDS) {
        check_cron_field(field, name, min, max).map_err(bad)?;
    }
    let six = format!("0 {expr}");
    tokio_cron_scheduler::Job::new_async(six.as_str(), |_, _| Box::pin(async {}))
        .map_err(|e| bad(format!("not accepted by the scheduler ({e:?})")))?;
    Ok(six)
}

fn check_cron_field(field: &str, name: &str, min: u32, max: u32) -> Result<(), String> {
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (part, None),
        };
        if let Some(step) = step
            && step.parse::<u32>().map_or(true, |s| s == 0)
        {
            return Err(format!(
                "the {name} field's step '{step}' is not a positive number"
            ));
        }
        if range == "*" {
            continue;
        }
        for bound in range.split('-') {
            let value = bound
                .parse::<u32>()
                .ok()
                .or_else(|| named(bound, name))
                .ok_or_else(|| format!("the {name} field has '{bound}', which is not a number"))?;
            if value < min || value > max {
                return Err(format!("the {name} field has {value}, outside {min}–{max}"));
            }
        }
    }
    Ok(())
}

fn named(text: &str, field: &str) -> Option<u32> {
    let upper = text.to_ascii_uppercase();
    let list: &[&str] = match field {
        "month" => &MONTHS,
        "day of week" => &DAYS,
        _ => return None,
    };
    list.iter()
        .position(|n| *n == upper)
        .map(|i| i as u32 + u32::from(field == "month"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn five_field_cron_gains_a_seconds_field_and_is_validated() {
        assert_eq!(cron_with_seconds("14 9 * * 1-5").unwrap(), "0 14 9 * * 1-5");
        assert_eq!(cron_with_seconds("0 */3 * * *").unwrap(), "0 0 */3 * * *");
        assert!(cron_with_seconds("0 1 * JAN MON").is_ok());
        let err = cron_with_seconds("* * *").unwrap_err().0;
        assert!(err.contains("expected 5 fields"), "{err}");
        let err = cron_with_seconds("99 * * * *").unwrap_err().0;
        assert!(err.contains("minute field has 99, outside 0–59"), "{err}");
        let err = cron_with_seconds("0 0 32 * *").unwrap_err().0;
        assert!(err.contains("day of month"), "{err}");
        assert!(cron_with_seconds("*/0 * * * *").is_err());
        assert!(
            cron_with_seconds("0 0 * * * *").is_err(),
            "six fields are refused: the contract is 5 like a CronJob"
        );
    }

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
