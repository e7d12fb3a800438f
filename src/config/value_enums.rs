//! The domain's choices as the command line spells them: `--act-when`, `--preset`, `--output`.
//!
//! Why here: one definition per choice, in the domain (`decide::actor::ActWhen`,
//! `certs::Preset`, `config::Output`), with the CLI reading them through `clap::ValueEnum`.
//! Implemented in `config`, the one place that knows both sides, so the domain never sees clap
//! and no mapping code sits between two copies of the same enum.

use clap::ValueEnum;
use clap::builder::PossibleValue;

use crate::certs::Preset;
use crate::decide::actor::ActWhen;

use super::Output;

impl ValueEnum for ActWhen {
    fn value_variants<'a>() -> &'a [Self] {
        &[ActWhen::Leader, ActWhen::Elected, ActWhen::Always]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            ActWhen::Leader => PossibleValue::new("leader").help(
                "The instance beside the raft leader acts; the first registered when the leader has none",
            ),
            ActWhen::Elected => PossibleValue::new("elected")
                .help("The first registered of identical instances acts (an election through etcd)"),
            ActWhen::Always => PossibleValue::new("always")
                .help("Always act (a single instance for the whole cluster)"),
        })
    }
}

impl ValueEnum for Preset {
    fn value_variants<'a>() -> &'a [Self] {
        &[Preset::Embedded, Preset::Deployed]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Preset::Embedded => PossibleValue::new("embedded")
                .help("etcd embedded in the vCluster pod: certificates under /data/pki"),
            Preset::Deployed => PossibleValue::new("deployed")
                .help("etcd deployed as its own StatefulSet: certificates under /run/config/pki"),
        })
    }
}

impl ValueEnum for Output {
    fn value_variants<'a>() -> &'a [Self] {
        &[Output::Table, Output::Json]
    }

    fn to_possible_value(&self) -> Option<PossibleValue> {
        Some(match self {
            Output::Table => PossibleValue::new("table"),
            Output::Json => PossibleValue::new("json"),
        })
    }
}
