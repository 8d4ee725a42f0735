//! Reads the rules file (`--rules FILE` for `sendtime serve`, `SENDTIME_RULES_FILE` for the
//! Lambda functions): TOML or JSON by extension, validated, errors naming the file and key.

use sendtime_domain::{RulesConfig, RulesError, RulesFormat};
use std::path::{Path, PathBuf};

/// The environment variable naming the rules file, for `serve` and the Lambda functions.
pub const RULES_FILE_VAR: &str = "SENDTIME_RULES_FILE";

/// A rules file that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RulesFileError {
    /// The file cannot be read. (The cause is in the message, not chained: a Lambda init
    /// log prints the message alone.)
    #[error("cannot read rules file {path}: {cause}")]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The extension is neither `.toml` nor `.json`.
    #[error("rules file {0} must end in .toml or .json")]
    UnknownFormat(PathBuf),
    /// A key is unknown or a value is bad.
    #[error("rules file {path}: {cause}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// Which key and why.
        cause: RulesError,
    },
}

/// Reads and validates the rules file at `path`.
pub fn load(path: &Path) -> Result<RulesConfig, RulesFileError> {
    let format = path
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(RulesFormat::from_file_name)
        .ok_or_else(|| RulesFileError::UnknownFormat(path.to_owned()))?;
    let text = std::fs::read_to_string(path).map_err(|cause| RulesFileError::Unreadable {
        path: path.to_owned(),
        cause,
    })?;
    RulesConfig::parse(&text, format).map_err(|cause| RulesFileError::Invalid {
        path: path.to_owned(),
        cause,
    })
}

/// The rules at `path`, or the defaults of BRIEF §2 when there is none.
pub fn load_or_default(path: Option<&Path>) -> Result<RulesConfig, RulesFileError> {
    path.map_or_else(|| Ok(RulesConfig::default()), load)
}
