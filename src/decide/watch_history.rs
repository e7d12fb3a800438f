//! Kept history against the members' watch progress notifications: is the history the space
//! controller keeps long enough for the kube-apiserver, and if not, what to set on etcd.
//!
//! Why it matters: kube-apiserver's watch cache knows etcd's revision only from events and from
//! etcd's progress notifications (every `--watch-progress-notify-interval`, 10 minutes by
//! default). A resource nobody writes sits at a revision up to one interval old, and the
//! apiserver reads etcd at that revision: every 5 minutes to check its cache, and for every
//! page of a paginated LIST. Once that revision is compacted the read fails ("The
//! resourceVersion for the provided list is too old", 410 on a `continue`). So history younger
//! than the interval plus a margin is kept whenever the space target allows (`decide::space`),
//! and when it does not — a sync loop, a small quota — the fix is on etcd's side: notifications
//! more often than the history kept. This file names that fix.
//!
//! The interval is measured (`observe::progress_notify`), given by a flag, or, until either,
//! assumed to be etcd's default: the longer guess, so the history kept errs towards what the
//! apiserver needs.

/// etcd's `--watch-progress-notify-interval` when it is not set (every release 3.4–3.7).
pub const ETCD_DEFAULT_INTERVAL_SECONDS: f64 = 600.0;

/// Where the interval the daemon works with comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IntervalSource {
    /// `--watch-progress-notify-interval` given to etcd-upkeep.
    Flag,
    /// The time between two notifications on etcd-upkeep's own watch.
    Measured,
    /// Not measured yet: etcd's default, or longer if the watch has been silent for longer.
    Assumed,
}

impl IntervalSource {
    pub fn as_str(self) -> &'static str {
        match self {
            IntervalSource::Flag => "flag",
            IntervalSource::Measured => "measured",
            IntervalSource::Assumed => "assumed",
        }
    }
}

/// The members' progress-notify interval as the daemon knows it.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ProgressInterval {
    pub seconds: f64,
    pub source: IntervalSource,
    /// What is certain: the interval is at least this long (the measurement itself, the flag's
    /// word, or — while it is assumed — how long the watch has gone without a notification).
    pub at_least_seconds: f64,
}

impl ProgressInterval {
    /// What is assumed before anything is measured.
    pub fn assumed() -> ProgressInterval {
        ProgressInterval {
            seconds: ETCD_DEFAULT_INTERVAL_SECONDS,
            source: IntervalSource::Assumed,
            at_least_seconds: 0.0,
        }
    }

    /// What `--watch-progress-notify-interval` says (no watch then): taken at its word.
    pub fn given(interval: std::time::Duration) -> ProgressInterval {
        ProgressInterval {
            seconds: interval.as_secs_f64(),
            source: IntervalSource::Flag,
            at_least_seconds: interval.as_secs_f64(),
        }
    }

    /// The least history a watcher that is one notification behind can read from: the interval
    /// plus a margin for etcd's jitter (up to a tenth of the interval), the notification's
    /// delivery and the poll between two compactions.
    pub fn history_needed(&self) -> f64 {
        self.seconds + margin(self.seconds)
    }
}

fn margin(interval: f64) -> f64 {
    (interval / 4.0).max(10.0)
}

/// What /status says about kept history and the interval.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WatchHistory {
    /// Seconds of history the space controller keeps now.
    pub kept_seconds: f64,
    pub interval_seconds: f64,
    pub interval_source: IntervalSource,
    /// Seconds of history the apiserver's watchers need (interval + margin).
    pub needed_seconds: f64,
    /// Kept history is below the interval (entered below the interval, left at `needed`: one
    /// log line each way, not one per poll). Only when that is certain: an interval that is
    /// merely assumed counts once the watch has been silent for longer than the history kept.
    pub below: bool,
    /// The etcd flag that sets the interval, for the member's version.
    pub flag: &'static str,
    /// The value to give it so that the history kept covers it.
    pub recommended: String,
    /// What to do, while `below` (None otherwise).
    pub advice: Option<String>,
}

/// Compares the history kept with the interval. `floor` is the least history the controller
/// keeps while it fits (the recommended interval leaves room under it even when the space
/// target forces less); `was_below` is the last answer (hysteresis); `version` is the member's
/// etcd version, which picks the flag's spelling.
pub fn watch_history(
    kept_seconds: f64,
    interval: ProgressInterval,
    floor: f64,
    version: &str,
    was_below: bool,
) -> WatchHistory {
    let needed = interval.history_needed();
    let below = if was_below {
        kept_seconds < needed
    } else {
        kept_seconds < interval.seconds && kept_seconds < interval.at_least_seconds
    };
    let flag = flag_for(version);
    let recommended = format!("{}s", recommended_interval(kept_seconds.min(floor)));
    let advice = below.then(|| {
        let measured = match interval.source {
            IntervalSource::Measured => "measured".to_string(),
            IntervalSource::Flag => "given by --watch-progress-notify-interval".to_string(),
            IntervalSource::Assumed => format!(
                "etcd's default, not measured yet: no notification for {}",
                seconds(interval.at_least_seconds)
            ),
        };
        format!(
            "kept history {} is below the members' watch progress-notify interval {} ({measured}): kube-apiserver's watch cache reads at revisions up to that old and fails its consistency checks and paginated LISTs once they are compacted. Set {flag}={recommended} on every etcd member (or give etcd more quota so more history fits)",
            seconds(kept_seconds),
            seconds(interval.seconds),
        )
    });
    WatchHistory {
        kept_seconds,
        interval_seconds: interval.seconds,
        interval_source: interval.source,
        needed_seconds: needed,
        below,
        flag,
        recommended,
        advice,
    }
}

/// etcd 3.6 made the flag stable; 3.4 and 3.5 know only the experimental spelling (3.6 still
/// accepts it with a deprecation warning, 3.7 no longer does).
pub fn flag_for(version: &str) -> &'static str {
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    if (major, minor) >= (3, 6) {
        "--watch-progress-notify-interval"
    } else {
        "--experimental-watch-progress-notify-interval"
    }
}

/// A round interval, in seconds, whose history (with margin) fits three times in `history`:
/// 20 s for the controller's default 1-minute floor. Notifications are cheap (one small message
/// per watcher that saw no event), so erring short costs little.
pub fn recommended_interval(history: f64) -> u64 {
    const ROUND: [u64; 9] = [1, 2, 5, 10, 15, 20, 30, 60, 300];
    let most = history / 3.0;
    ROUND
        .iter()
        .rev()
        .copied()
        .find(|&s| s as f64 <= most)
        .unwrap_or(1)
}

fn seconds(s: f64) -> String {
    humantime::format_duration(std::time::Duration::from_secs(s.max(0.0).round() as u64))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(seconds: f64) -> ProgressInterval {
        ProgressInterval {
            seconds,
            source: IntervalSource::Measured,
            at_least_seconds: seconds,
        }
    }

    #[test]
    fn the_flag_is_spelled_for_the_members_version() {
        assert_eq!(
            flag_for("3.4.23"),
            "--experimental-watch-progress-notify-interval"
        );
        assert_eq!(
            flag_for("3.5.21"),
            "--experimental-watch-progress-notify-interval"
        );
        assert_eq!(flag_for("3.6.8"), "--watch-progress-notify-interval");
        assert_eq!(flag_for("3.7.3"), "--watch-progress-notify-interval");
        // Unknown: the older spelling, which 3.6 still accepts.
        assert_eq!(
            flag_for(""),
            "--experimental-watch-progress-notify-interval"
        );
    }

    #[test]
    fn the_recommended_interval_fits_three_times_in_the_history() {
        assert_eq!(recommended_interval(60.0), 20);
        assert_eq!(recommended_interval(80.0), 20);
        assert_eq!(recommended_interval(30.0), 10);
        assert_eq!(recommended_interval(2.0), 1);
        assert_eq!(recommended_interval(3600.0), 300);
    }

    #[test]
    fn below_is_entered_at_the_interval_and_left_above_it_with_margin() {
        let i = measured(600.0);
        assert_eq!(i.history_needed(), 750.0);
        assert!(!watch_history(1800.0, i, 60.0, "3.6.8", false).below);
        assert!(!watch_history(650.0, i, 60.0, "3.6.8", false).below);
        let under = watch_history(80.0, i, 60.0, "3.6.8", false);
        assert!(under.below);
        // Back above the interval but inside the margin: still below (no flapping line).
        assert!(watch_history(650.0, i, 60.0, "3.6.8", true).below);
        assert!(!watch_history(750.0, i, 60.0, "3.6.8", true).below);
    }

    #[test]
    fn an_assumed_interval_is_below_only_once_the_silence_outlasts_the_history_kept() {
        // 80 s kept, etcd's 10 minutes assumed: a notification may still come within 80 s
        // (the snippet's 20 s would), so nothing is said yet.
        let silent_for = |s: f64| ProgressInterval {
            at_least_seconds: s,
            ..ProgressInterval::assumed()
        };
        assert!(!watch_history(80.0, silent_for(30.0), 60.0, "3.6.8", false).below);
        // 90 s without one: the interval is longer than the history kept, whatever it is.
        assert!(watch_history(80.0, silent_for(90.0), 60.0, "3.6.8", false).below);
    }

    #[test]
    fn the_advice_names_the_flag_and_its_value() {
        let v = watch_history(80.0, measured(600.0), 60.0, "3.6.8", false);
        let advice = v.advice.unwrap();
        assert!(
            advice.contains("Set --watch-progress-notify-interval=20s on every etcd member"),
            "{advice}"
        );
        assert!(advice.contains("kept history 1m 20s"), "{advice}");
        assert!(advice.contains("10m (measured)"), "{advice}");
        let silent_for = |s: f64| ProgressInterval {
            at_least_seconds: s,
            ..ProgressInterval::assumed()
        };
        let v = watch_history(30.0, silent_for(45.0), 60.0, "3.5.21", false);
        let advice = v.advice.unwrap();
        assert!(
            advice.contains("--experimental-watch-progress-notify-interval=10s"),
            "{advice}"
        );
        assert!(
            advice.contains("not measured yet: no notification for 45s"),
            "{advice}"
        );
        assert!(
            watch_history(1800.0, measured(20.0), 60.0, "3.6.8", false)
                .advice
                .is_none()
        );
    }
}
