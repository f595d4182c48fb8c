//! The soak: a mixed load on a real database for a configurable time, sampled and judged (see
//! `tenantry_benches::soak` and the "Soak" section of `benches/README.md`).
//!
//! ```text
//! soak --duration 30m --sample-every 10s --csv soak.csv [--dir PATH]
//! ```
//!
//! Exits with 0 if every verdict holds, 1 if one fails, 2 if the run could not be made.

use std::process::ExitCode;

use tenantry_benches::soak::{self, SoakConfig};

fn main() -> ExitCode {
    let config = match SoakConfig::from_args(std::env::args().skip(1)) {
        Ok(config) => config,
        Err(message) => {
            eprintln!("{message}");
            return ExitCode::from(2);
        }
    };
    match soak::run(&config) {
        Ok(report) => {
            println!("{}", soak::summary(&report));
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(message) => {
            eprintln!("soak: {message}");
            ExitCode::from(2)
        }
    }
}
