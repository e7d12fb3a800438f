//! Humane units on the command line: durations like `500ms`, `5s`, `30m`, and byte sizes like
//! `2Gi`, `8589934592` or `512Mi`.
//!
//! Why a module of its own: every flag that takes a duration or a size goes through these two
//! parsers, so one place decides what is accepted and what the error says when it is not.

use std::time::Duration;

/// Parses a duration such as `500ms`, `5s`, `1m30s` or `2h`. A bare number is rejected: etcd's own
/// `--auto-compaction-retention` reads a bare number as hours, which surprises people, so we ask
/// for the unit.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration (write e.g. 5s, 500ms, 30m)".into());
    }
    if text.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "'{text}' has no unit (write e.g. {text}s or {text}m)"
        ));
    }
    humantime::parse_duration(text).map_err(|e| format!("'{text}' is not a duration: {e}"))
}

/// Parses a byte size: plain bytes (`1048576`), binary suffixes `Ki`, `Mi`, `Gi`, `Ti` (optionally
/// followed by `B`), and decimal `K`/`KB`, `M`/`MB`, `G`/`GB`.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, suffix) = text.split_at(split);
    if digits.is_empty() {
        return Err(format!(
            "'{text}' is not a size (write e.g. 2Gi, 512Mi or 8589934592)"
        ));
    }
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("'{text}' is too large a size"))?;
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
            return Err(format!(
                "'{text}' has an unknown size suffix '{other}' (use Ki, Mi, Gi, Ti or none)"
            ));
        }
    };
    number
        .checked_mul(multiplier)
        .ok_or_else(|| format!("'{text}' is too large a size"))
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
        assert!(parse_duration("5").unwrap_err().contains("no unit"));
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
        assert!(parse_size("2Xi").unwrap_err().contains("suffix"));
        assert!(parse_size("Gi").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999999999999Gi").is_err());
    }

    #[test]
    fn bytes_are_formatted_for_people() {
        assert_eq!(format_bytes(900), "900 B");
        assert_eq!(format_bytes(16 << 20), "16.0 MiB");
        assert_eq!(format_bytes(3 << 29), "1.5 GiB");
    }
}
