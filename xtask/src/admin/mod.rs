//! The tasks that call the query worker's admin API: `cargo xtask project` (projects,
//! write keys and read tokens, share links), `alert` (alert rules and their history),
//! `digest` (a project's daily or weekly digest) and `campaign` (campaign states, paused
//! and resumed by hand).
//!
//! [`client`] is the typed client of the API (also used by `dev` and `bench`); [`cli`]
//! is what the commands share: the argument scanner, the connection (`--url`, the
//! admin token), the runner that parses, connects, executes and prints, and the table
//! printer. Each command module is its usage, its parser and its printing.

pub mod alert;
pub mod campaign;
pub mod cli;
pub mod client;
pub mod digest;
pub mod project;
