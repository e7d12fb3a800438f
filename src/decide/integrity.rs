//! What a set of KV hashes proves: the members agree, they disagree, or nothing could be
//! compared. "Verified" means compared — never "nothing went wrong that we noticed".
//!
//! Why hashes at one revision: `HashKV(rev)` hashes the key-value store up to `rev`, skipping
//! what is compacted, so two members' hashes are comparable exactly when they cover the same
//! revision and the same compacted range. Different hashes then mean different data (etcd's own
//! corruption check works the same way). Anything else — a member that did not answer, a
//! different compact revision — proves nothing either way.

/// The outcome of an integrity check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Integrity {
    /// Every comparison that applies was made and matched; says what was compared.
    Verified(String),
    /// A comparison that applies could not be made; says why. Never reads as a success.
    Unverifiable(String),
    /// Different hashes over the same range: the data differs.
    Mismatch(String),
}

impl Integrity {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            Integrity::Verified(_) => "verified",
            Integrity::Unverifiable(_) => "unverifiable",
            Integrity::Mismatch(_) => "mismatch",
        }
    }
}

/// One member's answer to `HashKV(revision)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberHash {
    pub member: String,
    /// `Err`: why no hash was had.
    pub hash: Result<(u32, i64), crate::etcd::EtcdError>,
}

/// Compares the members' hashes at `revision` (hash, compact revision).
pub fn compare_hashes(revision: i64, hashes: &[MemberHash]) -> Integrity {
    if hashes.len() < 2 {
        return Integrity::Unverifiable(format!(
            "{} KV hash: nothing to compare with",
            hashes.len()
        ));
    }
    if let Some(missing) = hashes.iter().find(|h| h.hash.is_err()) {
        let why = missing.hash.as_ref().err().map(ToString::to_string);
        return Integrity::Unverifiable(format!(
            "no KV hash from {} at revision {revision}: {}",
            missing.member,
            why.unwrap_or_default()
        ));
    }
    let answered: Vec<(&str, u32, i64)> = hashes
        .iter()
        .filter_map(|h| {
            h.hash
                .as_ref()
                .ok()
                .map(|&(hash, c)| (h.member.as_str(), hash, c))
        })
        .collect();
    let (first, first_hash, first_compact) = answered[0];
    for &(member, hash, compact) in &answered[1..] {
        if compact != first_compact {
            return Integrity::Unverifiable(format!(
                "{first} and {member} have compacted to different revisions ({first_compact}, {compact}): their hashes at {revision} cover different ranges"
            ));
        }
        if hash != first_hash {
            return Integrity::Mismatch(format!(
                "{member}'s KV hash at revision {revision} ({hash:x}) differs from {first}'s ({first_hash:x})"
            ));
        }
    }
    Integrity::Verified(format!(
        "{} members hash {first_hash:x} at revision {revision}",
        answered.len()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(member: &str, hash: u32, compact: i64) -> MemberHash {
        MemberHash {
            member: member.into(),
            hash: Ok((hash, compact)),
        }
    }

    #[test]
    fn equal_hashes_over_the_same_range_are_verified() {
        let v = compare_hashes(100, &[h("m0", 7, 50), h("m1", 7, 50), h("m2", 7, 50)]);
        assert_eq!(v.label(), "verified");
        assert!(matches!(v, Integrity::Verified(t) if t.contains("3 members")));
    }

    #[test]
    fn different_hashes_over_the_same_range_are_a_mismatch() {
        let v = compare_hashes(100, &[h("m0", 7, 50), h("m1", 8, 50)]);
        assert_eq!(v.label(), "mismatch");
        assert!(matches!(v, Integrity::Mismatch(t) if t.contains("m1")));
    }

    #[test]
    fn one_hash_is_no_comparison() {
        let v = compare_hashes(100, &[h("m0", 7, 50)]);
        assert_eq!(v.label(), "unverifiable");
    }

    #[test]
    fn a_missing_hash_or_another_range_proves_nothing() {
        let missing = MemberHash {
            member: "m2".into(),
            hash: Err(crate::etcd::EtcdError::timeout(
                "HashKV",
                "https://10.0.0.3:2379",
                std::time::Duration::from_secs(5),
            )),
        };
        assert_eq!(
            compare_hashes(100, &[h("m0", 7, 50), missing]).label(),
            "unverifiable"
        );
        // Different compact revisions: even different hashes are not a mismatch.
        assert_eq!(
            compare_hashes(100, &[h("m0", 7, 50), h("m1", 8, 60)]).label(),
            "unverifiable"
        );
    }
}
