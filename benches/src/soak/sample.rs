//! What the soak measures at every interval: the process (resident memory, open file
//! descriptors, CPU time, from `/proc/self`), the files (database and write-ahead log sizes) and
//! the engine (live data and audit bytes), with the operation counters.

use std::path::Path;
use std::time::Duration;

use tenantry_engine::{Engine, TenantState};

use super::tally::{Op, Tally};

/// One sample of a run.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Time since the load started.
    pub elapsed: Duration,
    /// Resident set size (`VmRSS`), in bytes.
    pub rss_bytes: u64,
    /// Open file descriptors (entries of `/proc/self/fd`).
    pub fds: u64,
    /// Size of the database file.
    pub db_bytes: u64,
    /// Size of its write-ahead log (`<file>-wal`).
    pub wal_bytes: u64,
    /// Keys plus values stored by live tenants (`Usage::bytes`).
    pub data_bytes: u64,
    /// Audit entries of every tenant, deleted ones included (their logs are kept).
    pub audit_bytes: u64,
    /// Live tenants.
    pub tenants: usize,
    /// CPU used by the process since the previous sample, in cores.
    pub cpu_cores: f64,
    /// Operations so far, by kind (cumulative, in the order of [`super::OP_NAMES`]).
    pub ops: Vec<u64>,
    /// Typed refusals so far.
    pub refusals: u64,
    /// Unexpected outcomes so far.
    pub unexpected: u64,
}

impl Sample {
    /// Data plus audit bytes: what the file must hold.
    pub fn live_bytes(&self) -> u64 {
        self.data_bytes + self.audit_bytes
    }
}

/// Takes samples: remembers the previous CPU time to report the CPU used in between.
pub(crate) struct Sampler<'a> {
    pub(crate) engine: &'a Engine,
    pub(crate) db_path: &'a Path,
    pub(crate) tally: &'a Tally,
    pub(crate) last_cpu: Option<(Duration, Duration)>,
}

impl Sampler<'_> {
    /// Takes a sample at `elapsed`.
    ///
    /// # Errors
    /// If `/proc/self` or the database files cannot be read, or the engine cannot list tenants.
    pub(crate) fn take(&mut self, elapsed: Duration) -> Result<Sample, String> {
        let tenants = self
            .engine
            .all_tenants()
            .map_err(|e| format!("list tenants: {e}"))?;
        let live = tenants.iter().filter(|t| t.state != TenantState::Deleted);
        let data_bytes = live.clone().map(|t| t.usage.bytes).sum();
        let audit_bytes = tenants.iter().map(|t| t.usage.audit_bytes).sum();
        let cpu = cpu_time()?;
        let cpu_cores = match self.last_cpu.replace((elapsed, cpu)) {
            Some((at, used)) if elapsed > at => {
                (cpu.saturating_sub(used)).as_secs_f64() / (elapsed - at).as_secs_f64()
            }
            _ => 0.0,
        };
        let wal = super::wal_path(self.db_path);
        Ok(Sample {
            elapsed,
            rss_bytes: rss_bytes()?,
            fds: open_fds()?,
            db_bytes: file_len(self.db_path)?,
            wal_bytes: file_len(&wal)?,
            data_bytes,
            audit_bytes,
            tenants: live.count(),
            cpu_cores,
            ops: self.tally.ops().to_vec(),
            refusals: self.tally.refusals_total(),
            unexpected: self.tally.unexpected_total(),
        })
    }
}

fn file_len(path: &Path) -> Result<u64, String> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| format!("stat {}: {e}", path.display()))
}

/// `VmRSS` of this process, in bytes.
pub(crate) fn rss_bytes() -> Result<u64, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("read /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map(|kib| kib * 1024)
        .ok_or_else(|| "no VmRSS line in /proc/self/status".to_owned())
}

/// Open file descriptors of this process.
pub(crate) fn open_fds() -> Result<u64, String> {
    let entries =
        std::fs::read_dir("/proc/self/fd").map_err(|e| format!("list /proc/self/fd: {e}"))?;
    // The directory handle being read is one of them.
    Ok(entries.count().saturating_sub(1) as u64)
}

/// User plus system CPU time of this process (`/proc/self/stat`, at 100 ticks per second, the
/// value of `CLK_TCK` on every Linux architecture Rust supports).
pub(crate) fn cpu_time() -> Result<Duration, String> {
    let stat = std::fs::read_to_string("/proc/self/stat")
        .map_err(|e| format!("read /proc/self/stat: {e}"))?;
    // The command name (field 2) may hold spaces; fields 14 and 15 count from after it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or("malformed /proc/self/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("no field {} in /proc/self/stat", i + 3))
    };
    // Field 3 (state) is index 0 here, so utime (14) is 11 and stime (15) is 12.
    Ok(Duration::from_millis((ticks(11)? + ticks(12)?) * 10))
}

/// The CSV header matching [`csv_row`].
pub(crate) fn csv_header() -> String {
    let mut h = String::from(
        "elapsed_s,rss_bytes,fds,db_bytes,wal_bytes,data_bytes,audit_bytes,live_bytes,tenants,cpu_cores",
    );
    for op in Op::ALL {
        h.push_str(",ops_");
        h.push_str(op.name());
    }
    h.push_str(",refusals,unexpected");
    h
}

/// One CSV row of a sample (cumulative operation counts).
pub(crate) fn csv_row(s: &Sample) -> String {
    let mut row = format!(
        "{:.1},{},{},{},{},{},{},{},{},{:.3}",
        s.elapsed.as_secs_f64(),
        s.rss_bytes,
        s.fds,
        s.db_bytes,
        s.wal_bytes,
        s.data_bytes,
        s.audit_bytes,
        s.live_bytes(),
        s.tenants,
        s.cpu_cores
    );
    for n in &s.ops {
        row.push_str(&format!(",{n}"));
    }
    row.push_str(&format!(",{},{}", s.refusals, s.unexpected));
    row
}

/// Bytes as MiB, for the printed lines.
pub(crate) fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// The printed line of a sample: the gauges, then operations per second since `previous`.
pub(crate) fn line(s: &Sample, previous: Option<&Sample>) -> String {
    let mut out = format!(
        "t={:>6.0}s rss={:.1}MiB fds={} db={:.1}MiB wal={:.1}MiB live={:.1}MiB (data {:.1} + audit {:.1}) tenants={} cpu={:.2}",
        s.elapsed.as_secs_f64(),
        mib(s.rss_bytes),
        s.fds,
        mib(s.db_bytes),
        mib(s.wal_bytes),
        mib(s.live_bytes()),
        mib(s.data_bytes),
        mib(s.audit_bytes),
        s.tenants,
        s.cpu_cores,
    );
    if let Some(p) = previous {
        let secs = (s.elapsed.saturating_sub(p.elapsed))
            .as_secs_f64()
            .max(1e-9);
        out.push_str(" |");
        for (i, op) in Op::ALL.iter().enumerate() {
            let done = s.ops[i].saturating_sub(p.ops[i]);
            if done > 0 {
                out.push_str(&format!(" {}={:.1}/s", op.name(), done as f64 / secs));
            }
        }
        out.push_str(&format!(
            " | refusals={} unexpected={}",
            s.refusals, s.unexpected
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_readings_are_plausible() {
        assert!(rss_bytes().unwrap() > 1 << 20);
        assert!(open_fds().unwrap() >= 3);
        cpu_time().unwrap();
        assert_eq!(
            csv_header().split(',').count(),
            12 + Op::ALL.len(),
            "one column per field"
        );
    }
}
