//! Which walmgr.so a major's rows measure. The PostgreSQL installations are shared: another
//! checkout's `cargo pgrx install` (a test run, say) may replace the release build lag.sh
//! installed, even in the middle of the run. It removes the old file before it copies the
//! new one, so a running server keeps the build it loaded at its start (its children inherit
//! the preloaded library, and PostgreSQL finds a loaded library by name without looking at
//! the file again); only servers started afterwards load the other build. So the installed
//! file is compared with this checkout's build before a major's masters start, and at the
//! end every worker measured must still map that very file (same inode in /proc/PID/maps).

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use walmgr_tests::{Pg, TestCommand};

pub struct Build {
    pub major: u32,
    pub installed: PathBuf,
    /// This checkout's release build (`target/pgrx-NN/release/libwalmgr.so`), which
    /// `cargo pgrx install` copies byte for byte; None: measure whatever is installed
    /// (WALMGR_BENCH_RELEASE=0).
    pub built: Option<PathBuf>,
    /// The inode of the installed file when it was checked, before the masters started.
    inode: Option<u64>,
    written: String,
    /// What went wrong, for the report.
    pub problems: Vec<String>,
}

impl Build {
    /// Checks the installed walmgr.so now, before the masters that will load it start.
    /// `target`: this checkout's target dir when its release build is to be measured.
    pub fn check_before_start(pg: &Pg, target: Option<&Path>) -> Build {
        let installed = PathBuf::from(pg.config("--pkglibdir")).join("walmgr.so");
        let meta = fs::metadata(&installed).unwrap_or_else(|e| {
            panic!(
                "{}: {e}: bench/lag.sh installs it (or run scripts/test first)",
                installed.display()
            )
        });
        let mut build = Build {
            major: pg.major,
            built: target.map(|t| t.join(format!("pgrx-{}/release/libwalmgr.so", pg.major))),
            inode: Some(meta.ino()),
            written: modified(&installed),
            installed,
            problems: Vec::new(),
        };
        if let Some(built) = &build.built {
            let same = match (fs::read(&build.installed), fs::read(built)) {
                (Ok(a), Ok(b)) => (a == b).then_some(()).ok_or(format!(
                    "{} bytes, not the {} of {}",
                    a.len(),
                    b.len(),
                    built.display()
                )),
                (a, b) => Err(format!(
                    "cannot compare with {}: {:?} / {:?}",
                    built.display(),
                    a.err(),
                    b.err()
                )),
            };
            if let Err(why) = same {
                build.problems.push(format!(
                    "{} (written {}) is not this checkout's release build before the masters \
                     started ({why}): another checkout installed its own",
                    build.installed.display(),
                    build.written
                ));
            }
        }
        build
    }

    /// Each worker (`what`, pid) must map the file checked before the masters started.
    pub fn check_loaded(&mut self, workers: &[(String, i32)]) {
        for (what, pid) in workers {
            let mapped = mapped_inode(*pid, &self.installed);
            if mapped != self.inode {
                self.problems.push(format!(
                    "the worker of {what} (pid {pid}) maps {} inode {mapped:?}, not the \
                     checked file's {:?}: the file was replaced before that master started",
                    self.installed.display(),
                    self.inode
                ));
            }
        }
    }

    pub fn describe(&self) -> String {
        let what = match &self.built {
            Some(built) => format!(
                "this checkout's release build (identical to {} before the masters started)",
                built.display()
            ),
            None => "as installed (WALMGR_BENCH_RELEASE=0)".to_string(),
        };
        format!(
            "{}: {what}, written {}; every worker measured mapped it{}",
            self.installed.display(),
            self.written,
            if self.problems.is_empty() {
                ""
            } else {
                ": NOT SO, see the warnings"
            }
        )
    }
}

/// The inode of `path` as process `pid` maps it (also after the file was removed, when
/// the line ends in "(deleted)").
fn mapped_inode(pid: i32, path: &Path) -> Option<u64> {
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let path = path.to_str()?;
    maps.lines().find_map(|line| {
        // address perms offset dev inode path
        let mut fields = line.split_whitespace();
        let inode = fields.nth(4)?;
        let mapped = fields.next()?;
        (mapped == path).then(|| inode.parse().ok()).flatten()
    })
}

/// `date -r`'s idea of when `path` was last written.
fn modified(path: &Path) -> String {
    let out = TestCommand::new("date")
        .args(["-r", &path.display().to_string(), "+%Y-%m-%d %H:%M:%S"])
        .run();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}
