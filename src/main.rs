//! etcd-upkeep: keeps etcd healthy by itself.
//!
//! Data flow: **observe** (read the cluster into an `Observation`) → **decide** (pure functions)
//! → **act** (the only code that mutates etcd) → **report** (metrics, status, logs). `main` only
//! parses the command line, sets up logging and maps outcomes to exit codes:
//! 0 success, 1 the operation failed (etcd unreachable, heal impossible, a loop of the daemon
//! ended), 2 bad input, 3 the daemon's HTTP address cannot be bound (in use, not permitted).

use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

use etcd_upkeep::cli::{Cli, Command, LogFormat};
use etcd_upkeep::config::{
    AnalyzeSettings, ConfigError, HealSettings, RunSettings, StatusSettings,
};
use etcd_upkeep::daemon::DaemonError;
use etcd_upkeep::oneshot::OneshotError;
use etcd_upkeep::{daemon, oneshot};

/// Whatever a command ended with; each kind knows its exit code.
#[derive(Debug, thiserror::Error)]
enum Failure {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Daemon(#[from] DaemonError),
    #[error(transparent)]
    Oneshot(#[from] OneshotError),
}

impl Failure {
    fn exit_code(&self) -> u8 {
        match self {
            Failure::Config(_) => 2,
            Failure::Daemon(e) => e.exit_code(),
            Failure::Oneshot(e) => e.exit_code(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(message) = init_logging(cli.global.log_format, &cli.global.log_level) {
        eprintln!("etcd-upkeep: {message}");
        return ExitCode::from(2);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("etcd-upkeep: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = runtime.block_on(dispatch(cli));
    match outcome {
        Ok(code) => code,
        Err(e) => {
            eprintln!("etcd-upkeep: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Flags become settings (`config`, the only place that reads them), then the command runs.
async fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    let g = &cli.global;
    match &cli.command {
        Command::Run(a) => {
            daemon::run(RunSettings::from_cli(g, a)?).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Status(a) => Ok(oneshot::status(StatusSettings::from_cli(g, a)?).await?),
        Command::Heal(a) => Ok(oneshot::heal(HealSettings::from_cli(g, a)?).await?),
        Command::Analyze(a) => Ok(oneshot::analyze(AnalyzeSettings::from_cli(g, a)?).await?),
    }
}

/// A `--log-level` tracing cannot read (exit 2, before anything else runs).
#[derive(Debug, thiserror::Error)]
#[error("--log-level {level}: {why}")]
struct LogLevelError {
    level: String,
    why: tracing_subscriber::filter::ParseError,
}

fn init_logging(format: LogFormat, level: &str) -> Result<(), LogLevelError> {
    let filter = EnvFilter::try_new(level).map_err(|why| LogLevelError {
        level: level.into(),
        why,
    })?;
    // Colour only on a terminal: in a pod, stderr is a pipe to the container runtime, and
    // escape codes would end up in `kubectl logs` and every log shipper.
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
    Ok(())
}
