//! Progress of long work (backup, a restore that copies a set, createslave, boot's replay):
//! a bar on a terminal, log
//! lines anywhere else (cron mail, a pipe, `logfile`), never both: a bar's carriage returns
//! would garble a log, and a log line per step would scroll a terminal away.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use walmgr_core::backup::datadir::Progress;

/// Without a terminal: a line per tenth of the work, and at least one this often, so that a
/// long copy never looks hung in a log.
const LINE_AT_LEAST_EVERY: Duration = Duration::from_secs(30);

pub struct Display {
    /// What is being done, the start of every line ("backup", "restore").
    what: &'static str,
    /// What happens to the bytes ("copied", "replayed").
    verb: &'static str,
    started: Instant,
    shown: Shown,
}

enum Shown {
    Nothing,
    Bar(ProgressBar),
    Lines { tenths: u64, last: Instant },
}

impl Display {
    /// A bar when stderr is a terminal, else log lines; nothing with `-q` (the lines are
    /// info-level too) or `-n` (nothing is copied).
    pub fn new(what: &'static str, verb: &'static str, quiet: bool, dry_run: bool) -> Display {
        let shown = if quiet || dry_run {
            Shown::Nothing
        } else if std::io::stderr().is_terminal() {
            // Hidden until the first update: before it, the bar knows no total to show.
            let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::hidden());
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {percent:>3}% {bytes}/{total_bytes} {msg} \
                 {binary_bytes_per_sec}, {eta} left",
            ) {
                bar.set_style(style.progress_chars("#>-"));
            }
            bar.set_prefix(what);
            crate::logging::show_above(Some(bar.clone()));
            Shown::Bar(bar)
        } else {
            Shown::Lines {
                tenths: 0,
                last: Instant::now(),
            }
        };
        Display {
            what,
            verb,
            started: Instant::now(),
            shown,
        }
    }

    pub fn update(&mut self, p: &Progress) {
        match &mut self.shown {
            Shown::Nothing => {}
            Shown::Bar(bar) => {
                if bar.is_hidden() {
                    bar.set_draw_target(ProgressDrawTarget::stderr());
                }
                bar.set_length(p.bytes_total.max(p.bytes_done));
                bar.set_position(p.bytes_done);
                if p.files > 0 {
                    bar.set_message(format!("({} files)", p.files));
                }
            }
            Shown::Lines { tenths, last } => {
                let now_tenths = (p.bytes_done * 10)
                    .checked_div(p.bytes_total)
                    .unwrap_or(0)
                    .min(10);
                if now_tenths > *tenths || last.elapsed() >= LINE_AT_LEAST_EVERY {
                    *tenths = now_tenths.max(*tenths);
                    *last = Instant::now();
                    tracing::info!("{}", line(self.what, self.verb, p, self.started.elapsed()));
                }
            }
        }
    }

    /// Clears the bar; the command's own last words follow.
    pub fn finish(self) {
        if let Shown::Bar(bar) = self.shown {
            crate::logging::show_above(None);
            bar.finish_and_clear();
        }
    }
}

/// "backup: copied 40% (412 of 1030 MB, 1284 files, 96 MB/s)".
fn line(what: &str, verb: &str, p: &Progress, elapsed: Duration) -> String {
    let mb = |b: u64| b >> 20;
    let pct = (p.bytes_done * 100)
        .checked_div(p.bytes_total)
        .unwrap_or(100)
        .min(100);
    let rate = mb(p.bytes_done) as f64 / elapsed.as_secs_f64().max(0.001);
    // pg_basebackup (createslave) and replay (boot) count no files.
    let files = match p.files {
        0 => String::new(),
        n => format!("{n} files, "),
    };
    format!(
        "{what}: {verb} {pct}% ({} of {} MB, {files}{rate:.0} MB/s)",
        mb(p.bytes_done),
        mb(p.bytes_total.max(p.bytes_done)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_says_how_far_of_how_much() {
        let p = Progress {
            bytes_done: 412 << 20,
            bytes_total: 1030 << 20,
            files: 1284,
        };
        assert_eq!(
            line("backup", "copied", &p, Duration::from_secs(4)),
            "backup: copied 40% (412 of 1030 MB, 1284 files, 103 MB/s)"
        );
        // An empty tree is done, not divided by zero.
        assert!(
            line("restore", "copied", &Progress::default(), Duration::ZERO).contains("copied 100%")
        );
    }
}
