//! Where core's and the CLI's `tracing` events go: stderr (PostgreSQL puts an archive or
//! restore command's stderr in its log), and, when the config sets `logfile`, that file
//! too, with a timestamp and the job name. Levels: `-q` warnings and errors only, default
//! info, `-v` debug.

use std::fmt::Write as _;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use indicatif::ProgressBar;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// The progress bar on the terminal now, if any (crate::progress sets and clears it).
static SHOWN_BAR: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Log lines from now on go above `bar` (None: straight to stderr again).
pub fn show_above(bar: Option<ProgressBar>) {
    if let Ok(mut slot) = SHOWN_BAR.lock() {
        *slot = bar;
    }
}

/// Lets the file be named once the config is loaded.
#[derive(Clone)]
pub struct LogFile(Arc<Mutex<Option<(File, String)>>>);

impl LogFile {
    /// Appends to `path` from now on (created mode 0600: logs name hosts and paths),
    /// tagging lines with `job`. A log file that cannot be opened is a warning, not a
    /// failure: the command's work matters more than its log.
    pub fn open(&self, path: &Path, job: &str) {
        match OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
        {
            Ok(f) => {
                if let Ok(mut slot) = self.0.lock() {
                    *slot = Some((f, job.to_string()));
                }
            }
            Err(e) => tracing::warn!("cannot open logfile {}: {e}", path.display()),
        }
    }
}

/// Installs the logger for this process; returns the handle that names the log file later.
pub fn init(quiet: bool, verbose: u8) -> LogFile {
    let threshold = match (quiet, verbose) {
        (true, _) => Level::WARN,
        (false, 0) => Level::INFO,
        _ => Level::DEBUG,
    };
    let file = LogFile(Arc::new(Mutex::new(None)));
    let layer = Lines {
        threshold,
        file: file.clone(),
    };
    // Only one subscriber per process; a second init (tests) keeps the first.
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
    file
}

struct Lines {
    threshold: Level,
    file: LogFile,
}

impl<S: Subscriber> Layer<S> for Lines {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let level = *event.metadata().level();
        if level > self.threshold {
            return;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let tag = match level {
            Level::ERROR => "ERROR ",
            Level::WARN => "WARNING ",
            _ => "",
        };
        // A line printed under a progress bar would be torn by its next redraw: the bar steps
        // aside for the line and comes back below it.
        match SHOWN_BAR.lock().ok().and_then(|bar| bar.clone()) {
            Some(bar) => bar.suspend(|| eprintln!("{tag}{}", message.0)),
            None => eprintln!("{tag}{}", message.0),
        }
        if let Ok(mut slot) = self.file.0.lock() {
            if let Some((f, job)) = slot.as_mut() {
                let _ = writeln!(f, "{} {job} {tag}{}", utc_now(), message.0);
            }
        }
    }
}

/// The event's message, then any other fields as `key=value`.
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
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
