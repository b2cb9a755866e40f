//! Command-line subcommands: serve, convert, loadtest.

pub mod convert;
pub mod loadtest;
pub mod serve;
