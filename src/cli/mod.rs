//! Command-line subcommands: serve, convert, loadtest.

pub mod convert;
pub mod serve;
