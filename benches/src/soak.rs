//! A soak: a mixed load on a real database file for a configurable time, sampled at every
//! interval, then judged.
//!
//! The load (see the `load` module) runs commits of puts and deletes with audit entries, point
//! reads, scans, invocations of the `counter` and `projects` plugins, hostile plugin calls and
//! refused installs (the `hostile` module), tenant suspensions, read-only spells, deletions with
//! re-creation, checkpoints and audit verification, on 16–64 tenants of which every 8th is
//! hostile and the one after it quota-limited. Every error is classified (see the `tally`
//! module): a typed refusal the load asked for, or unexpected.
//!
//! The verdicts: resident memory flat (at most [`MAX_RSS_GROWTH`] over the second half of the
//! run), open file descriptors flat after warm-up (the sample at 10% of the run), the database
//! file bounded by `file_factor` times its live bytes (data of live tenants plus every audit
//! entry) plus a fixed slack at every sample after warm-up, no unexpected outcome, and every
//! kind of operation run at least once.

mod hostile;
mod load;
mod sample;
mod tally;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tenantry_engine::{Engine, EngineOptions};
use tenantry_host::{HostConfig, PluginHost};

pub use sample::Sample;

use load::{Load, LoadOptions};
use sample::{Sampler, mib};
use tally::{Op, Tally};

/// Column names of [`Sample::ops`] and [`SoakReport::ops`].
pub const OP_NAMES: [&str; Op::ALL.len()] = {
    let mut names = [""; Op::ALL.len()];
    let mut i = 0;
    while i < Op::ALL.len() {
        names[i] = Op::ALL[i].name();
        i += 1;
    }
    names
};

/// Bytes the database file may hold beyond `file_factor × live bytes`: redb's fixed overhead
/// (header, region tables, the allocator state) on a small database.
pub const FILE_SLACK_BYTES: u64 = 16 << 20;

/// Most the resident set may grow over the second half of a run for the memory verdict.
pub const MAX_RSS_GROWTH: f64 = 1.10;

/// Settings of a soak run; start from `SoakConfig::default()` or [`SoakConfig::from_args`].
#[derive(Debug, Clone)]
pub struct SoakConfig {
    /// How long the load runs (`--duration`, default 2 minutes).
    pub duration: Duration,
    /// Interval between samples (`--sample-every`, default 10 s).
    pub sample_every: Duration,
    /// Directory of the database (`--dir`; default a temporary directory, removed at the end).
    pub dir: Option<PathBuf>,
    /// File the samples are written to as CSV (`--csv`).
    pub csv: Option<PathBuf>,
    /// Tenant slots (`--tenants`, default 32).
    pub tenants: usize,
    /// Worker threads (`--workers`, default 8; most of their time is spent waiting for commits
    /// to be synced).
    pub workers: usize,
    /// CPU budget in cores the workers are paced to (`--cpu`, default 1.0).
    pub cpu_cores: f64,
    /// Mean interval between operator actions: suspend, read-only, delete and re-create
    /// (`--chaos-every`, default 1 s).
    pub chaos_every: Duration,
    /// Interval between explicit checkpoints (`--checkpoint-every`, default 5 s).
    pub checkpoint_every: Duration,
    /// redb's page cache (`--cache-mib`, default 64 MiB), small so that a flat resident set
    /// is not hidden by a cache filling up to redb's 1 GiB default.
    pub cache_mib: usize,
    /// The `k` of the file verdict: file ≤ k × live bytes + [`FILE_SLACK_BYTES`]
    /// (`--file-factor`, default 3).
    pub file_factor: f64,
    /// Seed of the workers' random choices (`--seed`).
    pub seed: u64,
    /// Remove a tenant's plugins before deleting it (`--remove-plugins-first`): works around
    /// the host keeping the compiled modules of deleted tenants (one `memfd` each), to measure
    /// everything else. Off by default, so that the soak shows the leak.
    pub remove_plugins_first: bool,
    /// Print a line per sample on stdout.
    pub print: bool,
}

impl Default for SoakConfig {
    fn default() -> Self {
        SoakConfig {
            duration: Duration::from_secs(120),
            sample_every: Duration::from_secs(10),
            dir: None,
            csv: None,
            tenants: 32,
            workers: 8,
            cpu_cores: 1.0,
            chaos_every: Duration::from_secs(1),
            checkpoint_every: Duration::from_secs(5),
            cache_mib: 64,
            file_factor: 3.0,
            seed: 1,
            remove_plugins_first: false,
            print: true,
        }
    }
}

/// A duration such as `30m`, `120s`, `2h`, `500ms` or `90` (seconds).
///
/// # Errors
/// If `text` is not one.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration (try 30m, 120s, 500ms)"))?;
    let seconds = match unit {
        "" | "s" => number,
        "ms" => number / 1000.0,
        "m" | "min" => number * 60.0,
        "h" => number * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {text:?} (ms, s, m, h)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{text:?}: {e}"))
}

impl SoakConfig {
    /// Parses `--name value` options (the program name excluded).
    ///
    /// # Errors
    /// An unknown option, a missing value or a malformed one.
    pub fn from_args(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut config = SoakConfig::default();
        let mut args = args.into_iter();
        while let Some(name) = args.next() {
            let mut value = || args.next().ok_or_else(|| format!("{name} needs a value"));
            let number = |v: String| -> Result<f64, String> {
                v.parse()
                    .map_err(|_| format!("{name}: {v:?} is not a number"))
            };
            match name.as_str() {
                "--duration" => config.duration = parse_duration(&value()?)?,
                "--sample-every" => config.sample_every = parse_duration(&value()?)?,
                "--chaos-every" => config.chaos_every = parse_duration(&value()?)?,
                "--checkpoint-every" => config.checkpoint_every = parse_duration(&value()?)?,
                "--dir" => config.dir = Some(PathBuf::from(value()?)),
                "--csv" => config.csv = Some(PathBuf::from(value()?)),
                "--tenants" => config.tenants = number(value()?)? as usize,
                "--workers" => config.workers = number(value()?)? as usize,
                "--cpu" => config.cpu_cores = number(value()?)?,
                "--cache-mib" => config.cache_mib = number(value()?)? as usize,
                "--file-factor" => config.file_factor = number(value()?)?,
                "--seed" => config.seed = number(value()?)? as u64,
                "--remove-plugins-first" => config.remove_plugins_first = true,
                "--quiet" => config.print = false,
                "-h" | "--help" => return Err(USAGE.to_owned()),
                other => return Err(format!("unknown option {other:?}\n{USAGE}")),
            }
        }
        if config.sample_every.is_zero() || config.duration.is_zero() {
            return Err("--duration and --sample-every must be positive".to_owned());
        }
        Ok(config)
    }
}

/// The options of the `soak` binary.
pub const USAGE: &str =
    "usage: soak [--duration 30m] [--sample-every 10s] [--dir PATH] [--csv FILE]
            [--tenants 32] [--workers 8] [--cpu 1.0] [--chaos-every 1s]
            [--checkpoint-every 5s] [--cache-mib 64] [--file-factor 3] [--seed 1]
            [--remove-plugins-first] [--quiet]";

/// One judgement of a run.
#[derive(Debug, Clone)]
pub struct Verdict {
    /// What was judged.
    pub name: &'static str,
    /// Whether it held.
    pub passed: bool,
    /// The figures behind it.
    pub detail: String,
}

/// The outcome of a run.
#[derive(Debug, Clone)]
pub struct SoakReport {
    /// Every sample, the first taken when the load starts and the last when it ends.
    pub samples: Vec<Sample>,
    /// The index in `samples` of the warm-up sample (the first at 10% of the run or later).
    pub warm_up: usize,
    /// Operations done, by kind (see [`OP_NAMES`]).
    pub ops: Vec<(&'static str, u64)>,
    /// Typed refusals (and hostile calls contained without an error), by kind.
    pub refusals: BTreeMap<String, u64>,
    /// Unexpected outcomes.
    pub unexpected: u64,
    /// The first unexpected outcomes' messages.
    pub unexpected_messages: Vec<String>,
    /// The verdicts.
    pub verdicts: Vec<Verdict>,
}

impl SoakReport {
    /// Whether every verdict held.
    pub fn passed(&self) -> bool {
        self.verdicts.iter().all(|v| v.passed)
    }
}

/// The write-ahead log beside the database file `db`.
pub(crate) fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

/// Runs a soak with `config` and judges it.
///
/// # Errors
/// A failure to set up (directory, database, plugins), to sample or to write the CSV: anything
/// that stops the run before it can be judged. Unexpected outcomes of the load are not errors
/// here: they are in the report and fail its verdicts.
pub fn run(config: &SoakConfig) -> Result<SoakReport, String> {
    let temp;
    let dir = match &config.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile::Builder::new()
                .prefix("tenantry-soak-")
                .tempdir()
                .map_err(|e| format!("create a temporary directory: {e}"))?;
            temp.path().to_owned()
        }
    };
    let db_path = dir.join("soak.redb");
    if db_path.exists() {
        return Err(format!(
            "{} exists: remove it or choose another --dir",
            db_path.display()
        ));
    }
    let mut options = EngineOptions::default();
    options.cache_size = Some(config.cache_mib << 20);
    let engine = Engine::open_with(&db_path, options).map_err(|e| format!("open: {e}"))?;
    let host = PluginHost::new(engine.clone(), HostConfig::default())
        .map_err(|e| format!("plugin host: {e}"))?;
    let tally = Tally::default();
    let setup = Instant::now();
    let load = Load::new(
        &engine,
        &host,
        &tally,
        LoadOptions {
            tenants: config.tenants,
            workers: config.workers,
            cpu_cores: config.cpu_cores,
            chaos_every: config.chaos_every,
            checkpoint_every: config.checkpoint_every,
            seed: config.seed,
            remove_plugins_first: config.remove_plugins_first,
        },
    )?;
    if config.print {
        println!(
            "soak: {} tenants, {} workers, {:.2} cores, {:?}, database {} (set up in {:.1?})",
            config.tenants,
            load.workers(),
            config.cpu_cores,
            config.duration,
            db_path.display(),
            setup.elapsed()
        );
    }
    let mut csv = match &config.csv {
        Some(path) => {
            let mut file = std::fs::File::create(path)
                .map_err(|e| format!("create {}: {e}", path.display()))?;
            writeln!(file, "{}", sample::csv_header()).map_err(|e| format!("write csv: {e}"))?;
            Some(file)
        }
        None => None,
    };
    let mut sampler = Sampler {
        engine: &engine,
        db_path: &db_path,
        tally: &tally,
        last_cpu: None,
    };
    let samples = std::thread::scope(|s| {
        for w in 0..load.workers() {
            let load = &load;
            s.spawn(move || load.worker(w));
        }
        s.spawn(|| load.operator());
        s.spawn(|| load.governor());
        let result = sample_until(config, &load, &mut sampler, csv.as_mut());
        load.stop();
        result
    })?;
    let report = judge(config, samples, &tally);
    drop(host);
    drop(engine);
    Ok(report)
}

/// Takes a sample now and at every interval until the run's duration has passed.
fn sample_until(
    config: &SoakConfig,
    load: &Load<'_>,
    sampler: &mut Sampler<'_>,
    mut csv: Option<&mut std::fs::File>,
) -> Result<Vec<Sample>, String> {
    let started = Instant::now();
    let mut samples: Vec<Sample> = Vec::new();
    let mut next = Duration::ZERO;
    loop {
        let elapsed = started.elapsed();
        if elapsed < next {
            std::thread::sleep(next - elapsed);
            continue;
        }
        let sample = sampler.take(started.elapsed())?;
        if config.print {
            println!(
                "{} pause={:.2?}",
                sample::line(&sample, samples.last()),
                load.pause()
            );
        }
        if let Some(file) = csv.as_mut() {
            writeln!(file, "{}", sample::csv_row(&sample))
                .and_then(|()| file.flush())
                .map_err(|e| format!("write csv: {e}"))?;
        }
        samples.push(sample);
        if next >= config.duration {
            return Ok(samples);
        }
        next = (next + config.sample_every).min(config.duration);
    }
}

fn judge(config: &SoakConfig, samples: Vec<Sample>, tally: &Tally) -> SoakReport {
    let warm_up = samples
        .iter()
        .position(|s| s.elapsed >= config.duration / 10)
        .unwrap_or(0);
    let mut verdicts = Vec::new();
    if let (Some(warm), Some(end)) = (samples.get(warm_up), samples.last()) {
        // redb's page cache and the allocator fill while the file grows past them, which at
        // the default load takes several minutes: the verdict compares the second half of the
        // run, and the detail also gives the ratio to the warm-up sample.
        let half = samples
            .iter()
            .find(|s| s.elapsed >= config.duration / 2)
            .unwrap_or(warm);
        let ratio = |a: &Sample| end.rss_bytes as f64 / a.rss_bytes.max(1) as f64;
        let hours = (end.elapsed.saturating_sub(half.elapsed)).as_secs_f64() / 3600.0;
        let growth = end.rss_bytes as f64 - half.rss_bytes as f64;
        verdicts.push(Verdict {
            name: "memory flat",
            passed: ratio(half) <= MAX_RSS_GROWTH,
            detail: format!(
                "RSS {:.1} MiB after warm-up, {:.1} MiB at half-time, {:.1} MiB at the end (x{:.2} over the second half, {:+.1} MiB/h; x{:.2} since warm-up); limit x{MAX_RSS_GROWTH} over the second half",
                mib(warm.rss_bytes),
                mib(half.rss_bytes),
                mib(end.rss_bytes),
                ratio(half),
                growth / (1 << 20) as f64 / hours.max(1e-9),
                ratio(warm),
            ),
        });
        let max_fds = samples[warm_up..].iter().map(|s| s.fds).max().unwrap_or(0);
        verdicts.push(Verdict {
            name: "file descriptors flat",
            passed: max_fds <= warm.fds + 8,
            detail: format!(
                "{} after warm-up, {} at the end, at most {max_fds}; limit warm-up + 8",
                warm.fds, end.fds
            ),
        });
        let k = config.file_factor;
        let bound = |s: &Sample| k * s.live_bytes() as f64 + FILE_SLACK_BYTES as f64;
        let worst = samples[warm_up..].iter().max_by(|a, b| {
            (a.db_bytes as f64 / bound(a)).total_cmp(&(b.db_bytes as f64 / bound(b)))
        });
        if let Some(worst) = worst {
            verdicts.push(Verdict {
                name: "file bounded by live data",
                passed: samples[warm_up..]
                    .iter()
                    .all(|s| s.db_bytes as f64 <= bound(s)),
                detail: format!(
                    "worst at t={:.0}s: file {:.1} MiB for {:.1} MiB live (x{:.2}), bound {k} x live + {} MiB; at the end file {:.1} MiB, live {:.1} MiB (x{:.2}), log {:.1} MiB",
                    worst.elapsed.as_secs_f64(),
                    mib(worst.db_bytes),
                    mib(worst.live_bytes()),
                    worst.db_bytes as f64 / worst.live_bytes().max(1) as f64,
                    FILE_SLACK_BYTES >> 20,
                    mib(end.db_bytes),
                    mib(end.live_bytes()),
                    end.db_bytes as f64 / end.live_bytes().max(1) as f64,
                    mib(end.wal_bytes),
                ),
            });
        }
    }
    let unexpected = tally.unexpected_total();
    verdicts.push(Verdict {
        name: "no unexpected error",
        passed: unexpected == 0,
        detail: format!(
            "{unexpected} unexpected, {} typed refusals",
            tally.refusals_total()
        ),
    });
    let ops: Vec<(&'static str, u64)> = OP_NAMES.into_iter().zip(tally.ops()).collect();
    let missing: Vec<&str> = ops
        .iter()
        .filter(|(_, n)| *n == 0)
        .map(|(k, _)| *k)
        .collect();
    verdicts.push(Verdict {
        name: "every kind of operation ran",
        passed: missing.is_empty(),
        detail: if missing.is_empty() {
            "yes".to_owned()
        } else {
            format!("never ran: {}", missing.join(", "))
        },
    });
    SoakReport {
        samples,
        warm_up,
        ops,
        refusals: tally.refusals(),
        unexpected,
        unexpected_messages: tally.messages(),
        verdicts,
    }
}

/// The printed summary of a report: start (first sample), warm-up and end figures, totals by
/// kind, unexpected messages and verdicts.
pub fn summary(report: &SoakReport) -> String {
    let mut out = String::new();
    let (Some(first), Some(warm), Some(end)) = (
        report.samples.first(),
        report.samples.get(report.warm_up),
        report.samples.last(),
    ) else {
        return "no samples".to_owned();
    };
    let _ = writeln!(
        out,
        "\n{:<18} {:>14} {:>14} {:>14}",
        "",
        "start t=0",
        format!("warm t={:.0}s", warm.elapsed.as_secs_f64()),
        format!("end t={:.0}s", end.elapsed.as_secs_f64())
    );
    type Cell = fn(&Sample) -> String;
    let rows: [(&str, Cell); 7] = [
        ("RSS (MiB)", |s| format!("{:.1}", mib(s.rss_bytes))),
        ("open fds", |s| s.fds.to_string()),
        ("db file (MiB)", |s| format!("{:.1}", mib(s.db_bytes))),
        ("wal (MiB)", |s| format!("{:.2}", mib(s.wal_bytes))),
        ("live (MiB)", |s| format!("{:.1}", mib(s.live_bytes()))),
        ("  data (MiB)", |s| format!("{:.1}", mib(s.data_bytes))),
        ("  audit (MiB)", |s| format!("{:.1}", mib(s.audit_bytes))),
    ];
    for (name, cell) in rows {
        let _ = writeln!(
            out,
            "{name:<18} {:>14} {:>14} {:>14}",
            cell(first),
            cell(warm),
            cell(end)
        );
    }
    let secs = end.elapsed.as_secs_f64().max(1e-9);
    let _ = writeln!(out, "\noperations (total, per second):");
    for (name, n) in &report.ops {
        let _ = writeln!(out, "  {name:<16} {n:>10} {:>10.1}/s", *n as f64 / secs);
    }
    let _ = writeln!(out, "\ntyped refusals and contained hostile calls:");
    for (kind, n) in &report.refusals {
        let _ = writeln!(out, "  {kind:<44} {n:>10}");
    }
    let _ = writeln!(out, "\nunexpected: {}", report.unexpected);
    for message in &report.unexpected_messages {
        let _ = writeln!(out, "  {message}");
    }
    let _ = writeln!(out, "\nverdicts:");
    for v in &report.verdicts {
        let mark = if v.passed { "PASS" } else { "FAIL" };
        let _ = writeln!(out, "  {mark} {}: {}", v.name, v.detail);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_options_parse() {
        assert_eq!(parse_duration("30m").unwrap(), Duration::from_secs(1800));
        assert_eq!(parse_duration("120s").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("90").unwrap(), Duration::from_secs(90));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert!(parse_duration("5 parsecs").is_err());
        let args = ["--duration", "2m", "--csv", "x.csv", "--tenants", "16"];
        let config = SoakConfig::from_args(args.map(String::from)).unwrap();
        assert_eq!(config.duration, Duration::from_secs(120));
        assert_eq!(config.tenants, 16);
        assert!(SoakConfig::from_args(["--bogus".to_owned()]).is_err());
        assert_eq!(wal_path(Path::new("/d/a.redb")), Path::new("/d/a.redb-wal"));
    }
}
