//! End-to-end tests of Tally live in `tests/`; `cargo xtask test` runs them against a live stack.
