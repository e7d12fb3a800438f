//! Room on disk for a defragmentation.
//!
//! Why: defrag writes a full copy of the live data (`db.tmp.*`) next to the db before renaming
//! it over; a full disk mid-defrag takes the member down. None of the tools we studied check
//! this. We require free space ≥ 1.2 × the db size in use (the copy, plus a margin).

use crate::units::format_bytes;

pub const MARGIN: f64 = 1.2;

pub fn disk_verdict(free_bytes: u64, db_size_in_use: u64) -> Result<(), String> {
    let needed = (db_size_in_use as f64 * MARGIN) as u64;
    if free_bytes >= needed {
        Ok(())
    } else {
        Err(format!(
            "not enough free disk for defragmentation: {} free in the data dir, {} needed \
             (1.2 × {} in use); free disk space or grow the volume",
            format_bytes(free_bytes),
            format_bytes(needed),
            format_bytes(db_size_in_use)
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn needs_one_point_two_times_in_use() {
        assert!(disk_verdict(120, 100).is_ok());
        assert!(disk_verdict(119, 100).unwrap_err().contains("1.2 ×"));
    }
}
