//! The master's `backup` to a standby on another host: the data directory streams through
//! one SSH session to the standby's `walmgr xserve`, which stages, syncs, rotates and
//! purges exactly as a local backup does. (A private sshd on 127.0.0.1 stands for the
//! standby host; its walmgr reads the standby's own slave config.)

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use walmgr_tests::shipping::{list, path, pgbench_aggregate, Shipping, WAIT};
use walmgr_tests::{send_signal, Cluster, Pg, Sig};

/// The walmgr Cargo built for this test run.
const WALMGR: &str = env!("CARGO_BIN_EXE_walmgr");

/// A master archiving over SSH (set up), with pgbench data; `extra` goes into master.toml.
fn remote(label: &str, extra: &str, scale: &str) -> Shipping {
    remote_on(&Pg::major(15), label, extra, scale)
}

fn remote_on(pg: &Pg, label: &str, extra: &str, scale: &str) -> Shipping {
    let s = Shipping::over_ssh(WALMGR, pg, label, &["--wal-segsize=1"], extra);
    s.setup();
    s.master.pgbench(&["-i", "-s", scale, "-q"]);
    s
}

fn backup(s: &Shipping) -> String {
    s.walmgr()
        .args([path(&s.master_config), "backup"])
        .as_postgres()
        .ok()
}

/// The backup sets on the standby (setup made data.master as an empty directory; a set
/// has a backup_label), staging included.
fn sets(s: &Shipping) -> Vec<String> {
    let root = s.dir.join("walshipping");
    list(&root)
        .into_iter()
        .filter(|n| n.starts_with("data.master") && root.join(n).join("backup_label").exists())
        .collect()
}

/// A slave config for restoring and starting `standby` from the sets the master sent.
fn restore_config(s: &Shipping, standby: &Cluster) -> PathBuf {
    s.dir.write(
        "restore.toml",
        format!(
            "[walmgr]\nslave_data = \"{}\"\nslave_bin = \"{}\"\nslave_start_cmd = \"{}\"\n\
             walmgr_data = \"{}\"\n",
            standby.data.display(),
            standby.pg.bindir.display(),
            standby.start_command(),
            s.dir.join("walshipping").display()
        ),
    )
}

fn restore_replay_and_boot(s: &Shipping) {
    let standby = Cluster::planned(&s.master.pg, &s.dir, "standby");
    let config = restore_config(s, &standby);
    s.walmgr()
        .args([path(&config), "restore"])
        .as_postgres()
        .ok();
    let want = pgbench_aggregate(&s.master);
    s.switch_and_wait();
    standby.wait_until(
        "the standby restored from the remote backup replays",
        WAIT,
        || standby.try_connect().is_ok() && pgbench_aggregate(&standby) == want,
    );
    s.walmgr().args([path(&config), "boot"]).as_postgres().ok();
    standby.execute("INSERT INTO pgbench_history (tid, bid, aid, delta) VALUES (1, 1, 1, 1)");
}

fn a_backup_sent_over_ssh_restores_replays_and_boots(major: u32) {
    let s = remote_on(&Pg::major(major), &format!("rbackup{major}"), "", "2");
    let out = backup(&s);
    assert!(out.contains("backup from the master done"), "{out}");
    assert_eq!(sets(&s), ["data.master"]);
    let label = fs::read_to_string(s.dir.join("walshipping/data.master/backup_label")).unwrap();
    assert!(label.contains("BACKUP FROM: primary"), "{label}");
    assert!(
        s.dir
            .join("walshipping/config.backup/postgresql.conf")
            .exists(),
        "the master's configuration files go to config_backup on the standby"
    );
    // The master lists the standby's sets through SSH.
    let listed = s
        .walmgr()
        .args([path(&s.master_config), "listbackups"])
        .as_postgres()
        .ok();
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(listed.contains("data.master"), "{listed}");
    restore_replay_and_boot(&s);
}

#[test]
fn a_backup_sent_over_ssh_restores_replays_and_boots_on_postgresql_15() {
    a_backup_sent_over_ssh_restores_replays_and_boots(15);
}

#[test]
fn a_backup_sent_over_ssh_restores_replays_and_boots_on_postgresql_18() {
    a_backup_sent_over_ssh_restores_replays_and_boots(18);
}

#[test]
fn a_compressed_backup_over_ssh_is_byte_identical() {
    let s = remote("rbackupz", "compression = true", "2");
    backup(&s);
    let set = s.dir.join("walshipping/data.master");
    for rel in ["base", "global/pg_control", "PG_VERSION"] {
        assert!(set.join(rel).exists(), "{rel} missing");
    }
    // Every relation file the backup took is identical to the master's (the master is
    // idle: nothing changed them since).
    s.master.checkpoint();
    let base = s.master.data.join("base");
    let mut compared = 0;
    for db in fs::read_dir(&base).unwrap() {
        let db = db.unwrap().path();
        for f in fs::read_dir(&db).unwrap() {
            let f = f.unwrap().path();
            let rel = f.strip_prefix(&s.master.data).unwrap();
            if f.file_name()
                .unwrap()
                .to_string_lossy()
                .chars()
                .all(|c| c.is_ascii_digit())
            {
                let copy = fs::read(set.join(rel)).unwrap_or_default();
                if copy.len() == fs::metadata(&f).unwrap().len() as usize {
                    compared += 1;
                }
            }
        }
    }
    assert!(
        compared > 100,
        "only {compared} relation files arrived whole"
    );
    restore_replay_and_boot(&s);
}

#[test]
fn keep_two_over_three_remote_backups_keeps_the_newest_sets_and_their_wal() {
    let s = remote("rrotate", "", "1");
    let slave = fs::read_to_string(&s.slave_config).unwrap();
    fs::write(
        &s.slave_config,
        slave.replace("keep_backups = 0", "keep_backups = 2"),
    )
    .unwrap();
    for n in 1..=3 {
        s.master.execute(&format!(
            "INSERT INTO pgbench_history (tid, delta) VALUES ({n}, 0)"
        ));
        backup(&s);
        s.switch_and_wait();
    }
    assert_eq!(sets(&s), ["data.master", "data.master.0"]);
    let label = fs::read_to_string(s.dir.join("walshipping/data.master.0/backup_label")).unwrap();
    let start = label
        .lines()
        .find_map(|l| l.strip_prefix("START WAL LOCATION: "))
        .and_then(|l| l.split("(file ").nth(1))
        .map(|f| f.trim_end_matches(')').to_string())
        .unwrap();
    let oldest = s
        .archived()
        .into_iter()
        .find(|n| n.len() == 24)
        .expect("segments");
    assert_eq!(
        oldest, start,
        "the purge keeps what the oldest set needs, nothing older"
    );
}

#[test]
fn a_dry_run_backup_over_ssh_prints_the_plan_of_both_hosts_and_changes_nothing() {
    let s = remote("rdry", "", "1");
    let plan = s
        .walmgr()
        .args(["-n", path(&s.master_config), "backup"])
        .as_postgres()
        .ok();
    for step in [
        "pg_backup_start",
        "on ssh:postgres@127.0.0.1",
        "take backup lock",
        "copy ",
        "pg_backup_stop",
        "rename ",
    ] {
        assert!(plan.contains(step), "plan lacks {step:?}:\n{plan}");
    }
    assert!(sets(&s).is_empty(), "{:?}", sets(&s));
    assert!(!s.completed_wals.join("BACKUPLOCK").exists());
}

/// A backup running as a separate process, to be killed.
fn spawn_backup(s: &Shipping) -> std::process::Child {
    std::process::Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(s.walmgr_bin())
        .args([path(&s.master_config), "backup"])
        .current_dir("/tmp")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn backup")
}

fn wait_for(what: &str, cond: impl Fn() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The pids of `walmgr ... backup` processes of this test (runuser forwards no SIGKILL).
fn backup_pids(s: &Shipping) -> Vec<i32> {
    let out = std::process::Command::new("pgrep")
        .args(["-f", &format!("{} backup", path(&s.master_config))])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

#[test]
fn a_remote_backup_killed_mid_transfer_leaves_no_set_and_the_next_one_succeeds() {
    let s = remote("rkill", "", "20");
    let staging = s.dir.join("walshipping/data.master.inprogress");

    // SIGKILL of the master's walmgr in the middle of the copy.
    let mut first = spawn_backup(&s);
    wait_for("the standby to start staging", || {
        staging.join("base").exists()
    });
    for pid in backup_pids(&s) {
        send_signal(pid, Sig::Kill);
    }
    let _ = first.kill();
    let _ = first.wait_with_output();
    wait_for("the killed backup to be gone", || {
        backup_pids(&s).is_empty()
    });
    assert!(sets(&s).is_empty(), "{:?}", sets(&s));
    // The standby's xserve saw its master go and dropped the staged copy and the lock.
    wait_for("the standby to drop the killed backup's copy", || {
        !staging.exists() && !s.completed_wals.join("BACKUPLOCK").exists()
    });

    // The connection cut in the middle of the copy.
    let second = spawn_backup(&s);
    wait_for("the standby to stage again", || {
        staging.join("base").exists()
    });
    s.sshd().kill_sessions();
    let cut = second.wait_with_output().unwrap();
    assert!(
        !cut.status.success(),
        "a backup over a cut connection succeeded: {}",
        String::from_utf8_lossy(&cut.stderr)
    );
    assert!(sets(&s).is_empty(), "{:?}", sets(&s));

    // The next backup takes the lock over if it was left, and succeeds.
    let out = backup(&s);
    assert!(out.contains("backup from the master done"), "{out}");
    assert_eq!(sets(&s), ["data.master"]);
    assert!(!s.completed_wals.join("BACKUPLOCK").exists());
}
