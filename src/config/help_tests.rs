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
type Alternative = (&'static str, Vec<String>, Vec<String>);

/// The flag alone against nothing.
fn pair(flag: &'static str, value: impl Into<String>) -> Alternative {
    (flag, Vec::new(), vec![format!("--{flag}={}", value.into())])
}

/// The flag added to `base`.
fn with(flag: &'static str, base: Vec<String>, value: impl Into<String>) -> Alternative {
    let mut own = base.clone();
    own.push(format!("--{flag}={}", value.into()));
    (flag, base, own)
}

/// The same arguments with `flag`'s value replaced: for flags whose absence is an error.
fn replaced(flag: &'static str, base: Vec<String>, value: impl Into<String>) -> Alternative {
    let prefix = format!("--{flag}=");
    let mut own: Vec<String> = base
        .iter()
        .filter(|a| !a.starts_with(&prefix))
        .cloned()
        .collect();
    own.push(format!("{prefix}{}", value.into()));
    (flag, base, own)
}

fn alternatives(dir: &str) -> Vec<Alternative> {
    let mut all = connection_alternatives(dir);
    all.extend(command_alternatives(dir));
    all.extend(events_alternatives(dir));
    all
}

/// How to reach etcd (every subcommand).
fn connection_alternatives(dir: &str) -> Vec<Alternative> {
    let file = |name: &str| format!("{dir}/{name}");
    // --cert and --key come together: the baseline has both, the flag's own line another value
    // of that one.
    let identity = |cert: &str, key: &str| {
        vec![
            format!("--cacert={}", file("ca.crt")),
            format!("--cert={}", file(cert)),
            format!("--key={}", file(key)),
        ]
    };
    vec![
        pair("endpoints", "http://127.0.0.2:2379"),
        pair("cacert", file("ca.crt")),
        ("cert", identity("c", "k"), identity("c2", "k")),
        ("key", identity("c", "k"), identity("c", "k2")),
        pair("preset", "embedded"),
        with("pki-dir", vec!["--preset=embedded".into()], dir),
        pair("dial-timeout", "2s"),
        pair("command-timeout", "60s"),
        pair("discover", "false"),
        pair("quota-backend-bytes", "8Gi"),
        pair("etcd-metrics-url", "http://127.0.0.1:2381/metrics"),
    ]
}

/// The one-shot commands' and the daemon's own flags.
fn command_alternatives(dir: &str) -> Vec<Alternative> {
    let web = format!("{dir}/web.yml");
    vec![
        pair("output", "json"),
        pair("watch", "10s"),
        pair("prefix", "/registry/"),
        pair("top", "3"),
        pair("page-size", "100"),
        pair("heal-timeout", "2m"),
        pair("listen-address", "127.0.0.1:9999"),
        pair("poll-interval", "2s"),
        ("dry-run", Vec::new(), vec!["--dry-run".into()]),
        pair("auto-heal", "false"),
        pair("move-leader", "false"),
        pair("disarm-threshold", "0.5"),
        pair("data-dir", dir),
        pair("compaction-mode", "revision"),
        with(
            "compaction-retention",
            vec!["--compaction-mode=revision".into()],
            "500",
        ),
        pair("defrag-rule", "true"),
        pair("defrag-schedule", "0 3 * * *"),
        pair("min-defrag-interval", "2h"),
        pair("act-when", "always"),
        pair("space-target", "0.5"),
        pair("history-floor", "5m"),
        pair("watch-progress-notify-interval", "20s"),
        pair("forecast-horizon", "0s"),
        pair("churn-watch", "false"),
        pair("churn-prefix", "/registry/configmaps/"),
        pair("churn-threshold", "30"),
        pair("web-config-file", web.clone()),
        with(
            "web-healthz-open",
            vec![format!("--web-config-file={web}")],
            "false",
        ),
    ]
}

/// Kubernetes Events (`run --kubernetes-events` and what it needs).
fn events_alternatives(dir: &str) -> Vec<Alternative> {
    let on = || events_on(dir, "true");
    vec![
        ("kubernetes-events", events_on(dir, "false"), on()),
        replaced("kubernetes-api", on(), "10.96.0.1:443"),
        with("kubernetes-token-file", on(), format!("{dir}/token2")),
        replaced("kubernetes-ca-file", on(), format!("{dir}/ca2.crt")),
        replaced("pod-name", on(), "p2"),
        replaced("pod-namespace", on(), "ns2"),
        with("pod-uid", on(), "u-1"),
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

/// Why a command line built no settings: clap refused it, or the settings did.
#[derive(Debug, thiserror::Error)]
enum Refusal {
    #[error(transparent)]
    Clap(#[from] clap::Error),
    #[error(transparent)]
    Settings(#[from] super::ConfigError),
}

/// The settings a command line builds, as text (every settings type derives Debug).
fn settings(args: &[String]) -> Result<String, Refusal> {
    let cli = Cli::try_parse_from(args)?;
    let g = &cli.global;
    let built = match &cli.command {
        Command::Run(a) => RunSettings::from_cli(g, a).map(|s| format!("{s:?}")),
        Command::Status(a) => StatusSettings::from_cli(g, a).map(|s| format!("{s:?}")),
        Command::Analyze(a) => AnalyzeSettings::from_cli(g, a).map(|s| format!("{s:?}")),
        Command::Heal(a) => HealSettings::from_cli(g, a).map(|s| format!("{s:?}")),
    };
    Ok(built?)
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
