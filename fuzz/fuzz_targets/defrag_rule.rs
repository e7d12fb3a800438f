//! The CEL `--defrag-rule`: parsed from a flag, then evaluated on every poll with whatever
//! sizes etcd reports (zero quota, in-use above size, u64::MAX).
#![no_main]
use etcd_upkeep::decide::defrag_rule::{DefragRule, RuleInput};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 24 {
        return;
    }
    let word = |i: usize| u64::from_le_bytes(data[i * 8..i * 8 + 8].try_into().unwrap());
    let input = RuleInput {
        db_size: word(0),
        db_size_in_use: word(1),
        db_quota: word(2),
    };
    let Ok(source) = std::str::from_utf8(&data[24..]) else {
        return;
    };
    match DefragRule::parse(source) {
        Ok(rule) => {
            let _ = rule.evaluate(&input);
        }
        // The error is one line naming the flag.
        Err(e) => {
            let e = e.to_string();
            assert!(
                e.starts_with("--defrag-rule ") && !e.contains('\n') || source.contains('\n'),
                "{e}"
            )
        }
    }
});
