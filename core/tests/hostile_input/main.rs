//! Hostile input, property by property: whatever a config file, a `--set`, a master's
//! requests, a WAL file name or a backup_label holds, walmgr answers with a value or an
//! error, never a panic, never an endless loop, and never a path outside the directories
//! its config names.
//!
//! Each property runs a moderate number of cases so that `cargo test` stays quick; for a
//! longer hunt, `PROPTEST_CASES=20000 cargo test -p walmgr-core --test hostile_input`.
//! The wire protocol also has a fuzz target (fuzz/, see fuzz/README.md) that shares
//! [`scratch_standby`] with these tests; its seed corpus replays here.

mod backup_label;
mod config;
mod conninfo;
mod libpq;
mod scratch_standby;
mod wal_names;
mod wire;

use proptest::test_runner::Config as ProptestConfig;

/// `cases` per property, unless PROPTEST_CASES asks for more (or fewer).
pub fn cases(cases: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(cases);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}
