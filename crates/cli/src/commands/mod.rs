//! One module per subcommand.

pub mod campaign;
pub mod data;
pub mod serve;
