//! The run's report: `target/tmp/real-cluster-report.md`, one section per scenario, written as
//! the scenarios run (scripts/test.sh prints it after the suite). Figures that the assertions
//! do not pin (durations, metrics around each step) are read here.

use std::io::Write;
use std::sync::Mutex;

static FILE: Mutex<bool> = Mutex::new(false);

pub fn path() -> std::path::PathBuf {
    super::cluster::report_dir().join("real-cluster-report.md")
}

/// Appends LINES under a heading for SCENARIO (the file is started afresh by the first call of
/// this process).
pub fn section(scenario: &str, lines: &[String]) {
    let mut started = FILE.lock().unwrap_or_else(|p| p.into_inner());
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .append(*started)
        .truncate(!*started)
        .open(path())
        .expect("report file");
    *started = true;
    writeln!(f, "### {scenario}").ok();
    for l in lines {
        writeln!(f, "- {l}").ok();
    }
    writeln!(f).ok();
}
