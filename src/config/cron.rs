//! `--defrag-schedule`: a 5-field cron expression (UTC), checked field by field so that a bad one
//! is named, and refused when it can never fire.
//!
//! Why our own checks before the scheduler's: tokio-cron-scheduler only answers "ParseSchedule",
//! and it reads day-of-month AND day-of-week (croner's `dom_and_dow`), so a schedule such as
//! `5 1 31 6 6` (June 31st, a Saturday) is valid to it but never comes: its search for the next
//! run walks minute by minute to the year 5000, holding the daemon's start for seconds (found by
//! the `cron` fuzz target), and the schedule then silently never opens a window.

use super::ConfigError;

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
/// after checking each field itself and that some day matches. Public for the fuzz target
/// (`fuzz/fuzz_targets/cron.rs`).
pub fn cron_with_seconds(expr: &str) -> Result<String, ConfigError> {
    let bad = |why: String| ConfigError(format!("--defrag-schedule '{expr}': {why}"));
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(bad(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week, UTC), found {}",
            fields.len()
        )));
    }
    let mut sets = [0u64; 5];
    for ((field, (name, min, max)), set) in fields.iter().zip(CRON_FIELDS).zip(&mut sets) {
        *set = field_values(field, name, min, max).map_err(|e| bad(e.to_string()))?;
    }
    let [_, _, days, months, weekdays] = sets;
    if !some_day_matches(days, months, weekdays) {
        return Err(bad(
            "no date has that day of month in those months on those days of the week (the day-of-month and day-of-week fields must both match), so it would never run"
                .into(),
        ));
    }
    let six = format!("0 {expr}");
    tokio_cron_scheduler::Job::new_async(six.as_str(), |_, _| Box::pin(async {}))
        .map_err(|e| bad(format!("not accepted by the scheduler ({e:?})")))?;
    Ok(six)
}

/// What is wrong with one field (the caller names the expression and the flag).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum FieldError {
    #[error("the {name} field's step '{step}' is not a positive number")]
    Step { name: &'static str, step: String },
    #[error("the {name} field has '{bound}', which is not a number")]
    NotANumber { name: &'static str, bound: String },
    #[error("the {name} field has {value}, outside {min}–{max}")]
    OutOfRange {
        name: &'static str,
        value: u32,
        min: u32,
        max: u32,
    },
    #[error("the {name} field's range {from}-{to} runs backwards")]
    Backwards {
        name: &'static str,
        from: u32,
        to: u32,
    },
}

/// The values a field admits, as a set of bits (bit `v` for value `v`): lists of `*`, `a`,
/// `a-b`, each with an optional `/step` (`a/step` runs to the field's maximum).
fn field_values(field: &str, name: &'static str, min: u32, max: u32) -> Result<u64, FieldError> {
    let mut set = 0u64;
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (range, Some(step)),
            None => (part, None),
        };
        let stepped = step.is_some();
        let step = match step {
            None => 1,
            Some(step) => {
                step.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| FieldError::Step {
                        name,
                        step: step.into(),
                    })?
            }
        };
        let value = |bound: &str| -> Result<u32, FieldError> {
            let value = bound
                .parse::<u32>()
                .ok()
                .or_else(|| named(bound, name))
                .ok_or_else(|| FieldError::NotANumber {
                    name,
                    bound: bound.into(),
                })?;
            if value < min || value > max {
                return Err(FieldError::OutOfRange {
                    name,
                    value,
                    min,
                    max,
                });
            }
            Ok(value)
        };
        let (from, to) = match range.split_once('-') {
            _ if range == "*" => (min, max),
            Some((from, to)) => (value(from)?, value(to)?),
            None if stepped => (value(range)?, max),
            None => {
                let only = value(range)?;
                (only, only)
            }
        };
        if from > to {
            return Err(FieldError::Backwards { name, from, to });
        }
        for v in (from..=to).step_by(step as usize) {
            set |= 1 << v;
        }
    }
    Ok(set)
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

/// Whether any date has a day of month in `days`, a month in `months` and a weekday in
/// `weekdays` (bit 0 and bit 7 both Sunday). Exact: the Gregorian calendar, weekdays included,
/// repeats every 400 years (146 097 days, a whole number of weeks), so one cycle is searched.
fn some_day_matches(days: u64, months: u64, weekdays: u64) -> bool {
    let weekdays = weekdays | ((weekdays >> 7) & 1); // 7 is Sunday too
    let mut weekday = 6; // 2000-01-01 was a Saturday
    for year in 2000..2400 {
        for month in 1..=12u32 {
            for day in 1..=days_in(year, month) {
                if months & (1 << month) != 0
                    && days & (1 << day) != 0
                    && weekdays & (1 << weekday) != 0
                {
                    return true;
                }
                weekday = (weekday + 1) % 7;
            }
        }
    }
    false
}

fn days_in(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400)) => {
            29
        }
        2 => 28,
        _ => 31,
    }
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
        let err = cron_with_seconds("0 0 * * 5-2").unwrap_err().0;
        assert!(err.contains("range 5-2 runs backwards"), "{err}");
    }

    #[test]
    fn a_schedule_that_can_never_fire_is_refused_at_once() {
        // The fuzz target's timeout: June 31st on a Saturday.
        let started = std::time::Instant::now();
        let err = cron_with_seconds("5 1 31  6 6").unwrap_err().0;
        assert!(err.contains("would never run"), "{err}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
        assert!(cron_with_seconds("0 0 30 2 *").is_err(), "February 30th");
        assert!(cron_with_seconds("0 0 31 4,6,9,11 *").is_err());
        // Rare but real dates are accepted.
        assert!(cron_with_seconds("0 0 29 2 *").is_ok(), "leap days");
        assert!(
            cron_with_seconds("0 0 29 FEB MON").is_ok(),
            "a leap day on a Monday"
        );
        assert!(
            cron_with_seconds("0 0 31 6-7 6").is_ok(),
            "July 31st on a Saturday"
        );
        assert!(cron_with_seconds("0 0 1 * 7").is_ok(), "7 is Sunday");
    }

    #[test]
    fn steps_and_lists_expand_as_the_scheduler_reads_them() {
        assert_eq!(
            field_values("*/15", "minute", 0, 59).unwrap(),
            1 | 1 << 15 | 1 << 30 | 1 << 45
        );
        assert_eq!(
            field_values("50/5", "minute", 0, 59).unwrap(),
            1 << 50 | 1 << 55
        );
        assert_eq!(
            field_values("1-3,MAY", "month", 1, 12).unwrap(),
            0b1110 | 1 << 5
        );
        assert_eq!(
            field_values("SUN,sat", "day of week", 0, 7).unwrap(),
            1 | 1 << 6
        );
    }
}
