//! Logging set-up: human-readable text by default, one JSON object per line with
//! `--log-format json`. The filter comes from `SENDTIME_LOG` (e.g. `info,sendtime=debug`).

use std::io::IsTerminal;
use tracing_subscriber::EnvFilter;

/// Log line format on stderr, chosen by `--log-format` / `SENDTIME_LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Installs the global tracing subscriber on stderr; a second call does nothing.
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_env("SENDTIME_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    // A second init (tests calling run twice) is harmless; ignore the error.
    let _ = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        LogFormat::Json => builder
            .event_format(sendtime_api::log_format::JsonLines { timestamp: true })
            .try_init(),
    };
}
