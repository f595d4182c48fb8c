//! A stable, coverage-blind fuzz driver for machines without nightly: mutates the corpus of a
//! target at random and runs the target on each mutant, for a number of executions or seconds.
//!
//! `fuzz-driver <target> [--runs N] [--seconds S] [--seed N] [--corpus DIR] [--crashes DIR]`
//! `fuzz-driver <target> --replay FILE...`: runs the target on each file once (to reproduce).
//!
//! Corpus defaults to `tests/fuzz/corpus/<target>`, crashes to `tests/fuzz/crashes/<target>`.
//! On a panic it writes the input to the crash directory and exits with status 1.
// A failed check panics, as in any test.
#![allow(clippy::panic)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tenantry_fuzz::TARGETS;

/// xorshift64*: fast, seedable, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: [&[u8]; 8] = [
    &[0],
    &[0xFF],
    &[0x7F],
    &[1, 0, 0, 0],
    &[0xFF, 0xFF, 0xFF, 0xFF],
    &[0, 0, 0, 0x80],
    &[0x57, 0x4C, 0x52, 0x31],
    b"TNTRYWAL",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, other: &[u8]) {
    for _ in 0..=rng.below(4) {
        let len = input.len();
        match rng.below(7) {
            0 if len > 0 => {
                let at = rng.below(len);
                input[at] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let at = rng.below(len);
                input[at] = rng.next() as u8;
            }
            2 => {
                let at = rng.below(len + 1);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                input.splice(at..at, bytes);
            }
            3 if len > 0 => {
                let at = rng.below(len);
                let n = 1 + rng.below((len - at).min(32));
                input.drain(at..at + n);
            }
            4 if !other.is_empty() => {
                let from = rng.below(other.len());
                let n = 1 + rng.below((other.len() - from).min(64));
                let at = rng.below(len + 1);
                input.splice(at..at, other[from..from + n].iter().copied());
            }
            5 => {
                let bytes = INTERESTING[rng.below(INTERESTING.len())];
                let at = rng.below(len + 1);
                let end = (at + bytes.len()).min(len);
                input.splice(at..end, bytes.iter().copied());
            }
            _ => input.truncate(rng.below(len + 1)),
        }
    }
    input.truncate(1 << 16);
}

fn arg(args: &[String], name: &str) -> Option<String> {
    let at = args.iter().position(|a| a == name)?;
    args.get(at + 1).cloned()
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let names: Vec<&str> = TARGETS.iter().map(|(n, _)| *n).collect();
    let Some(&(name, target)) = args
        .get(1)
        .and_then(|a| TARGETS.iter().find(|(n, _)| n == a))
    else {
        eprintln!(
            "usage: fuzz-driver <{}> [--runs N] [--seconds S] [--seed N] [--corpus DIR] [--crashes DIR]",
            names.join("|")
        );
        return ExitCode::from(2);
    };
    if args.get(2).is_some_and(|a| a == "--replay") {
        for file in &args[3..] {
            let input = std::fs::read(file).unwrap_or_else(|e| panic!("{file}: {e}"));
            target(&input);
            println!("{name}: {file} passes");
        }
        return ExitCode::SUCCESS;
    }
    let number = |flag: &str, default: u64| {
        arg(&args, flag)
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let runs = number("--runs", u64::MAX);
    let seconds = number("--seconds", if runs == u64::MAX { 60 } else { u64::MAX });
    let mut rng = Rng(number("--seed", 0x5EED).max(1));
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let corpus_dir =
        arg(&args, "--corpus").map_or_else(|| root.join("corpus").join(name), PathBuf::from);
    let crash_dir =
        arg(&args, "--crashes").map_or_else(|| root.join("crashes").join(name), PathBuf::from);
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(&corpus_dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| std::fs::read(entry.path()).ok())
        .collect();
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    // Panics are the findings: keep their messages short and the run going until one.
    std::panic::set_hook(Box::new(|info| eprintln!("panic: {info}")));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let mut executions = 0u64;
    while executions < runs && (!executions.is_multiple_of(64) || Instant::now() < deadline) {
        let mut input = corpus[rng.below(corpus.len())].clone();
        let other = &corpus[rng.below(corpus.len())];
        mutate(&mut rng, &mut input, other);
        executions += 1;
        if std::panic::catch_unwind(|| target(&input)).is_err() {
            let path = crash_dir.join(format!("crash-{executions}-{:016x}", rng.next()));
            let saved =
                std::fs::create_dir_all(&crash_dir).and_then(|()| std::fs::write(&path, &input));
            eprintln!(
                "{name}: crash after {executions} executions, input {} ({saved:?})",
                path.display()
            );
            return ExitCode::FAILURE;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!(
        "{name}: {executions} executions in {elapsed:.1} s ({:.0}/s), corpus of {}, no crash",
        executions as f64 / elapsed.max(1e-9),
        corpus.len()
    );
    ExitCode::SUCCESS
}
