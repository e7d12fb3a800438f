//! Humane units on the command line: durations like `500ms`, `5s`, `30m`, and byte sizes like
//! `2Gi`, `8589934592` or `512Mi`.
//!
//! Why a module of its own: every flag that takes a duration or a size goes through these two
//! parsers, so one place decides what is accepted and what the error says when it is not.

use std::time::Duration;

/// A value on the command line that is not what its flag takes; the text names the value and
/// what would be accepted (clap puts the flag in front of it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnitError {
    #[error("empty duration (write e.g. 5s, 500ms, 30m)")]
    EmptyDuration,
    #[error("'{0}' has no unit (write e.g. {0}s or {0}m)")]
    NoUnit(String),
    #[error("'{text}' is not a duration: {why}")]
    NotADuration { text: String, why: String },
    #[error("'{0}' is not a size (write e.g. 2Gi, 512Mi or 8589934592)")]
    NotASize(String),
    #[error("'{0}' is too large a size")]
    TooLarge(String),
    #[error("'{text}' has an unknown size suffix '{suffix}' (use Ki, Mi, Gi, Ti or none)")]
    UnknownSuffix { text: String, suffix: String },
    #[error("'{0}' is not a number")]
    NotANumber(String),
    #[error("'{0}' must be between 0 and 1 (exclusive)")]
    NotAFraction(String),
}

/// Parses a duration such as `500ms`, `5s`, `1m30s` or `2h`. A bare number is rejected: etcd's own
/// `--auto-compaction-retention` reads a bare number as hours, which surprises people, so we ask
/// for the unit.
pub fn parse_duration(text: &str) -> Result<Duration, UnitError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(UnitError::EmptyDuration);
    }
    if text.chars().all(|c| c.is_ascii_digit()) {
        return Err(UnitError::NoUnit(text.into()));
    }
    humantime::parse_duration(text).map_err(|e| UnitError::NotADuration {
        text: text.into(),
        why: e.to_string(),
    })
}

/// Parses a byte size: plain bytes (`1048576`), binary suffixes `Ki`, `Mi`, `Gi`, `Ti` (optionally
/// followed by `B`), and decimal `K`/`KB`, `M`/`MB`, `G`/`GB`.
pub fn parse_size(text: &str) -> Result<u64, UnitError> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    if digits.is_empty() {
        return Err(UnitError::NotASize(text.into()));
    }
    let too_large = || UnitError::TooLarge(text.into());
    let number: u64 = digits.parse().map_err(|_| too_large())?;
    let multiplier: u64 = match suffix.trim() {
        "" | "B" => 1,
        "Ki" | "KiB" => 1 << 10,
        "Mi" | "MiB" => 1 << 20,
        "Gi" | "GiB" => 1 << 30,
        "Ti" | "TiB" => 1 << 40,
        "K" | "KB" | "k" | "kB" => 1_000,
        "M" | "MB" => 1_000_000,
        "G" | "GB" => 1_000_000_000,
        other => {
            return Err(UnitError::UnknownSuffix {
                text: text.into(),
                suffix: other.into(),
            });
        }
    };
    number.checked_mul(multiplier).ok_or_else(too_large)
}

/// A fraction strictly between 0 and 1 (`0.9`).
pub fn parse_fraction(text: &str) -> Result<f64, UnitError> {
    let value: f64 = text
        .trim()
        .parse()
        .map_err(|_| UnitError::NotANumber(text.into()))?;
    if value > 0.0 && value < 1.0 {
        Ok(value)
    } else {
        Err(UnitError::NotAFraction(text.into()))
    }
}

/// A fraction, or `0` / `off` for "off" (0.0).
pub fn parse_fraction_or_off(text: &str) -> Result<f64, UnitError> {
    match text.trim() {
        "0" | "0.0" | "off" => Ok(0.0),
        _ => parse_fraction(text),
    }
}

/// Formats bytes for people: `1.5 GiB`, `512.0 MiB`, `900 B`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_need_units() {
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("5"), Err(UnitError::NoUnit("5".into())));
        assert!(
            parse_duration("5")
                .unwrap_err()
                .to_string()
                .contains("no unit")
        );
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn sizes_accept_binary_suffixes() {
        assert_eq!(parse_size("2Gi").unwrap(), 2 * 1024 * 1024 * 1024);
        assert_eq!(parse_size("8589934592").unwrap(), 8 << 30);
        assert_eq!(parse_size("16Mi").unwrap(), 16 << 20);
        assert_eq!(parse_size("64KiB").unwrap(), 64 << 10);
        assert_eq!(parse_size("1G").unwrap(), 1_000_000_000);
        assert!(
            parse_size("2Xi")
                .unwrap_err()
                .to_string()
                .contains("suffix")
        );
        assert!(parse_size("Gi").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999Gi").is_err());
    }

    #[test]
    fn fractions_are_strictly_between_0_and_1_or_off() {
        assert!(parse_fraction("0.9").is_ok());
        assert_eq!(
            parse_fraction("1.5"),
            Err(UnitError::NotAFraction("1.5".into()))
        );
        assert_eq!(parse_fraction("x"), Err(UnitError::NotANumber("x".into())));
        assert_eq!(parse_fraction_or_off("0"), Ok(0.0));
        assert_eq!(parse_fraction_or_off("0.7"), Ok(0.7));
        assert!(parse_fraction_or_off("1").is_err());
    }

    #[test]
    fn bytes_are_formatted_for_people() {
        assert_eq!(format_bytes(900), "900 B");
        assert_eq!(format_bytes(16 << 20), "16.0 MiB");
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
    }
}
