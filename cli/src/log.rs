//! Messages to stderr (PostgreSQL puts an archive or restore command's stderr in its log)
//! and, when `logfile` is set, appended there with a timestamp and the job name.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Error,
    Warning,
    Info,
    Debug,
}

pub struct Log {
    threshold: Level,
    file: Option<PathBuf>,
    job: String,
}

impl Log {
    pub fn new(quiet: bool, verbose: u8) -> Log {
        let threshold = match (quiet, verbose) {
            (true, _) => Level::Warning,
            (false, 0) => Level::Info,
            _ => Level::Debug,
        };
        Log {
            threshold,
            file: None,
            job: "walmgr".into(),
        }
    }

    pub fn also_to_file(&mut self, file: Option<PathBuf>, job: Option<&str>) {
        self.file = file;
        if let Some(job) = job {
            self.job = job.to_string();
        }
    }

    pub fn enabled(&self, level: Level) -> bool {
        level <= self.threshold
    }

    pub fn write(&self, level: Level, message: &str) {
        if !self.enabled(level) {
            return;
        }
        let tag = match level {
            Level::Error => "ERROR ",
            Level::Warning => "WARNING ",
            Level::Info | Level::Debug => "",
        };
        eprintln!("{tag}{message}");
        if let Some(path) = &self.file {
            // The log file is a convenience: failing to write it must not fail the command.
            if let Ok(mut f) = OpenOptions::new().create(true).append(true).open(path) {
                let _ = writeln!(f, "{} {} {tag}{message}", utc_now(), self.job);
            }
        }
    }

    pub fn info(&self, message: &str) {
        self.write(Level::Info, message)
    }

    pub fn debug(&self, message: &str) {
        self.write(Level::Debug, message)
    }

    pub fn warning(&self, message: &str) {
        self.write(Level::Warning, message)
    }

    pub fn error(&self, message: &str) {
        self.write(Level::Error, message)
    }
}

/// `YYYY-MM-DD HH:MM:SS` in UTC, without pulling in a date crate.
fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}
