use std::path::{Path, PathBuf};

use super::*;

fn home() -> PathBuf {
    system::home_dir().expect("tests need a home directory")
}

fn ini(text: &str) -> Result<Config> {
    Config::parse(text, Path::new("/etc/walmgr/test.ini"), Format::Ini, &[])
}

fn toml(text: &str) -> Result<Config> {
    Config::parse(text, Path::new("/etc/walmgr/test.toml"), Format::Toml, &[])
}

fn set(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn err_text<T: std::fmt::Debug>(r: Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

/// The same settings regardless of which file (and format) they came from.
fn values_only(c: &Config) -> Config {
    let mut c = c.clone();
    c.source = PathBuf::new();
    c.origins.clear();
    c
}

#[test]
fn manual_master_sample_parses_verbatim() {
    let c = Config::parse(
        MANUAL_MASTER_INI,
        Path::new("wal-master.ini"),
        Format::Ini,
        &[],
    )
    .unwrap();
    assert_eq!(c.role, Role::Master);
    assert_eq!(c.job_name.as_deref(), Some("wal-master"));
    assert_eq!(c.logfile, Some(home().join("log/wal-master.log")));
    assert_eq!(c.pidfile, Some(home().join("pid/wal-master.pid")));
    assert!(c.use_skylog);
    assert_eq!(
        c.master_db.as_ref().map(|c| c.expose()),
        Some("dbname=my_db")
    );
    assert_eq!(
        c.master_data,
        Some(PathBuf::from("/var/lib/postgresql/9.1/main"))
    );
    assert_eq!(
        c.master_config,
        Some(PathBuf::from("/etc/postgresql/9.1/main/postgresql.conf"))
    );
    assert_eq!(
        c.master_bin,
        Some(PathBuf::from("/usr/lib/postgresql/9.1/bin"))
    );
    assert_eq!(c.master_restart_cmd, None);
    assert_eq!(c.slave.as_deref(), Some("slave-host"));
    assert_eq!(
        c.slave_config,
        Some(PathBuf::from("/var/lib/postgresql/conf/wal-slave.ini"))
    );
    let data = PathBuf::from("/var/lib/postgresql/walshipping");
    assert_eq!(c.walmgr_data, Some(data.clone()));
    assert_eq!(c.completed_wals, data.join("logs.complete"));
    assert_eq!(c.partial_wals, data.join("logs.partial"));
    assert_eq!(c.full_backup, data.join("data.master"));
    assert_eq!(c.config_backup, Some(data.join("config.backup")));
    assert_eq!(c.loop_delay, 10.0);
    assert!(!c.use_xlog_functions);
    assert!(!c.compression);
    assert!(c.keep_symlinks);
    assert!(!c.hot_standby);
    assert_eq!(c.command_interval, None);
    assert_eq!(c.periodic_command, None);
    assert_eq!(c.ssh_identity, None);
    assert_eq!(c.ssh_known_hosts, home().join(".ssh/known_hosts"));
    assert_eq!(c.slave_walmgr, "walmgr");
    assert_eq!(
        c.origin("loop_delay"),
        Origin::Line(PathBuf::from("wal-master.ini"), 25)
    );
    assert_eq!(
        c.origin("hot_standby"),
        Origin::File(PathBuf::from("wal-master.ini"))
    );
}

#[test]
fn manual_slave_sample_parses_verbatim() {
    let c = Config::parse(
        MANUAL_SLAVE_INI,
        Path::new("wal-slave.ini"),
        Format::Ini,
        &[],
    )
    .unwrap();
    assert_eq!(c.role, Role::Slave);
    assert_eq!(c.job_name.as_deref(), Some("wal-slave"));
    assert_eq!(c.logfile, Some(home().join("log/wal-slave.log")));
    assert_eq!(c.pidfile, None);
    assert_eq!(
        c.slave_data,
        Some(PathBuf::from("/var/lib/postgresql/9.1/main"))
    );
    assert_eq!(
        c.slave_bin,
        Some(PathBuf::from("/usr/lib/postgresql/9.1/bin"))
    );
    assert_eq!(
        c.slave_stop_cmd.as_deref(),
        Some("/etc/init.d/postgresql-9.1 stop")
    );
    assert_eq!(
        c.slave_start_cmd.as_deref(),
        Some("/etc/init.d/postgresql-9.1 start")
    );
    assert_eq!(
        c.slave_config_dir,
        Some(PathBuf::from("/etc/postgresql/9.1/main"))
    );
    assert_eq!(c.slave_pg_xlog, None);
    assert_eq!(c.walmgr_data, Some(home().join("walshipping")));
    assert_eq!(c.completed_wals, home().join("walshipping/logs.complete"));
    assert_eq!(c.partial_wals, home().join("walshipping/logs.partial"));
    assert_eq!(c.full_backup, home().join("walshipping/data.master"));
    assert_eq!(
        c.config_backup,
        Some(home().join("walshipping/config.backup"))
    );
    assert!(c.backup_datadir);
    assert_eq!(c.keep_backups, 0);
    assert_eq!(c.archive_command, None);
    assert_eq!(c.primary_conninfo, None);
    assert_eq!(c.slave, None);
}

/// `walmgr --ini` prints the manual's samples brought to a host of today: the same keys
/// with the same meaning, except the paths and commands of the host and the walmgr3 keys
/// that do nothing here, which it lists in comments instead of setting.
#[test]
fn toml_samples_say_what_the_manual_samples_say_but_the_host() {
    let host = SampleHost::debian("15", "main");
    let host_keys = [
        "master_db",
        "master_data",
        "master_config",
        "slave_data",
        "slave_bin",
        "slave_stop_cmd",
        "slave_start_cmd",
        "slave_config_dir",
        "slave_config",
    ];
    let pairs = [
        (MANUAL_MASTER_INI, sample_master_toml(&host)),
        (MANUAL_SLAVE_INI, sample_slave_toml(&host)),
    ];
    for (ini_text, toml_text) in pairs {
        let from_ini = Config::parse(ini_text, Path::new("a.ini"), Format::Ini, &[]).unwrap();
        let from_toml = Config::parse(&toml_text, Path::new("a.toml"), Format::Toml, &[]).unwrap();
        assert_eq!(from_ini.role, from_toml.role);
        for key in keys() {
            let (a, b) = (from_ini.origin(key.name), from_toml.origin(key.name));
            let set_in_ini = matches!(a, Origin::Line(..));
            let set_in_toml = matches!(b, Origin::Line(..));
            if key.does_nothing.is_some() {
                assert!(!set_in_toml, "{} is set in the sample", key.name);
            } else if !host_keys.contains(&key.name) {
                assert_eq!(set_in_ini, set_in_toml, "{}", key.name);
            }
        }
    }
}

#[test]
fn samples_have_expected_roles() {
    let host = SampleHost::debian("17", "main");
    assert_eq!(toml(&sample_master_toml(&host)).unwrap().role, Role::Master);
    assert_eq!(toml(&sample_slave_toml(&host)).unwrap().role, Role::Slave);
}

#[test]
fn format_follows_extension() {
    assert_eq!(Format::of_path(Path::new("a/b.toml")), Format::Toml);
    assert_eq!(Format::of_path(Path::new("a/b.TOML")), Format::Toml);
    assert_eq!(Format::of_path(Path::new("a/b.ini")), Format::Ini);
    assert_eq!(Format::of_path(Path::new("a/b.conf")), Format::Ini);
    assert_eq!(Format::of_path(Path::new("noext")), Format::Ini);
}

#[test]
fn load_reads_files_and_reports_io_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("slave.toml");
    std::fs::write(&path, "[walmgr]\nwalmgr_data = \"/w\"\n").unwrap();
    let c = Config::load(&path, &[]).unwrap();
    assert_eq!(c.source, path);
    assert_eq!(c.completed_wals, PathBuf::from("/w/logs.complete"));
    assert_eq!(c.job_name.as_deref(), Some("slave"));

    let missing = dir.path().join("nope.ini");
    let err = Config::load(&missing, &[]).unwrap_err();
    assert!(err.is_not_found());
    assert!(err.to_string().contains("nope.ini"), "{err}");
}

#[test]
fn dollar_interpolation() {
    let c = toml(
        "[walmgr]\n\
         walmgr_data = \"/srv/wal\"\n\
         completed_wals = \"${walmgr_data}/done\"\n\
         job_name = \"j-${host_name}\"\n\
         periodic_command = \"echo $HOME $$ $${walmgr_data} ${job_name} ${loop_delay} ${keep_symlinks}\"\n\
         loop_delay = 2.5\n\
         keep_symlinks = false\n",
    )
    .unwrap();
    assert_eq!(c.completed_wals, PathBuf::from("/srv/wal/done"));
    let job = format!("j-{}", system::host_name());
    assert_eq!(c.job_name.as_deref(), Some(job.as_str()));
    assert_eq!(
        c.periodic_command.unwrap(),
        format!("echo $HOME $$ ${{walmgr_data}} {job} 2.5 false")
    );
}

#[test]
fn dollar_interpolation_defaults_job_name_to_file_stem() {
    let c = toml("[walmgr]\nwalmgr_data = \"/w\"\nlogfile = \"/log/${job_name}.log\"\n").unwrap();
    assert_eq!(c.logfile, Some(PathBuf::from("/log/test.log")));
}

#[test]
fn dollar_interpolation_errors() {
    let e = err_text(toml(
        "[walmgr]\nwalmgr_data = \"/w\"\n\nlogfile = \"${nosuch}/x\"\n",
    ));
    assert!(
        e.starts_with("/etc/walmgr/test.toml:4: key 'logfile':"),
        "{e}"
    );
    assert!(e.contains("${nosuch}"), "{e}");

    // A known key that the file leaves unset is just as unresolvable.
    let e = err_text(toml("[walmgr]\nwalmgr_data = \"${slave_data}\"\n"));
    assert!(e.contains("test.toml:2: key 'walmgr_data'"), "{e}");
    assert!(e.contains("'slave_data' is not set"), "{e}");

    let e = err_text(toml("[walmgr]\nwalmgr_data = \"${walmgr_data\"\n"));
    assert!(e.contains("test.toml:2: key 'walmgr_data'"), "{e}");
    assert!(e.contains("bad reference"), "{e}");

    let e = err_text(toml(
        "[walmgr]\n\
         walmgr_data = \"/w\"\n\
         slave_data = \"${slave_bin}\"\n\
         slave_bin = \"${slave_pg_xlog}\"\n\
         slave_pg_xlog = \"${slave_data}/x\"\n",
    ));
    assert!(e.contains("cycle"), "{e}");
    assert!(
        e.contains("slave_data -> slave_bin -> slave_pg_xlog -> slave_data"),
        "{e}"
    );
    assert!(e.contains("test.toml:5: key 'slave_pg_xlog'"), "{e}");

    let e = err_text(toml("[walmgr]\nwalmgr_data = \"/w/${walmgr_data}\"\n"));
    assert!(e.contains("walmgr_data -> walmgr_data"), "{e}");
}

#[test]
fn percent_interpolation() {
    let c = ini("[walmgr]\n\
         WalMgr_Data = /srv/wal\n\
         completed_wals = %(WALMGR_DATA)s/done\n\
         periodic_command = date +%%Y $HOME %(service_name)s %(config_dir)s\n")
    .unwrap();
    assert_eq!(c.walmgr_data, Some(PathBuf::from("/srv/wal")));
    assert_eq!(c.completed_wals, PathBuf::from("/srv/wal/done"));
    assert_eq!(
        c.periodic_command.as_deref(),
        Some("date +%Y $HOME walmgr /etc/walmgr")
    );
    // skytools' default job_name is the file name without extension.
    let c = ini("[walmgr]\nwalmgr_data = /w\nlogfile = /log/%(job_name)s.log\n").unwrap();
    assert_eq!(c.logfile, Some(PathBuf::from("/log/test.log")));
    assert_eq!(c.job_name.as_deref(), Some("test"));
}

#[test]
fn percent_interpolation_errors() {
    let e = err_text(ini("[walmgr]\nwalmgr_data = /w\nlogfile = %(nosuch)s/x\n"));
    assert!(
        e.starts_with("/etc/walmgr/test.ini:3: key 'logfile':"),
        "{e}"
    );
    assert!(e.contains("%(nosuch)s"), "{e}");

    let e = err_text(ini(
        "[walmgr]\nwalmgr_data = /w\nperiodic_command = date +%Y\n",
    ));
    assert!(e.contains("test.ini:3: key 'periodic_command'"), "{e}");
    assert!(e.contains("%%"), "{e}");

    let e = err_text(ini("[walmgr]\nwalmgr_data = /w\nlogfile = %(job_name)d\n"));
    assert!(e.contains("test.ini:3: key 'logfile'"), "{e}");
    assert!(e.contains("bad reference"), "{e}");

    let e = err_text(ini(
        "[walmgr]\nwalmgr_data = %(full_backup)s/x\nfull_backup = %(walmgr_data)s/y\n",
    ));
    assert!(e.contains("cycle"), "{e}");
    assert!(
        e.contains("walmgr_data -> full_backup -> walmgr_data"),
        "{e}"
    );
}

/// Found writing the hostile-input properties: references that double at each level (the
/// "billion laughs") expanded until memory ran out; forty lines asked for a terabyte. Now
/// the first value past the limit is refused, naming its key and line.
#[test]
fn references_that_double_at_every_level_are_refused_not_expanded() {
    let mut text = String::from("[DEFAULT]\nv0 = ha\n");
    for level in 1..40 {
        let below = level - 1;
        text.push_str(&format!("v{level} = %(v{below})s%(v{below})s\n"));
    }
    text.push_str("[walmgr]\nwalmgr_data = /w\nperiodic_command = %(v39)s\n");
    let started = std::time::Instant::now();
    let e = err_text(ini(&text));
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    // v20 is the first past 1 MiB: 2 bytes doubled 20 times.
    assert!(e.contains("test.ini:22: key 'v20'"), "{e}");
    assert!(e.contains("more than 1 MiB"), "{e}");

    // Up to the limit, the same pattern still works.
    let mut text = String::from("[DEFAULT]\nv0 = ha\n");
    for level in 1..20 {
        let below = level - 1;
        text.push_str(&format!("v{level} = %(v{below})s%(v{below})s\n"));
    }
    text.push_str("[walmgr]\nwalmgr_data = /w\nperiodic_command = %(v19)s\n");
    let c = ini(&text).unwrap();
    assert_eq!(c.periodic_command.map(|p| p.len()), Some(1 << 20));
}

#[test]
fn ini_syntax() {
    let c = ini("; leading comment\n\
         [DEFAULT]\n\
         base = /srv\n\
         slave_walmgr = /opt/walmgr\n\
         \n\
         [other]\n\
         anything = goes\n\
         \n\
         [walmgr]\n\
         walmgr_data: %(base)s/wal\n\
         \x20 # indented comment\n\
         primary_conninfo = host=a application_name= #not-a-comment\n\
         periodic_command = first\n\
         \x20   second\n\
         \n\
         \x20   third\n\
         master_db = \"\"\n\
         host_name = myhost\n\
         job_name = %(host_name)s\n")
    .unwrap();
    assert_eq!(c.walmgr_data, Some(PathBuf::from("/srv/wal")));
    assert_eq!(c.slave_walmgr, "/opt/walmgr");
    assert_eq!(
        c.primary_conninfo.as_ref().map(|c| c.expose()),
        Some("host=a application_name= #not-a-comment")
    );
    assert_eq!(c.periodic_command.as_deref(), Some("first\nsecond\nthird"));
    assert_eq!(c.master_db, None);
    assert_eq!(c.job_name.as_deref(), Some("myhost"));
    assert_eq!(
        c.origin("walmgr_data"),
        Origin::Line("/etc/walmgr/test.ini".into(), 10)
    );
    assert_eq!(
        c.origin("slave_walmgr"),
        Origin::Line("/etc/walmgr/test.ini".into(), 4)
    );
}

#[test]
fn ini_syntax_errors() {
    let e = err_text(ini("walmgr_data = /w\n[walmgr]\n"));
    assert!(
        e.starts_with("/etc/walmgr/test.ini:1: key 'walmgr_data':"),
        "{e}"
    );
    assert!(e.contains("before any section"), "{e}");

    let e = err_text(ini("[walmgr]\nwalmgr_data = /w\nthis is not a setting\n"));
    assert!(e.starts_with("/etc/walmgr/test.ini:3:"), "{e}");

    let e = err_text(ini("[walmgr\nwalmgr_data = /w\n"));
    assert!(e.starts_with("/etc/walmgr/test.ini:1:"), "{e}");

    let e = err_text(ini("[other]\nwalmgr_data = /w\n"));
    assert_eq!(e, "/etc/walmgr/test.ini: no [walmgr] section");
}

#[test]
fn tilde_expands_only_in_paths() {
    let c = toml(
        "[walmgr]\n\
         walmgr_data = \"~\"\n\
         slave_data = \"~/data\"\n\
         pidfile = \"/x/~/y\"\n\
         slave_walmgr = \"~/bin/walmgr\"\n\
         slave_stop_cmd = \"~/stop.sh\"\n",
    )
    .unwrap();
    assert_eq!(c.walmgr_data, Some(home()));
    assert_eq!(c.completed_wals, home().join("logs.complete"));
    assert_eq!(c.slave_data, Some(home().join("data")));
    assert_eq!(c.pidfile, Some(PathBuf::from("/x/~/y")));
    assert_eq!(c.slave_walmgr, "~/bin/walmgr");
    assert_eq!(c.slave_stop_cmd.as_deref(), Some("~/stop.sh"));

    let e = err_text(toml(
        "[walmgr]\nwalmgr_data = \"/w\"\nslave_bin = \"~no_such_user_walmgr_test/bin\"\n",
    ));
    assert!(e.contains("test.toml:3: key 'slave_bin'"), "{e}");
}

#[test]
fn overrides_apply_before_interpolation() {
    let over = set(&[("walmgr_data", "/elsewhere"), ("compression", "yes")]);
    let c = Config::parse(MANUAL_MASTER_INI, Path::new("m.ini"), Format::Ini, &over).unwrap();
    assert_eq!(c.completed_wals, PathBuf::from("/elsewhere/logs.complete"));
    assert_eq!(
        c.config_backup,
        Some(PathBuf::from("/elsewhere/config.backup"))
    );
    assert!(c.compression);
    assert_eq!(c.origin("walmgr_data"), Origin::CommandLine);
    assert_eq!(c.origin("completed_wals"), Origin::Line("m.ini".into(), 19));

    let over = set(&[("walmgr_data", "/elsewhere")]);
    let c = Config::parse(
        &sample_slave_toml(&SampleHost::debian("15", "main")),
        Path::new("s.toml"),
        Format::Toml,
        &over,
    )
    .unwrap();
    assert_eq!(c.full_backup, PathBuf::from("/elsewhere/data.master"));

    // Overrides can also turn a master config into a slave one and back.
    let over = set(&[("master_data", "")]);
    let c = Config::parse(MANUAL_MASTER_INI, Path::new("m.ini"), Format::Ini, &over).unwrap();
    assert_eq!(c.role, Role::Slave);
    let over = set(&[("master_data", "/pg")]);
    let c = Config::parse(
        &sample_slave_toml(&SampleHost::debian("15", "main")),
        Path::new("s.toml"),
        Format::Toml,
        &over,
    )
    .unwrap();
    assert_eq!(c.role, Role::Master);
}

#[test]
fn override_errors() {
    let over = set(&[("no_such_key", "1")]);
    let e = err_text(Config::parse(
        MANUAL_SLAVE_INI,
        Path::new("s.ini"),
        Format::Ini,
        &over,
    ));
    assert_eq!(e, "--set: key 'no_such_key': unknown key");

    let over = set(&[("keep_backups", "many")]);
    let e = err_text(Config::parse(
        MANUAL_SLAVE_INI,
        Path::new("s.ini"),
        Format::Ini,
        &over,
    ));
    assert!(
        e.starts_with("--set: key 'keep_backups': must be a non-negative integer"),
        "{e}"
    );
}

#[test]
fn parse_overrides_splits_commas_and_repeats() {
    let args = vec![
        "a=1, B = two ".to_owned(),
        "c=x=y".to_owned(),
        "d=,".to_owned(),
    ];
    assert_eq!(
        parse_overrides(&args).unwrap(),
        set(&[("a", "1"), ("b", "two"), ("c", "x=y"), ("d", "")])
    );
    assert!(parse_overrides(&[]).unwrap().is_empty());

    let e = parse_overrides(&["a=1,oops".to_owned()]).unwrap_err();
    assert!(matches!(e, Error::Usage(_)));
    assert!(e.to_string().contains("\"oops\""), "{e}");
    let e = parse_overrides(&["=1".to_owned()]).unwrap_err();
    assert!(matches!(e, Error::Usage(_)));
}

#[test]
fn unknown_key_names_key_and_line() {
    let e = err_text(toml(
        "[walmgr]\nwalmgr_data = \"/w\"\ncompleted_wal = \"/x\"\n",
    ));
    assert_eq!(
        e,
        "/etc/walmgr/test.toml:3: key 'completed_wal': unknown key (did you mean 'completed_wals'?)"
    );
    let e = err_text(ini("[walmgr]\nwalmgr_data = /w\n\nFrobnicate = 1\n"));
    assert_eq!(e, "/etc/walmgr/test.ini:4: key 'frobnicate': unknown key");
    // skytools' interpolation variables are only tolerated in walmgr3 files.
    let e = err_text(toml("[walmgr]\nwalmgr_data = \"/w\"\nhost_name = \"h\"\n"));
    assert!(
        e.contains("test.toml:3: key 'host_name': unknown key"),
        "{e}"
    );
}

#[test]
fn wrong_type_names_key_and_line() {
    let e = err_text(toml("[walmgr]\nwalmgr_data = \"/w\"\nkeep_backups = -1\n"));
    assert_eq!(
        e,
        "/etc/walmgr/test.toml:3: key 'keep_backups': must be a non-negative integer, not -1"
    );
    let e = err_text(toml("[walmgr]\nwalmgr_data = 5\n"));
    assert_eq!(
        e,
        "/etc/walmgr/test.toml:2: key 'walmgr_data': must be a path (string), not 5"
    );
    let e = err_text(toml(
        "[walmgr]\nwalmgr_data = \"/w\"\ncompression = \"maybe\"\n",
    ));
    assert!(
        e.starts_with("/etc/walmgr/test.toml:3: key 'compression': must be a boolean"),
        "{e}"
    );
    assert!(e.contains("\"maybe\""), "{e}");
    let e = err_text(toml(
        "[walmgr]\nwalmgr_data = \"/w\"\nloop_delay = \"soon\"\n",
    ));
    assert!(e.contains("test.toml:3: key 'loop_delay'"), "{e}");
    let e = err_text(toml(
        "[walmgr]\nwalmgr_data = \"/w\"\nnetwork_timeout = 5\n",
    ));
    assert!(
        e.starts_with(
            "/etc/walmgr/test.toml:3: key 'network_timeout': must be at least 10 seconds"
        ),
        "{e}"
    );
    let c = toml("[walmgr]\nwalmgr_data = \"/w\"\n").unwrap();
    assert_eq!(c.network_timeout, 120.0);
    let e = err_text(toml("[walmgr]\nwalmgr_data = \"/w\"\nloop_delay = -1.0\n"));
    assert!(e.contains("test.toml:3: key 'loop_delay'"), "{e}");
    let e = err_text(toml(
        "[walmgr]\nwalmgr_data = \"/w\"\nslave = [\"a\", \"b\"]\n",
    ));
    assert_eq!(
        e,
        "/etc/walmgr/test.toml:3: key 'slave': must be a string, not array"
    );
    let e = err_text(ini("[walmgr]\nwalmgr_data = /w\nkeep_backups = 1.5\n"));
    assert!(
        e.starts_with("/etc/walmgr/test.ini:3: key 'keep_backups'"),
        "{e}"
    );
}

#[test]
fn numbers() {
    let c = toml(
        "[walmgr]\nwalmgr_data = \"/w\"\nloop_delay = 3\ncommand_interval = 600\nkeep_backups = 4\n",
    )
    .unwrap();
    assert_eq!(c.loop_delay, 3.0);
    assert_eq!(c.command_interval, Some(600.0));
    assert_eq!(c.keep_backups, 4);
    let c = toml("[walmgr]\nwalmgr_data = \"/w\"\nloop_delay = \"0.5\"\nkeep_backups = \"12\"\n")
        .unwrap();
    assert_eq!(c.loop_delay, 0.5);
    assert_eq!(c.keep_backups, 12);
}

#[test]
fn bad_toml_syntax_names_line() {
    let e = err_text(toml("[walmgr]\nwalmgr_data = \"/w\"\nslave = \n"));
    assert!(
        e.starts_with("/etc/walmgr/test.toml:3: invalid TOML"),
        "{e}"
    );
    let e = err_text(toml(
        "[walmgr]\nwalmgr_data = \"/w\"\nwalmgr_data = \"/v\"\n",
    ));
    assert!(
        e.starts_with("/etc/walmgr/test.toml:3: invalid TOML"),
        "{e}"
    );
}

#[test]
fn toml_structure_errors() {
    let e = err_text(toml("walmgr_data = \"/w\"\n[walmgr]\n"));
    assert!(
        e.starts_with("/etc/walmgr/test.toml:1: key 'walmgr_data': set outside"),
        "{e}"
    );
    let e = err_text(toml("[walmgr]\nwalmgr_data = \"/w\"\n\n[extra]\nx = 1\n"));
    assert!(
        e.starts_with("/etc/walmgr/test.toml:4: unexpected table [extra]"),
        "{e}"
    );
    let e = err_text(toml("# nothing\n"));
    assert_eq!(e, "/etc/walmgr/test.toml: no [walmgr] table");
    let e = err_text(toml("walmgr = 1\n"));
    assert!(
        e.starts_with("/etc/walmgr/test.toml:1: key 'walmgr': must be a table"),
        "{e}"
    );
}

#[test]
fn missing_walmgr_data() {
    let e = err_text(toml(
        "[walmgr]\nslave_data = \"/pg\"\ncompleted_wals = \"/c\"\n",
    ));
    assert_eq!(
        e,
        "/etc/walmgr/test.toml: key 'walmgr_data': not set, and neither is partial_wals, \
         full_backup; set walmgr_data, or all of completed_wals, partial_wals and full_backup"
    );
    // An empty value counts as not set.
    let e = err_text(ini("[walmgr]\nwalmgr_data =\n"));
    assert!(e.contains("key 'walmgr_data': not set"), "{e}");

    let c =
        toml("[walmgr]\ncompleted_wals = \"/c\"\npartial_wals = \"/p\"\nfull_backup = \"/f\"\n")
            .unwrap();
    assert_eq!(c.walmgr_data, None);
    assert_eq!(c.config_backup, None);
    assert_eq!(c.completed_wals, PathBuf::from("/c"));
}

#[test]
fn missing_names_key_and_command() {
    let c = Config::parse(
        "[walmgr]\nwalmgr_data = \"/w\"\nslave_data = \"\"\n",
        Path::new("master.toml"),
        Format::Toml,
        &[],
    )
    .unwrap();
    assert_eq!(
        c.missing("slave_bin", "restore").to_string(),
        "master.toml: key 'slave_bin': required by `restore` but not set"
    );
    // Set but empty: the line is the more useful pointer.
    assert_eq!(
        c.missing("slave_data", "restore").to_string(),
        "master.toml:3: key 'slave_data': required by `restore` but not set"
    );
}

#[test]
fn empty_slave_means_local() {
    let c = ini("[walmgr]\nwalmgr_data = /w\nmaster_data = /pg\nslave =\n").unwrap();
    assert_eq!(c.slave, None);
    assert_eq!(c.role, Role::Master);
    let c = toml("[walmgr]\nwalmgr_data = \"/w\"\nslave = \"\"\n").unwrap();
    assert_eq!(c.slave, None);
    let c = toml("[walmgr]\nwalmgr_data = \"/w\"\nslave = \"u@h:2222\"\n").unwrap();
    assert_eq!(c.slave.as_deref(), Some("u@h:2222"));
}

#[test]
fn role_detection() {
    let c = toml("[walmgr]\nwalmgr_data = \"/w\"\nmaster_data = \"/pg\"\n").unwrap();
    assert_eq!(c.role, Role::Master);
    // Slave keys in a master file and vice versa are allowed, as in walmgr3.
    let c = toml("[walmgr]\nwalmgr_data = \"/w\"\nmaster_db = \"host=x\"\nslave_data = \"/pg\"\n")
        .unwrap();
    assert_eq!(c.role, Role::Slave);
}

#[test]
fn boolean_forms() {
    let cases = [
        ("true", true),
        ("false", false),
        ("1", true),
        ("0", false),
        ("2", true),
        ("\"yes\"", true),
        ("\"No\"", false),
        ("\"on\"", true),
        ("\"OFF\"", false),
        ("\"true\"", true),
        ("\"False\"", false),
        ("\"1\"", true),
        ("\"0\"", false),
    ];
    for (written, expected) in cases {
        let c = toml(&format!(
            "[walmgr]\nwalmgr_data = \"/w\"\nhot_standby = {written}\nkeep_symlinks = {written}\n"
        ))
        .unwrap();
        assert_eq!(c.hot_standby, expected, "{written}");
        assert_eq!(c.keep_symlinks, expected, "{written}");
    }
    for (written, expected) in [("yes", true), ("off", false), ("TRUE", true), ("0", false)] {
        let c = ini(&format!(
            "[walmgr]\nwalmgr_data = /w\nbackup_datadir = {written}\n"
        ))
        .unwrap();
        assert_eq!(c.backup_datadir, expected, "{written}");
    }
    // Empty means unset, so the default applies.
    let c = ini("[walmgr]\nwalmgr_data = /w\nbackup_datadir =\nkeep_symlinks =\n").unwrap();
    assert!(c.backup_datadir);
    assert!(c.keep_symlinks);
}

#[test]
fn init_master_rsync_paths_lose_slave_prefix() {
    // What walmgr3 --init-master wrote.
    let c = ini("[walmgr]\n\
         master_data = /pg\n\
         slave = backup1\n\
         walmgr_data = /srv/wal\n\
         completed_wals = %(slave)s:%(walmgr_data)s/logs.complete\n\
         partial_wals = %(slave)s:%(walmgr_data)s/logs.partial\n\
         full_backup = %(slave)s:%(walmgr_data)s/data.master\n\
         config_backup = %(slave)s:%(walmgr_data)s/config.backup\n")
    .unwrap();
    assert_eq!(c.completed_wals, PathBuf::from("/srv/wal/logs.complete"));
    assert_eq!(c.partial_wals, PathBuf::from("/srv/wal/logs.partial"));
    assert_eq!(c.full_backup, PathBuf::from("/srv/wal/data.master"));
    assert_eq!(
        c.config_backup,
        Some(PathBuf::from("/srv/wal/config.backup"))
    );
}

#[test]
fn additions() {
    let c = toml(
        "[walmgr]\nwalmgr_data = \"/w\"\nssh_identity = \"~/.ssh/id\"\n\
         ssh_known_hosts = \"/etc/kh\"\nslave_walmgr = \"/usr/local/bin/walmgr\"\n",
    )
    .unwrap();
    assert_eq!(c.ssh_identity, Some(home().join(".ssh/id")));
    assert_eq!(c.ssh_known_hosts, PathBuf::from("/etc/kh"));
    assert_eq!(c.slave_walmgr, "/usr/local/bin/walmgr");
}

/// A key in the table that the loader forgot would parse without complaint and configure
/// nothing. Each key is set to two different values in an otherwise equal file: if the two
/// loaded configs are equal, the value never reached `Config`.
#[test]
fn every_key_in_the_table_reaches_config() {
    // The minimum a config must set; the key under test replaces its line if it is one of them.
    let base = [
        ("completed_wals", "\"/c\""),
        ("partial_wals", "\"/p\""),
        ("full_backup", "\"/f\""),
    ];
    let file_setting = |key: &str, value: &str| {
        let mut text = format!("[walmgr]\n{key} = {value}\n");
        for (k, v) in base.iter().filter(|(k, _)| *k != key) {
            text.push_str(&format!("{k} = {v}\n"));
        }
        text
    };
    for &keys::Key {
        name: key, kind, ..
    } in keys::KEYS
    {
        let (one, other) = match kind {
            Kind::Text => ("\"one\"", "\"other\""),
            Kind::Conninfo => ("\"host=one\"", "\"host=other\""),
            Kind::Path => ("\"/one\"", "\"/other\""),
            Kind::Bool => ("true", "false"),
            Kind::Seconds => ("10.5", "20"),
            Kind::Count => ("1", "2"),
        };
        let load = |value| {
            toml(&file_setting(key, value))
                .unwrap_or_else(|e| panic!("{key} = {value} does not load: {e}"))
        };
        assert_ne!(
            values_only(&load(one)),
            values_only(&load(other)),
            "{key} = {one} and {key} = {other} load the same config: {key} is not loaded"
        );
    }
}

#[test]
fn a_missing_ini_path_stands_for_the_toml_that_init_wrote_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let ini = dir.path().join("wal-master.ini");
    let toml = dir.path().join("wal-master.toml");

    // Neither exists: the path given is read, and its error names it.
    assert_eq!(Located::find(&ini).path, ini);

    std::fs::write(&toml, "[walmgr]\nslave_data = \"/s\"\n").unwrap();
    let found = Located::find(&ini);
    assert_eq!(found.path, toml);
    let note = found.note().unwrap();
    assert!(note.contains("wal-master.ini does not exist") && note.contains("wal-master.toml"));

    // A walmgr3 .ini that exists is the one read, whatever lies beside it.
    std::fs::write(&ini, "[walmgr]\nslave_data = /s\n").unwrap();
    assert_eq!(
        Located::find(&ini),
        Located {
            path: ini.clone(),
            instead_of: None
        }
    );
    // Only .ini paths fall back: a missing .conf is an error about the .conf.
    let conf = dir.path().join("wal-master.conf");
    assert_eq!(Located::find(&conf).path, conf);
}
