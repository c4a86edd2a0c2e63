//! The walmgr binary as PostgreSQL and a DBA call it, without a server: config errors,
//! usage, and the xarchive/xrestore file protocol.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const MB: usize = 1 << 20;

fn walmgr(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_walmgr"))
        .args(args)
        .output()
        .expect("run walmgr")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// A 1 MB segment whose long page header matches `name` (timeline 1, log 0).
fn segment(seg: u32) -> (String, Vec<u8>) {
    let name = format!("00000001{:08X}{:08X}", 0, seg);
    let mut data = vec![0u8; MB];
    data[2..4].copy_from_slice(&2u16.to_ne_bytes()); // XLP_LONG_HEADER
    data[4..8].copy_from_slice(&1u32.to_ne_bytes());
    data[8..16].copy_from_slice(&(u64::from(seg) * MB as u64).to_ne_bytes());
    data[32..36].copy_from_slice(&(MB as u32).to_ne_bytes());
    data[36..40].copy_from_slice(&8192u32.to_ne_bytes());
    for (i, b) in data.iter_mut().enumerate().skip(40) {
        *b = (i * 7 % 253) as u8;
    }
    (name, data)
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    master: PathBuf,
    slave: PathBuf,
}

fn setup() -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_path_buf();
    let data = root.join("walshipping");
    fs::create_dir_all(data.join("logs.complete")).unwrap();
    fs::create_dir_all(root.join("pg_wal")).unwrap();
    let master = root.join("master.toml");
    fs::write(
        &master,
        format!(
            "[walmgr]\nmaster_db = \"dbname=x\"\nmaster_data = \"{0}/pgdata\"\nwalmgr_data = \"{1}\"\n",
            root.display(),
            data.display()
        ),
    )
    .unwrap();
    let slave = root.join("slave.ini");
    fs::write(
        &slave,
        format!(
            "[walmgr]\nslave_data = {0}/standby\nwalmgr_data = {1}\ncompleted_wals = %(walmgr_data)s/logs.complete\n",
            root.display(),
            data.display()
        ),
    )
    .unwrap();
    Setup {
        _dir: dir,
        root,
        master,
        slave,
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `walmgr --ini` on this host: a master and a slave sample that load, with the paths and
/// start/stop commands of the PostgreSQL installed here (Debian's layout and pg_ctlcluster
/// on this machine), and the walmgr3 keys that do nothing listed as such, not set.
#[test]
fn ini_prints_samples_for_the_postgresql_of_this_host() {
    let out = walmgr(&["--ini"]);
    assert!(out.status.success());
    let samples = text(&out.stdout);
    let at = samples
        .find("# walmgr slave configuration")
        .expect("a slave sample after the master's");
    let (master, slave) = samples.split_at(at);
    let dir = tempfile::tempdir().unwrap();
    for (name, sample, role) in [
        ("master.toml", master, walmgr_core::config::Role::Master),
        ("slave.toml", slave, walmgr_core::config::Role::Slave),
    ] {
        let path = dir.path().join(name);
        fs::write(&path, sample).unwrap();
        let config = walmgr_core::config::Config::load(&path, &[])
            .unwrap_or_else(|e| panic!("{name} does not load: {e}\n{sample}"));
        assert_eq!(config.role, role);
        for key in walmgr_core::config::keys() {
            if key.does_nothing.is_some() {
                assert!(
                    !matches!(
                        config.origin(key.name),
                        walmgr_core::error::Origin::Line(..)
                    ),
                    "{} is set in the {name} sample",
                    key.name
                );
                assert!(sample.contains(&format!("#   {}: ", key.name)), "{sample}");
            }
        }
        assert!(
            !sample.contains("9.1") && !sample.contains("/etc/init.d"),
            "{sample}"
        );
    }
    // The newest major in Debian's place on this machine, and postgresql-common's commands.
    let newest = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("bin/postgres").is_file())
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .max();
    if let Some(major) = newest {
        assert!(
            slave.contains(&format!(
                "slave_bin            = \"/usr/lib/postgresql/{major}/bin\""
            )),
            "{slave}"
        );
        if Path::new("/usr/bin/pg_ctlcluster").is_file() {
            assert!(
                slave.contains(&format!("slave_start_cmd      = \"pg_ctlcluster {major} ")),
                "{slave}"
            );
            assert!(
                master.contains(&format!("#master_restart_cmd   = \"pg_ctlcluster {major} ")),
                "{master}"
            );
        }
    }
}

#[test]
fn no_command_is_a_usage_error() {
    let out = walmgr(&[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn an_unknown_key_names_the_key_file_and_line() {
    let s0 = setup();
    let bad = s0.root.join("bad.toml");
    fs::write(
        &bad,
        "[walmgr]\nmaster_data = \"/x\"\nwalmgr_data = \"/y\"\ncompleted_wal = \"/z\"\n",
    )
    .unwrap();
    let out = walmgr(&[
        s(&bad),
        "xarchive",
        "/nonexistent",
        "000000010000000000000001",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("bad.toml:4"), "{err}");
    assert!(err.contains("completed_wal"), "{err}");
}

#[test]
fn xarchive_then_xrestore_gives_back_the_same_bytes() {
    let s0 = setup();
    let (name, data) = segment(3);
    let src = s0.root.join("pg_wal").join(&name);
    fs::write(&src, &data).unwrap();

    let out = walmgr(&[s(&s0.master), "xarchive", s(&src), &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let archived = s0.root.join("walshipping/logs.complete").join(&name);
    assert_eq!(fs::read(&archived).unwrap(), data);

    let dst = s0.root.join("pg_wal/RECOVERYXLOG");
    let out = walmgr(&[
        s(&s0.slave),
        "xrestore",
        &name,
        s(&dst),
        "000000010000000000000001",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read(&dst).unwrap(), data);
}

#[test]
fn xrestore_of_a_missing_file_exits_1_quietly() {
    let s0 = setup();
    let dst = s0.root.join("pg_wal/RECOVERYXLOG");
    let out = walmgr(&[s(&s0.slave), "xrestore", "00000002.history", s(&dst)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).is_empty(), "{}", text(&out.stderr));
    assert!(!dst.exists());
}

#[test]
fn xrestore_refuses_names_and_destinations_outside_the_wal_grammar() {
    let s0 = setup();
    let dst = s0.root.join("pg_wal/RECOVERYXLOG");
    let out = walmgr(&[s(&s0.slave), "xrestore", "../../etc/passwd", s(&dst)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("not a WAL file name"));

    let elsewhere = s0.root.join("postgresql.conf");
    let out = walmgr(&[
        s(&s0.slave),
        "xrestore",
        "000000010000000000000001",
        s(&elsewhere),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("refusing to restore"),
        "{}",
        text(&out.stderr)
    );
    assert!(!elsewhere.exists());
}

#[test]
fn xarchive_of_different_bytes_under_an_archived_name_fails_and_keeps_the_original() {
    let s0 = setup();
    let (name, data) = segment(4);
    let src = s0.root.join("pg_wal").join(&name);
    fs::write(&src, &data).unwrap();
    assert!(walmgr(&[s(&s0.master), "xarchive", s(&src), &name])
        .status
        .success());
    assert!(walmgr(&[s(&s0.master), "xarchive", s(&src), &name])
        .status
        .success());

    let mut other = data.clone();
    other[MB / 2] ^= 1;
    fs::write(&src, &other).unwrap();
    let out = walmgr(&[s(&s0.master), "xarchive", s(&src), &name]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("different content"),
        "{}",
        text(&out.stderr)
    );
    let archived = s0.root.join("walshipping/logs.complete").join(&name);
    assert_eq!(fs::read(archived).unwrap(), data);
}

#[test]
fn not_really_prints_the_archive_step_and_writes_nothing() {
    let s0 = setup();
    let (name, data) = segment(5);
    let src = s0.root.join("pg_wal").join(&name);
    fs::write(&src, data).unwrap();
    let out = walmgr(&["-n", s(&s0.master), "xarchive", s(&src), &name]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains(&format!("would: archive {}", src.display())));
    let listing: Vec<_> = fs::read_dir(s0.root.join("walshipping/logs.complete"))
        .unwrap()
        .collect();
    assert!(listing.is_empty());
}

#[test]
fn xarchive_with_a_slave_config_says_it_needs_a_master_config() {
    let s0 = setup();
    let out = walmgr(&[s(&s0.slave), "xarchive", "/x", "000000010000000000000001"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("needs a master config"),
        "{}",
        text(&out.stderr)
    );
}

/// The standby's receiving end: several files over one process, one reply each.
#[test]
fn xserve_receives_many_files_in_one_process() {
    use std::io::Write;
    let s0 = setup();
    let mut child = Command::new(env!("CARGO_BIN_EXE_walmgr"))
        .args([s(&s0.slave), "xserve"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let files: Vec<(String, Vec<u8>)> = (20..23).map(segment).collect();
    {
        let stdin = child.stdin.as_mut().unwrap();
        stdin.write_all(b"HELLO 1 plain\n").unwrap();
        for (name, data) in &files {
            writeln!(stdin, "PUT {name} {}", data.len()).unwrap();
            stdin.write_all(data).unwrap();
        }
        stdin.write_all(b"PUT ../escape 1\nx").unwrap();
        stdin.write_all(b"BYE\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let replies = text(&out.stdout);
    let lines: Vec<&str> = replies.lines().collect();
    assert_eq!(lines[0], "OK walmgr 1 plain", "{replies}");
    assert_eq!(lines[1..4], ["OK written"; 3], "{replies}");
    assert!(
        lines[4].starts_with("ERR") && lines[4].contains("not a WAL file name"),
        "{replies}"
    );
    for (name, data) in &files {
        let archived = s0.root.join("walshipping/logs.complete").join(name);
        assert_eq!(&fs::read(archived).unwrap(), data);
    }
}

/// Under a forced command, sshd passes what the client asked for in SSH_ORIGINAL_COMMAND:
/// anything but xserve is refused before a request is read.
#[test]
fn xserve_refuses_any_other_command_the_key_asks_for() {
    let s0 = setup();
    for asked in ["ls", "rm -rf /", "walmgr /x.toml backup"] {
        let out = Command::new(env!("CARGO_BIN_EXE_walmgr"))
            .args([s(&s0.slave), "xserve"])
            .env("SSH_ORIGINAL_COMMAND", asked)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{asked}");
        let err = text(&out.stderr);
        assert!(err.contains("may only run walmgr's receiving end"), "{err}");
        assert!(out.stdout.is_empty());
    }
}

/// `walmgr args...` in a mount namespace of its own where `read_only` is a read-only bind
/// mount: even root cannot write there, as on a standby whose archive copy is mounted ro.
fn walmgr_with_read_only(read_only: &Path, args: &[&str]) -> Output {
    let script = format!(
        "mount --bind -o ro {0} {0} && exec \"$@\"",
        walmgr_core::os::shell::quote(s(read_only))
    );
    Command::new("unshare")
        .args([
            "--mount",
            "--propagation",
            "private",
            "sh",
            "-c",
            &script,
            "sh",
        ])
        .arg(env!("CARGO_BIN_EXE_walmgr"))
        .args(args)
        .output()
        .expect("run unshare")
}

#[test]
fn xrestore_from_a_read_only_archive_hands_out_the_segment_without_a_restartpoint() {
    let s0 = setup();
    let (name, data) = segment(5);
    let archive = s0.root.join("walshipping/logs.complete");
    fs::write(archive.join(&name), &data).unwrap();
    let dst = s0.root.join("pg_wal/RECOVERYXLOG");
    let out = walmgr_with_read_only(
        &archive,
        &[
            s(&s0.slave),
            "xrestore",
            &name,
            s(&dst),
            "000000010000000000000004",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read(&dst).unwrap(), data);
    let said = text(&out.stderr);
    assert!(
        said.contains("restartpoint 000000010000000000000004 not recorded"),
        "{said}"
    );
    assert!(!archive.join("RESTARTPOINT").exists());
}

#[test]
fn xrestore_hands_out_complete_files_while_boot_ends_recovery_but_none_while_paused() {
    let s0 = setup();
    let (name, data) = segment(6);
    let archive = s0.root.join("walshipping/logs.complete");
    fs::write(archive.join(&name), &data).unwrap();
    let dst = s0.root.join("pg_wal/RECOVERYXLOG");
    let xrestore = || walmgr(&[s(&s0.slave), "xrestore", &name, s(&dst)]);

    fs::write(archive.join("PAUSE"), "").unwrap();
    assert_eq!(
        xrestore().status.code(),
        Some(1),
        "paused: nothing handed out"
    );
    assert!(!dst.exists());

    // boot writes STOP (after removing PAUSE; a PAUSE left behind must not hold it back).
    fs::write(archive.join("STOP"), "").unwrap();
    let out = xrestore();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(fs::read(&dst).unwrap(), data);
}

#[test]
fn the_logfile_gets_the_log_lines_and_is_private_and_quiet_keeps_info_off_stderr() {
    use std::os::unix::fs::PermissionsExt;
    let s0 = setup();
    let log = s0.root.join("walmgr.log");
    let mut config = fs::read_to_string(&s0.master).unwrap();
    config.push_str(&format!(
        "logfile = \"{}\"\njob_name = \"night\"\n",
        log.display()
    ));
    fs::write(&s0.master, config).unwrap();
    let (name, data) = segment(8);
    let src = s0.root.join("pg_wal").join(&name);
    fs::write(&src, &data).unwrap();
    let archive = |extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend([s(&s0.master), "xarchive", s(&src), &name]);
        walmgr(&args)
    };
    assert!(archive(&[]).status.success());

    // The second time it is already there: an info line, on stderr and in the log file.
    let out = archive(&[]);
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("already archived with the same content"));
    let logged = fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("night ") && logged.contains("already archived"),
        "{logged}"
    );
    let mode = fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the log file names hosts and paths");

    let quiet = archive(&["-q"]);
    assert!(quiet.status.success());
    assert!(text(&quiet.stderr).is_empty(), "{}", text(&quiet.stderr));
}

#[test]
fn a_password_in_master_db_never_reaches_an_error() {
    let s0 = setup();
    let config = fs::read_to_string(&s0.master).unwrap().replace(
        "dbname=x",
        "host=/nonexistent-walmgr-socket port=1 password=s3cret dbname=x",
    );
    fs::write(&s0.master, config).unwrap();
    let out = walmgr(&[s(&s0.master), "status"]);
    assert_eq!(out.status.code(), Some(1));
    let said = text_of(&out);
    assert!(said.contains("cannot connect to the master"), "{said}");
    assert!(said.contains("password=***"), "{said}");
    assert!(!said.contains("s3cret"), "{said}");
}

fn text_of(out: &Output) -> String {
    format!("{}{}", text(&out.stdout), text(&out.stderr))
}

#[test]
fn a_wrong_command_line_exits_2_and_a_refusal_1() {
    let s0 = setup();
    let bad_set = walmgr(&["--set", "no-equals-sign", s(&s0.slave), "status"]);
    assert_eq!(bad_set.status.code(), Some(2), "{}", text(&bad_set.stderr));
    let refused = walmgr(&[s(&s0.slave), "setup"]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("needs a master config"));
}

/// `walmgr slave xpartialsync NAME OFFSET BYTES` with `stdin` as its input.
fn partialsync(s0: &Setup, name: &str, offset: usize, bytes: usize, stdin: &[u8]) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_walmgr"))
        .args([s(&s0.slave), "xpartialsync", name])
        .args([offset.to_string(), bytes.to_string()])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run walmgr");
    // The command may refuse before reading all of it: a broken pipe is its answer.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn xpartialsync_refuses_each_kind_of_bad_input_and_keeps_the_file_byte_identical() {
    let s0 = setup();
    let (name, data) = segment(9);
    let partial = s0.root.join("walshipping/logs.partial").join(&name);
    fs::create_dir_all(partial.parent().unwrap()).unwrap();
    let first = partialsync(&s0, &name, 0, 20_000, &data[..20_000]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    let held = fs::read(&partial).unwrap();
    assert_eq!(held.len(), MB, "padded to the segment size");
    assert_eq!(held[..20_000], data[..20_000]);

    let junk = vec![0x77u8; 4000];
    for (what, out) in [
        (
            "past the segment size",
            partialsync(&s0, &name, MB - 100, 4000, &junk),
        ),
        (
            "a gap",
            partialsync(&s0, &name, 25_000, 4000, &data[25_000..29_000]),
        ),
        (
            "fewer bytes than announced",
            partialsync(&s0, &name, 20_000, 4000, &data[20_000..22_000]),
        ),
        (
            "not a WAL segment name",
            partialsync(&s0, "00000001.history", 0, 4000, &junk),
        ),
        (
            "bytes that differ from those held",
            partialsync(&s0, &name, 10_000, 4000, &junk),
        ),
    ] {
        assert_eq!(out.status.code(), Some(1), "{what}");
        assert!(!text(&out.stderr).is_empty(), "{what}: no reason given");
        assert_eq!(fs::read(&partial).unwrap(), held, "{what} changed the file");
    }

    let resend = partialsync(&s0, &name, 8192, 11_808, &data[8192..20_000]);
    assert!(resend.status.success(), "{}", text(&resend.stderr));
    assert_eq!(
        fs::read(&partial).unwrap(),
        held,
        "an identical resend changed the file"
    );

    // Offset 0 with other bytes: the master restarted and rewrote its tail.
    let mut again = data[..12_000].to_vec();
    again[11_000..].fill(0x33);
    let restart = partialsync(&s0, &name, 0, 12_000, &again);
    assert!(restart.status.success(), "{}", text(&restart.stderr));
    let now = fs::read(&partial).unwrap();
    assert_eq!(now[..12_000], again[..]);
    assert!(now[12_000..].iter().all(|b| *b == 0));
}

/// `walmgr args...` with HOME at `home`: ~/.pgpass is `home/.pgpass`.
fn walmgr_at_home(home: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_walmgr"))
        .args(args)
        .env("HOME", home)
        .output()
        .expect("run walmgr")
}

const OTHER_PGPASS_LINES: &str = "# mine\r\n\
                                  db.example:5432:*:app:app-pw\r\n\
                                  \n\
                                  master.example:5433:postgres:rep:not-replication\n";

fn mode_of(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn add_password_puts_one_private_line_in_pgpass_and_never_shows_the_password() {
    use std::os::unix::fs::PermissionsExt;
    let s0 = setup();
    let mut slave = fs::read_to_string(&s0.slave).unwrap();
    slave.push_str(
        "primary_conninfo = host=master.example port=5433 user=rep application_name=s1\n",
    );
    fs::write(&s0.slave, slave).unwrap();
    let home = s0.root.join("home");
    fs::create_dir(&home).unwrap();
    let pgpass = home.join(".pgpass");
    fs::write(&pgpass, OTHER_PGPASS_LINES).unwrap();
    fs::set_permissions(&pgpass, fs::Permissions::from_mode(0o644)).unwrap();
    let password = s0.root.join("password");
    fs::write(&password, "s3:cr\\et\nsecond line\n").unwrap();
    let add = format!("--add-password={}", password.display());
    let said_nothing_secret = |out: &Output| {
        let said = text_of(out);
        assert!(!said.contains("s3"), "the password shows: {said}");
        assert!(!said.contains("second line"), "the file shows: {said}");
        said
    };

    for dry in [vec!["-n"], vec!["-n", "-vv"]] {
        let mut args = vec![s(&s0.slave), add.as_str()];
        args.extend(dry);
        let out = walmgr_at_home(&home, &args);
        assert!(out.status.success(), "{}", text_of(&out));
        let said = said_nothing_secret(&out);
        assert!(
            said.contains("would: add a password for master.example:5433 user rep in"),
            "{said}"
        );
        assert_eq!(fs::read_to_string(&pgpass).unwrap(), OTHER_PGPASS_LINES);
    }

    let out = walmgr_at_home(&home, &[s(&s0.slave), &add, "-vv"]);
    assert!(out.status.success(), "{}", text_of(&out));
    said_nothing_secret(&out);
    let ours = "master.example:5433:replication:rep:s3\\:cr\\\\et\n";
    assert_eq!(
        fs::read_to_string(&pgpass).unwrap(),
        format!("{OTHER_PGPASS_LINES}{ours}")
    );
    assert_eq!(
        mode_of(&pgpass),
        0o600,
        "libpq ignores a .pgpass others can read"
    );

    // A new password replaces the line; nothing else moves.
    fs::write(&password, "n3w\n").unwrap();
    let out = walmgr_at_home(&home, &[s(&s0.slave), &add]);
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(!text_of(&out).contains("n3w"), "{}", text_of(&out));
    assert_eq!(
        fs::read_to_string(&pgpass).unwrap(),
        format!("{OTHER_PGPASS_LINES}master.example:5433:replication:rep:n3w\n")
    );

    let out = walmgr_at_home(&home, &[s(&s0.slave), "--remove-password", "-n", "-v"]);
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(
        text_of(&out).contains("would: remove a password for master.example:5433 user rep"),
        "{}",
        text_of(&out)
    );
    assert!(!text_of(&out).contains("n3w"), "{}", text_of(&out));
    let out = walmgr_at_home(&home, &[s(&s0.slave), "--remove-password", "-v"]);
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(!text_of(&out).contains("n3w"), "{}", text_of(&out));
    assert_eq!(
        fs::read(&pgpass).unwrap(),
        OTHER_PGPASS_LINES.as_bytes(),
        "the other lines are not byte-identical"
    );
    let again = walmgr_at_home(&home, &[s(&s0.slave), "--remove-password"]);
    assert_eq!(again.status.code(), Some(1));
    assert!(
        text_of(&again).contains("nothing removed"),
        "{}",
        text_of(&again)
    );
}

#[test]
fn add_password_takes_primary_conninfo_from_the_command_line_and_names_what_is_missing() {
    let s0 = setup();
    let home = s0.root.join("home");
    fs::create_dir(&home).unwrap();
    let password = s0.root.join("password");
    fs::write(&password, "s3cret").unwrap();
    let add = format!("--add-password={}", password.display());

    let out = walmgr_at_home(
        &home,
        &[
            &add,
            "--primary-conninfo=postgresql://rep:other@m:6000/x?application_name=s1",
        ],
    );
    assert!(out.status.success(), "{}", text_of(&out));
    assert!(!text_of(&out).contains("other"), "{}", text_of(&out));
    let pgpass = home.join(".pgpass");
    assert_eq!(
        fs::read_to_string(&pgpass).unwrap(),
        "m:6000:replication:rep:s3cret\n"
    );
    assert_eq!(mode_of(&pgpass), 0o600);

    // The slave config has no primary_conninfo: named, nothing written.
    let out = walmgr_at_home(&home, &[s(&s0.slave), "--remove-password"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text_of(&out).contains("has no primary_conninfo"),
        "{}",
        text_of(&out)
    );
    // No conninfo at all: a usage error.
    let out = walmgr_at_home(&home, &["--remove-password"]);
    assert_eq!(out.status.code(), Some(2), "{}", text_of(&out));
    assert!(
        text_of(&out).contains("--primary-conninfo"),
        "{}",
        text_of(&out)
    );
    // A password file that is not there is named.
    let missing = s0.root.join("no-such-password");
    let out = walmgr_at_home(
        &home,
        &[
            &format!("--add-password={}", missing.display()),
            "--primary-conninfo=host=m",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text_of(&out).contains("no-such-password"),
        "{}",
        text_of(&out)
    );
    assert_eq!(
        fs::read_to_string(&pgpass).unwrap(),
        "m:6000:replication:rep:s3cret\n"
    );
}

/// `xlock` holds the backup lock for a DBA's script after walmgr itself has exited: the
/// next taker is refused until `xrelease`, even though the pid that took it is gone.
#[test]
fn xlock_holds_until_xrelease_though_its_process_is_gone() {
    let s0 = setup();
    let lock = s0.root.join("walshipping/logs.complete/BACKUPLOCK");
    let first = walmgr(&[s(&s0.slave), "xlock"]);
    assert!(first.status.success(), "{}", text(&first.stderr));
    assert!(lock.exists());
    let second = walmgr(&[s(&s0.slave), "xlock"]);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        text(&second.stderr).contains("held until xrelease"),
        "{}",
        text(&second.stderr)
    );
    let release = walmgr(&[s(&s0.slave), "xrelease"]);
    assert!(release.status.success(), "{}", text(&release.stderr));
    assert!(!lock.exists());
    let again = walmgr(&[s(&s0.slave), "xlock"]);
    assert!(again.status.success(), "{}", text(&again.stderr));
}

/// walmgr3's quick start names `~/conf/wal-slave.ini`; `--init-slave` writes
/// `wal-slave.toml`. The manual's path works, and walmgr says which file it read.
#[test]
fn a_missing_ini_config_is_read_from_the_toml_beside_it() {
    let s0 = setup();
    let toml = s0.root.join("wal-slave.toml");
    fs::write(
        &toml,
        format!(
            "[walmgr]\nslave_data = \"{0}/standby\"\nwalmgr_data = \"{0}/walshipping\"\n",
            s0.root.display()
        ),
    )
    .unwrap();
    let out = walmgr(&[s(&s0.root.join("wal-slave.ini")), "listbackups"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let said = text(&out.stderr);
    assert!(
        said.contains("wal-slave.ini does not exist: reading")
            && said.contains(&toml.display().to_string()),
        "{said}"
    );
    // A path that is neither: the error names the path given.
    let out = walmgr(&[s(&s0.root.join("other.ini")), "listbackups"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("other.ini"));
}
