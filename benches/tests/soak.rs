//! A few seconds of the soak (`src/soak.rs`): the whole mixed load runs, and nothing fails but
//! with a typed refusal. The memory, descriptor and file verdicts need a long run (the `soak`
//! binary); a debug build only checks that they are computed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

use std::time::Duration;

use tenantry_benches::soak::{self, SoakConfig};

#[test]
fn a_short_soak_has_no_unexpected_outcome() {
    let config = SoakConfig {
        duration: Duration::from_secs(4),
        sample_every: Duration::from_secs(1),
        // One hostile, one quota-limited and one plain tenant: a debug build compiles every
        // plugin slowly, at set-up and at every re-creation.
        tenants: 3,
        workers: 3,
        chaos_every: Duration::from_millis(200),
        checkpoint_every: Duration::from_millis(300),
        remove_plugins_first: true,
        ..SoakConfig::default()
    };
    let report = soak::run(&config).unwrap();
    let summary = soak::summary(&report);
    assert_eq!(report.unexpected, 0, "{summary}");
    let ran = |name: &str| report.ops.iter().find(|(n, _)| *n == name).map(|(_, n)| *n);
    for name in ["commit", "get", "scan", "invoke", "hostile", "checkpoint"] {
        assert!(ran(name) > Some(0), "no {name}: {summary}");
    }
    assert!(
        report.refusals.keys().any(|k| k.starts_with("hostile.")),
        "hostile calls are refused by name: {summary}"
    );
    assert!(report.samples.len() >= 4, "{summary}");
    assert!(
        report.verdicts.iter().any(|v| v.name == "memory flat"),
        "{summary}"
    );
}
