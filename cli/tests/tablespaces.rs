//! Tablespaces, restored so that the standby starts: each one where it belongs on the
//! standby (mapped to the standby's own directory, or at the master's path), with a
//! symlink in pg_tblspc, as `pg_basebackup -Fp` would leave it.

use std::collections::BTreeSet;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use walmgr_tests::shipping::{path, Shipping, WAIT};
use walmgr_tests::{chown_to_postgres, Cluster, Pg};

/// The walmgr Cargo built for this test run.
const WALMGR: &str = env!("CARGO_BIN_EXE_walmgr");

fn count(c: &Cluster, table: &str) -> i64 {
    c.query_one(&format!("SELECT count(*) FROM {table}"))
}

/// Two tablespaces on the master, a table in each, and the master's directories.
fn two_tablespaces(s: &Shipping) -> [PathBuf; 2] {
    let dirs = [s.dir.join("master_ts1"), s.dir.join("master_ts2")];
    for (n, dir) in dirs.iter().enumerate() {
        fs::create_dir_all(dir).unwrap();
        chown_to_postgres(dir);
        s.master.execute(&format!(
            "CREATE TABLESPACE ts{n} LOCATION '{}'",
            dir.display()
        ));
        s.master.execute(&format!(
            "CREATE TABLE t{n} (x int) TABLESPACE ts{n}; INSERT INTO t{n} SELECT generate_series(1, 1000)"
        ));
    }
    dirs
}

/// Every file under `dirs`, with its inode: what "untouched" is checked against.
fn files_of(dirs: &[PathBuf]) -> BTreeSet<(PathBuf, u64)> {
    let mut out = BTreeSet::new();
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = fs::symlink_metadata(e.path()).unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            }
            out.insert((e.path(), meta.ino()));
        }
    }
    out
}

fn restore_config(s: &Shipping, standby: &Cluster, extra: &str) -> PathBuf {
    s.dir.write(
        "restore.toml",
        format!(
            "[walmgr]\nslave_data = \"{}\"\nslave_bin = \"{}\"\nslave_start_cmd = \"{}\"\n\
             walmgr_data = \"{}\"\n{extra}\n",
            standby.data.display(),
            standby.pg.bindir.display(),
            standby.start_command(),
            s.dir.join("walshipping").display()
        ),
    )
}

/// After restore: rows written after the backup arrive through the archive, boot opens
/// the standby, and both tables are whole.
fn replay_and_boot(s: &Shipping, standby: &Cluster, config: &Path) {
    s.master
        .execute("INSERT INTO t0 SELECT generate_series(1001, 1500); INSERT INTO t1 SELECT 1");
    s.switch_and_wait();
    standby.wait_until("the standby replays into both tablespaces", WAIT, || {
        standby.try_connect().is_ok()
            && count(standby, "t0") == 1500
            && count(standby, "t1") == 1001
    });
    s.walmgr().args([path(config), "boot"]).as_postgres().ok();
    standby.execute("INSERT INTO t0 VALUES (0); INSERT INTO t1 VALUES (0)");
}

fn mapped_restore(s: &Shipping, master_dirs: &[PathBuf; 2]) {
    let before = files_of(master_dirs);
    let mine = [s.dir.join("standby_ts1"), s.dir.join("standby_ts2")];
    let standby = Cluster::planned(&s.master.pg, &s.dir, "standby");
    let config = restore_config(
        s,
        &standby,
        &format!(
            "tablespace_mapping = \"{}={},{}={}\"",
            master_dirs[0].display(),
            mine[0].display(),
            master_dirs[1].display(),
            mine[1].display()
        ),
    );
    s.walmgr()
        .args([path(&config), "restore"])
        .as_postgres()
        .ok();
    let links: BTreeSet<PathBuf> = fs::read_dir(standby.data.join("pg_tblspc"))
        .unwrap()
        .map(|e| fs::read_link(e.unwrap().path()).expect("pg_tblspc entries are symlinks"))
        .collect();
    assert_eq!(links, mine.iter().cloned().collect());
    replay_and_boot(s, &standby, &config);
    let after = files_of(master_dirs);
    assert!(
        before.is_subset(&after),
        "files of the master's tablespaces went away or were replaced: {:?}",
        before.difference(&after).collect::<Vec<_>>()
    );
    assert_eq!(count(&s.master, "t0"), 1500, "the master lost rows");
}

#[test]
fn tablespaces_of_a_local_backup_go_where_the_mapping_says() {
    let s = Shipping::with_module(WALMGR, &Pg::major(15), "tsmap", &["--wal-segsize=1"]);
    let master_dirs = two_tablespaces(&s);
    s.walmgr()
        .args([path(&s.master_config), "backup"])
        .as_postgres()
        .ok();
    mapped_restore(&s, &master_dirs);
}

#[test]
fn tablespaces_of_a_backup_sent_over_ssh_go_where_the_mapping_says() {
    let s = Shipping::over_ssh(WALMGR, &Pg::major(18), "tsssh", &["--wal-segsize=1"], "");
    s.setup();
    let master_dirs = two_tablespaces(&s);
    s.walmgr()
        .args([path(&s.master_config), "backup"])
        .as_postgres()
        .ok();
    mapped_restore(&s, &master_dirs);
}

#[test]
fn an_unmapped_tablespace_whose_place_is_taken_is_refused_and_nothing_changes() {
    let s = Shipping::with_module(WALMGR, &Pg::major(15), "tsbusy", &["--wal-segsize=1"]);
    let master_dirs = two_tablespaces(&s);
    s.walmgr()
        .args([path(&s.master_config), "backup"])
        .as_postgres()
        .ok();
    let standby = Cluster::planned(&s.master.pg, &s.dir, "standby");
    let config = restore_config(&s, &standby, "");
    let err = s
        .walmgr()
        .args([path(&config), "restore"])
        .as_postgres()
        .fails_with(1);
    assert!(err.contains("exists and is not empty"), "{err}");
    assert!(
        master_dirs
            .iter()
            .any(|d| err.contains(&d.display().to_string())),
        "the refusal names the master's path: {err}"
    );
    assert!(
        !standby.data.exists(),
        "restore changed something before refusing"
    );
    assert!(s.dir.join("walshipping/data.master/backup_label").exists());
}

/// The standby as another host sees it: the master's tablespace paths are free there. A
/// mount namespace with a private tmpfs over each of them gives the standby's restore,
/// server and replay that view, while the master keeps its own directories.
#[test]
fn an_unmapped_tablespace_goes_to_the_masters_path_on_the_standby_host() {
    let s = Shipping::with_module(WALMGR, &Pg::major(15), "tsdefault", &["--wal-segsize=1"]);
    let master_dirs = two_tablespaces(&s);
    let before = files_of(&master_dirs);
    s.walmgr()
        .args([path(&s.master_config), "backup"])
        .as_postgres()
        .ok();
    let standby = Cluster::planned(&s.master.pg, &s.dir, "standby");
    let config = restore_config(&s, &standby, "");
    let mounts: Vec<String> = master_dirs
        .iter()
        .map(|d| {
            format!(
                "mount -t tmpfs -o mode=0700 walmgr-test {0} && chown postgres: {0}",
                d.display()
            )
        })
        .collect();
    let script = format!(
        "{} && exec runuser -u postgres -- {} {} restore",
        mounts.join(" && "),
        s.walmgr_bin().display(),
        config.display()
    );
    let out = s
        .command("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c", &script])
        .run();
    assert!(
        out.status.success(),
        "restore in the standby's mount namespace: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (n, dir) in master_dirs.iter().enumerate() {
        let oid: i32 = s.master.query_one(&format!(
            "SELECT oid::int4 FROM pg_tablespace WHERE spcname = 'ts{n}'"
        ));
        let link = standby.data.join(format!("pg_tblspc/{oid}"));
        assert_eq!(fs::read_link(&link).unwrap(), *dir, "pg_tblspc/{oid}");
    }
    replay_and_boot(&s, &standby, &config);
    assert!(
        before.is_subset(&files_of(&master_dirs)),
        "the master's own tablespace directories were changed"
    );
}
