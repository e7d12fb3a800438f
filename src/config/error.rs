//! The configuration error, and the one-line error type it is made with.
//!
//! Why its own file: the cron check (`cron.rs`) returns it, and the fuzz build, which compiles
//! only the parsers (Cargo.toml's `daemon` feature), takes the two files without the rest of
//! the configuration.

/// An error that is one line of text, typed so that `main` can map it to its exit code.
#[macro_export]
macro_rules! message_error {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name(pub String);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::error::Error for $name {}
    };
}

message_error!(
    /// A configuration error (exit 2): the message names the flag and the value.
    ConfigError
);
