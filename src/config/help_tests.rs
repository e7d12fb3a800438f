//! The help of every subcommand lists only the flags that subcommand uses.
//!
//! Why a test: a flag shown in `analyze -h` that analyze ignores is a lie a user acts on (they
//! set `--quota-backend-bytes` and nothing changes). For each subcommand, every flag its help
//! lists is given a value other than its default, and the settings built from the command line
//! must change; a flag that changes nothing is not used and must not be listed there. A new flag
//! needs a value here (`ALTERNATIVES`), or the test names it.

use clap::{CommandFactory, Parser};

use crate::cli::{Cli, Command};

use super::commands::{AnalyzeSettings, HealSettings, RunSettings, StatusSettings};

/// Read by `main` before any settings exist (the tracing subscriber), not by a subcommand.
const READ_BY_MAIN: [&str; 2] = ["log-format", "log-level"];

/// `(flag, args before the flag's own, the flag's own)`: the first set is the baseline the
/// flag is compared with (a flag that needs a partner gets the partner in both).
fn alternatives(dir: &str) -> Vec<(&'static str, Vec<String>, Vec<String>)> {
    let file = |name: &str| format!("{dir}/{name}");
    let pair =
        |flag: &'static str, value: String| (flag, Vec::new(), vec![format!("--{flag}={value}")]);
    let with = |flag: &'static str, base: Vec<String>, value: String| {
        let mut own = base.clone();
        own.push(format!("--{flag}={value}"));
        (flag, base, own)
    };
    // The same arguments with `flag`'s value replaced: for flags whose absence is an error.
    let replaced = |flag: &'static str, base: Vec<String>, value: String| {
        let prefix = format!("--{flag}=");
        let mut own: Vec<String> = base
            .iter()
            .filter(|a| !a.starts_with(&prefix))
            .cloned()
            .collect();
        own.push(format!("{prefix}{value}"));
        (flag, base, own)
    };
    let ca = format!("--cacert={}", file("ca.crt"));
    vec![
        pair("endpoints", "http://127.0.0.2:2379".into()),
        pair("cacert", file("ca.crt")),
        // --cert and --key come together: the baseline has both, the flag's own line another
        // value of that one.
        (
            "cert",
            vec![
                ca.clone(),
                format!("--cert={}", file("c")),
                format!("--key={}", file("k")),
            ],
            vec![
                ca.clone(),
                format!("--cert={}", file("c2")),
                format!("--key={}", file("k")),
            ],
        ),
        (
            "key",
            vec![
                ca.clone(),
                format!("--cert={}", file("c")),
                format!("--key={}", file("k")),
            ],
            vec![
                ca.clone(),
                format!("--cert={}", file("c")),
                format!("--key={}", file("k2")),
            ],
        ),
        pair("preset", "embedded".into()),
        with("pki-dir", vec!["--preset=embedded".into()], dir.into()),
        pair("dial-timeout", "2s".into()),
        pair("command-timeout", "60s".into()),
        pair("discover", "false".into()),
        pair("quota-backend-bytes", "8Gi".into()),
        pair("etcd-metrics-url", "http://127.0.0.1:2381/metrics".into()),
        pair("output", "json".into()),
        pair("watch", "10s".into()),
        pair("prefix", "/registry/".into()),
        pair("top", "3".into()),
        pair("page-size", "100".into()),
        pair("heal-timeout", "2m".into()),
        pair("listen-address", "127.0.0.1:9999".into()),
        pair("poll-interval", "2s".into()),
        ("dry-run", Vec::new(), vec!["--dry-run".into()]),
        pair("auto-heal", "false".into()),
        pair("move-leader", "false".into()),
        pair("disarm-threshold", "0.5".into()),
        pair("data-dir", dir.into()),
        pair("compaction-mode", "revision".into()),
        with(
            "compaction-retention",
            vec!["--compaction-mode=revision".into()],
            "500".into(),
        ),
        pair("defrag-rule", "true".into()),
        pair("defrag-schedule", "0 3 * * *".into()),
        pair("min-defrag-interval", "2h".into()),
        pair("act-when", "always".into()),
        pair("space-target", "0.5".into()),
        pair("history-floor", "5m".into()),
        pair("watch-progress-notify-interval", "20s".into()),
        pair("forecast-horizon", "0s".into()),
        pair("churn-watch", "false".into()),
        pair("churn-prefix", "/registry/configmaps/".into()),
        pair("churn-threshold", "30".into()),
        pair("web-config-file", file("web.yml")),
        with(
            "web-healthz-open",
            vec![format!("--web-config-file={}", file("web.yml"))],
            "false".into(),
        ),
        (
            "kubernetes-events",
            events_on(dir, "false"),
            events_on(dir, "true"),
        ),
        replaced(
            "kubernetes-api",
            events_on(dir, "true"),
            "10.96.0.1:443".into(),
        ),
        with(
            "kubernetes-token-file",
            events_on(dir, "true"),
            file("token2"),
        ),
        replaced(
            "kubernetes-ca-file",
            events_on(dir, "true"),
            file("ca2.crt"),
        ),
        replaced("pod-name", events_on(dir, "true"), "p2".into()),
        replaced("pod-namespace", events_on(dir, "true"), "ns2".into()),
        with("pod-uid", events_on(dir, "true"), "u-1".into()),
    ]
}

/// `--kubernetes-events=<on>` with what it needs.
fn events_on(dir: &str, on: &str) -> Vec<String> {
    [
        ("kubernetes-events", on.to_string()),
        ("kubernetes-api", "127.0.0.1:6443".to_string()),
        ("kubernetes-ca-file", format!("{dir}/ca.crt")),
        ("pod-name", "p".to_string()),
        ("pod-namespace", "ns".to_string()),
    ]
    .into_iter()
    .map(|(flag, value)| format!("--{flag}={value}"))
    .collect()
}

/// The settings a command line builds, as text (every settings type derives Debug).
fn settings(args: &[String]) -> Result<String, String> {
    let cli = Cli::try_parse_from(args).map_err(|e| e.to_string())?;
    let g = &cli.global;
    let built = match &cli.command {
        Command::Run(a) => RunSettings::from_cli(g, a).map(|s| format!("{s:?}")),
        Command::Status(a) => StatusSettings::from_cli(g, a).map(|s| format!("{s:?}")),
        Command::Analyze(a) => AnalyzeSettings::from_cli(g, a).map(|s| format!("{s:?}")),
        Command::Heal(a) => HealSettings::from_cli(g, a).map(|s| format!("{s:?}")),
    };
    built.map_err(|e| e.to_string())
}

#[test]
fn every_flag_in_a_subcommands_help_changes_its_settings() {
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().display().to_string();
    std::fs::write(dir.path().join("web.yml"), "basic_auth_users: {}\n").unwrap();
    // The Kubernetes API's CA is read when the flags are (its path named if it is wrong).
    let ca = rcgen::generate_simple_self_signed(vec!["kubernetes".to_string()]).unwrap();
    for name in ["ca.crt", "ca2.crt"] {
        std::fs::write(dir.path().join(name), ca.cert.pem()).unwrap();
    }
    let table = alternatives(&dir_path);
    let mut cli = Cli::command();
    cli.build();
    let mut unused = Vec::new();
    for sub in cli.get_subcommands() {
        let name = sub.get_name();
        let base = |extra: &[String]| {
            let mut args = vec![
                "etcd-upkeep".to_string(),
                name.to_string(),
                "--endpoints=http://127.0.0.1:2379".to_string(),
            ];
            args.extend(extra.iter().cloned());
            args
        };
        for arg in sub.get_arguments() {
            let Some(flag) = arg.get_long() else { continue };
            if ["help", "version"].contains(&flag) || READ_BY_MAIN.contains(&flag) {
                continue;
            }
            let (_, before, own) = table
                .iter()
                .find(|(f, _, _)| *f == flag)
                .unwrap_or_else(|| {
                    panic!("`{name} -h` lists --{flag}: give it a value in ALTERNATIVES")
                });
            let without =
                settings(&base(before)).unwrap_or_else(|e| panic!("{name} {before:?}: {e}"));
            let with = settings(&base(own)).unwrap_or_else(|e| panic!("{name} {own:?}: {e}"));
            if with == without {
                unused.push(format!("{name} --{flag}"));
            }
        }
    }
    assert!(
        unused.is_empty(),
        "listed in the help but changing nothing: {unused:?}"
    );
}
