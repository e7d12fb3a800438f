//! `DefragRule`: when a defragmentation pays, as a CEL expression over etcd-defrag's variables.
//!
//! Why CEL with etcd-defrag's names: its users' rules (`dbQuotaUsage > 0.8 || dbSizeFree >
//! 200*1024*1024`) keep working unchanged. etcd-defrag's evaluator (goval) mixes integers and
//! doubles freely; strict CEL does not (`dbQuota * 0.1` is int × double). So every variable is
//! bound as a double and every integer literal is read as a double before compiling — sizes up
//! to 2^53 bytes (8 PiB) are exact, far beyond any etcd.
//!
//! The default defragments only when it pays: the db is over 80 % of the quota and a defrag would
//! give back at least 5 % of the quota (space is about to run out), or at least 100 MiB AND 45 %
//! of the file is free (OpenShift's thresholds: below that, a stop-the-world defrag costs more
//! than it returns). A bare `dbQuotaUsage > 0.8` stays true for as long as live data is high, so
//! it would defragment again and again for nothing; the engine also skips members with nothing
//! reclaimable, whatever the rule.

use cel::{Context, Program, Value};

pub const DEFAULT_RULE: &str = "(dbQuotaUsage > 0.8 && dbSizeFree > dbQuota * 0.05) || (dbSizeFree >= 100*1024*1024 && fragmentation >= 0.45)";

/// The numbers a rule sees for one member.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RuleInput {
    pub db_size: u64,
    pub db_size_in_use: u64,
    pub db_quota: u64,
}

impl RuleInput {
    pub fn db_size_free(&self) -> u64 {
        self.db_size.saturating_sub(self.db_size_in_use)
    }
    pub fn quota_usage(&self) -> f64 {
        if self.db_quota == 0 {
            0.0
        } else {
            self.db_size as f64 / self.db_quota as f64
        }
    }
    pub fn fragmentation(&self) -> f64 {
        if self.db_size == 0 {
            0.0
        } else {
            self.db_size_free() as f64 / self.db_size as f64
        }
    }
}

pub struct DefragRule {
    source: String,
    program: Program,
}

/// Why `--defrag-rule` was refused at start-up (one line, naming the flag and the rule).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RuleError {
    /// Not CEL, or not over the variables a rule sees (the first line of CEL's message).
    #[error("--defrag-rule '{rule}': {why}")]
    Syntax { rule: String, why: String },
    /// It compiles but does not give a boolean on sample figures.
    #[error("--defrag-rule '{rule}': {why}")]
    Evaluation { rule: String, why: EvalError },
}

/// Why a rule gave no verdict for one member.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EvalError {
    #[error("the rule must be a boolean, it gave {0}")]
    NotBoolean(String),
    #[error("evaluation failed: {0}")]
    Failed(String),
}

impl std::fmt::Debug for DefragRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DefragRule({})", self.source)
    }
}

impl DefragRule {
    /// Compiles the rule and checks it yields a boolean on sample input. The error is one line.
    pub fn parse(source: &str) -> Result<DefragRule, RuleError> {
        let normalised = integer_literals_as_doubles(source);
        let program = Program::compile(&normalised).map_err(|e| {
            let text = e.to_string();
            RuleError::Syntax {
                rule: source.into(),
                why: text.lines().next().unwrap_or("syntax error").into(),
            }
        })?;
        let rule = DefragRule {
            source: source.to_string(),
            program,
        };
        rule.evaluate(&RuleInput {
            db_size: 100,
            db_size_in_use: 50,
            db_quota: 1000,
        })
        .map_err(|why| RuleError::Evaluation {
            rule: source.into(),
            why,
        })?;
        Ok(rule)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn evaluate(&self, input: &RuleInput) -> Result<bool, EvalError> {
        let mut context = Context::default();
        let vars = [
            ("dbSize", input.db_size as f64),
            ("dbSizeInUse", input.db_size_in_use as f64),
            ("dbSizeFree", input.db_size_free() as f64),
            ("dbQuota", input.db_quota as f64),
            ("dbQuotaUsage", input.quota_usage()),
            ("fragmentation", input.fragmentation()),
        ];
        for (name, value) in vars {
            context.add_variable_from_value(name, Value::Float(value));
        }
        match self.program.execute(&context) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(EvalError::NotBoolean(format!("{other:?}"))),
            Err(e) => Err(EvalError::Failed(e.to_string())),
        }
    }
}

/// Rewrites decimal integer literals (`200`, `1024`) as doubles (`200.0`), leaving strings,
/// identifiers (`x1`), hex (`0x10`), unsigned (`1u`) and existing doubles (`0.8`, `1e3`) alone.
fn integer_literals_as_doubles(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut out = String::with_capacity(source.len() + 8);
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '"' || c == '\'' {
            // Copy a string literal verbatim, honouring backslash escapes.
            out.push(c);
            i += 1;
            while i < chars.len() {
                out.push(chars[i]);
                if chars[i] == '\\' && i + 1 < chars.len() {
                    out.push(chars[i + 1]);
                    i += 2;
                    continue;
                }
                if chars[i] == c {
                    i += 1;
                    break;
                }
                i += 1;
            }
            continue;
        }
        let starts_number = c.is_ascii_digit()
            && (i == 0
                || !(chars[i - 1].is_alphanumeric() || chars[i - 1] == '_' || chars[i - 1] == '.'));
        if starts_number {
            let start = i;
            while i < chars.len() && chars[i].is_ascii_digit() {
                i += 1;
            }
            let literal: String = chars[start..i].iter().collect();
            let next = chars.get(i).copied();
            let is_integer = !matches!(next, Some('.' | 'e' | 'E' | 'x' | 'X' | 'u' | 'U'));
            out.push_str(&literal);
            if is_integer {
                out.push_str(".0");
            }
            continue;
        }
        out.push(c);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1024 * 1024;

    fn eval(rule: &str, size: u64, in_use: u64, quota: u64) -> bool {
        DefragRule::parse(rule)
            .unwrap()
            .evaluate(&RuleInput {
                db_size: size,
                db_size_in_use: in_use,
                db_quota: quota,
            })
            .unwrap()
    }

    #[test]
    fn etcd_defrag_readme_rule() {
        let rule = "dbQuotaUsage > 0.8 || dbSizeFree > 200*1024*1024";
        assert!(eval(rule, 900 * MIB, 890 * MIB, 1024 * MIB)); // quota usage 0.88
        assert!(eval(rule, 500 * MIB, 250 * MIB, 2048 * MIB)); // 250 MiB free
        assert!(!eval(rule, 500 * MIB, 400 * MIB, 2048 * MIB));
    }

    #[test]
    fn giantswarm_rule_mixes_int_and_double() {
        let rule = "dbQuotaUsage > 0.8 && dbSizeFree > dbQuota * 0.1";
        let quota = 8192 * MIB;
        assert!(eval(rule, 7000 * MIB, 6000 * MIB, quota));
        assert!(!eval(rule, 7000 * MIB, 6500 * MIB, quota)); // free 500 MiB < 819 MiB
        assert!(!eval(rule, 1000 * MIB, 100 * MIB, quota)); // usage low
    }

    #[test]
    fn default_rule_pays_only_when_worth_it() {
        let quota = 2048 * MIB;
        assert!(!eval(DEFAULT_RULE, 50 * MIB, 10 * MIB, quota)); // small db
        assert!(!eval(DEFAULT_RULE, 400 * MIB, 300 * MIB, quota)); // 25 % free
        assert!(eval(DEFAULT_RULE, 400 * MIB, 200 * MIB, quota)); // 200 MiB, 50 % free
        assert!(eval(DEFAULT_RULE, 1700 * MIB, 1500 * MIB, quota)); // 83 % of quota, 200 MiB free
        assert!(!eval(DEFAULT_RULE, 1700 * MIB, 1690 * MIB, quota)); // 83 % but all live data
    }

    #[test]
    fn invalid_rules_are_rejected_with_the_reason() {
        let err = DefragRule::parse("dbSize >").unwrap_err();
        assert!(matches!(err, RuleError::Syntax { .. }), "{err:?}");
        let err = err.to_string();
        assert!(err.starts_with("--defrag-rule 'dbSize >'"), "{err}");
        assert!(!err.contains('\n'));
        let not_boolean = DefragRule::parse("dbSize + 1").unwrap_err();
        assert!(
            matches!(
                &not_boolean,
                RuleError::Evaluation {
                    why: EvalError::NotBoolean(_),
                    ..
                }
            ),
            "{not_boolean:?}"
        );
        assert!(not_boolean.to_string().contains("boolean"));
        assert!(DefragRule::parse("unknownVar > 1").is_err());
    }

    #[test]
    fn literal_rewriting_leaves_non_integers_alone() {
        assert_eq!(
            integer_literals_as_doubles("a > 200*1024"),
            "a > 200.0*1024.0"
        );
        assert_eq!(
            integer_literals_as_doubles("x1 > 0.8 && y > 1e3"),
            "x1 > 0.8 && y > 1e3"
        );
        assert_eq!(
            integer_literals_as_doubles("s == '12' && t > 0x10"),
            "s == '12' && t > 0x10"
        );
        assert_eq!(integer_literals_as_doubles("n > 3u"), "n > 3u");
    }
}
