//! The restore command alone, per segment, outside PostgreSQL: what one call of each tool
//! costs, and where walmgr's time goes.
//!
//! Each call runs as PostgreSQL runs restore_command: `/bin/sh -c COMMAND` (system()), as
//! the postgres user, into a scratch pg_wal/RECOVERYXLOG, with the segment in the page
//! cache. Rounds go over the segments (again from the first if there are fewer than the
//! calls asked for); for each segment the tools take turns in an order that rotates, so
//! that no tool always follows the same one.

use std::fs;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use walmgr_bench::{check_interrupted, log};
use walmgr_tests::{chown_to_postgres, postgres_ids, TestDir};

use crate::source::{Source, STANZA};
use crate::MIB;

/// A tool's calls: milliseconds each.
pub struct Row {
    pub name: &'static str,
    pub what: &'static str,
    pub ms: Vec<f64>,
}

enum Step {
    /// `/bin/sh -c COMMAND`, COMMAND with %f and %p put in.
    Shell(String),
    /// The copy alone, in this process: temp file, copy, rename (what any tool must do).
    CopyHere,
}

pub fn measure(
    dir: &TestDir,
    source: &Source,
    walmgr: &Path,
    others: &[(&'static str, PathBuf)],
    n: usize,
) -> Vec<Row> {
    log(&format!(
        "timing each restore command alone, {n} calls of {} MB segments each",
        source.seg_mib
    ));
    let scratch = dir.mkdir(format!("micro{}m/pg_wal", source.seg_mib));
    let spool = &source.pgbackrest_spool;
    let base = source.base.display();
    let walmgr_cmd = format!("{} {}", walmgr.display(), source.walmgr_config.display());
    let mut steps: Vec<(&'static str, &'static str, Step)> = vec![
        (
            "sh -c true",
            "the shell PostgreSQL forks, running nothing",
            Step::Shell("true".into()),
        ),
        (
            "walmgr --version",
            "walmgr's process start (exec, dynamic linking, argument parsing)",
            Step::Shell(format!("{} --version >/dev/null", walmgr.display())),
        ),
        (
            "walmgr xrestore (miss)",
            "start + logging + config load + archive checks, no copy (exit 1)",
            Step::Shell(format!("{walmgr_cmd} xrestore 0000000100000FFF000000FF %p")),
        ),
        (
            "walmgr xrestore",
            "the whole restore_command",
            Step::Shell(format!("{walmgr_cmd} xrestore %f %p")),
        ),
        (
            "copy in-process",
            "temp file, std::fs::copy, rename: the copy alone",
            Step::CopyHere,
        ),
        (
            "cp",
            "the docs' example",
            Step::Shell(format!("cp {}/%f %p", source.archive.display())),
        ),
        (
            "pgbackrest",
            "archive-get, synchronous",
            Step::Shell(format!(
                "pgbackrest --config={} --stanza={STANZA} --pg1-path={base} archive-get %f \"%p\"",
                source.pgbackrest_sync.display()
            )),
        ),
        (
            "pgbackrest-async",
            "archive-get with archive-async (its queue fills in the background)",
            Step::Shell(format!(
                "pgbackrest --config={} --stanza={STANZA} --pg1-path={base} archive-get %f \"%p\"",
                source.pgbackrest_async.display()
            )),
        ),
    ];
    for (i, (name, bin)) in others.iter().enumerate() {
        let row: &'static str = Box::leak(format!("{name} xrestore").into_boxed_str());
        steps.insert(
            4 + i,
            (
                row,
                "another walmgr binary (WALMGR_BENCH_OTHER_CLIS), the whole restore_command",
                Step::Shell(format!(
                    "{} {} xrestore %f %p",
                    bin.display(),
                    source.walmgr_config.display()
                )),
            ),
        );
    }
    let _ = fs::remove_dir_all(spool);
    fs::create_dir(spool).unwrap_or_else(|e| panic!("mkdir {}: {e}", spool.display()));
    chown_to_postgres(spool);
    let mut pgbr_files = source.pgbackrest_files();
    pgbr_files.sort();
    let mut rows: Vec<Row> = steps
        .iter()
        .map(|(name, what, _)| Row {
            name,
            what,
            ms: Vec::new(),
        })
        .collect();
    let dst = scratch.join("RECOVERYXLOG");
    // Round after round over the segments until each tool made `n` calls (warm cache: a
    // segment read again costs what a new one would).
    for (i, seg) in source.segments.iter().cycle().take(n).enumerate() {
        check_interrupted();
        // Warm: the segment and its repo copy.
        let mut warm = vec![source.archive.join(seg)];
        warm.extend(
            pgbr_files
                .iter()
                .filter(|p| {
                    p.file_name()
                        .and_then(|f| f.to_str())
                        .is_some_and(|f| f.starts_with(seg.as_str()))
                })
                .cloned(),
        );
        read_all(&warm);
        for k in 0..steps.len() {
            let j = (i + k) % steps.len();
            let _ = fs::remove_file(&dst);
            let t0 = Instant::now();
            match &steps[j].2 {
                Step::Shell(cmd) => {
                    let cmd = cmd
                        .replace("%f", seg)
                        .replace("%p", &dst.display().to_string());
                    let status = shell_as_postgres(&cmd);
                    let expected = if steps[j].0 == "walmgr xrestore (miss)" {
                        Some(1)
                    } else {
                        Some(0)
                    };
                    assert_eq!(status, expected, "`{cmd}` exited with {status:?}");
                }
                Step::CopyHere => copy_here(&source.archive.join(seg), &dst),
            }
            rows[j].ms.push(t0.elapsed().as_secs_f64() * 1000.0);
            if steps[j].0 != "walmgr xrestore (miss)"
                && steps[j].0 != "walmgr --version"
                && steps[j].0 != "sh -c true"
            {
                let len = fs::metadata(&dst).map(|m| m.len()).unwrap_or(0);
                assert_eq!(
                    len,
                    source.seg_size(),
                    "{} left no segment at {}",
                    steps[j].0,
                    dst.display()
                );
            }
        }
    }
    let _ = fs::remove_dir_all(scratch.parent().unwrap_or(&scratch));
    rows
}

/// Exit code of `/bin/sh -c cmd` run as postgres, with a minimal environment.
fn shell_as_postgres(cmd: &str) -> Option<i32> {
    let (uid, gid) = postgres_ids();
    // std drops root's supplementary groups (setgroups) when it switches the uid.
    Command::new("/bin/sh")
        .arg("-c")
        .arg(cmd)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/tmp")
        .current_dir("/tmp")
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap_or_else(|e| panic!("cannot run /bin/sh -c {cmd}: {e}"))
        .code()
}

fn copy_here(src: &Path, dst: &Path) {
    let temp = dst.with_extension("tmp");
    fs::copy(src, &temp)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", src.display(), temp.display()));
    fs::rename(&temp, dst)
        .unwrap_or_else(|e| panic!("rename {} to {}: {e}", temp.display(), dst.display()));
}

fn read_all(files: &[PathBuf]) {
    let mut buf = vec![0u8; MIB as usize];
    for p in files {
        let mut f = fs::File::open(p).unwrap_or_else(|e| panic!("open {}: {e}", p.display()));
        while f
            .read(&mut buf)
            .unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
            > 0
        {}
    }
}
