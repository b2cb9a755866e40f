//! Command-line subcommands: serve, convert, loadtest, verify.

pub mod convert;
pub mod loadtest;
pub mod serve;
pub mod verify;
