//! walmgr's PostgreSQL extension: the archive module and the SQL API.
//!
//! Thin by design: it reads settings and server state, then calls walmgr-core. Nothing in
//! here may panic or raise an ERROR on the archive path: a failure is a logged, failed
//! attempt that PostgreSQL retries.

use pgrx::prelude::*;

mod alter_system;
mod archive_module;
mod error;
mod logging;
mod settings;
mod sql_api;
mod status;
mod worker;

::pgrx::pg_module_magic!(name, version);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::define();
    logging::init();
    // Shared memory exists only when the library is preloaded; the same library is also
    // loaded by the archiver (archive_library) and by CREATE EXTENSION.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        status::init_shared_memory();
        worker::register();
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;
    use std::path::{Path, PathBuf};

    /// A fresh directory per test, readable by the server (tests run as its OS user).
    fn scratch_dir(test: &str) -> PathBuf {
        let dir = std::env::temp_dir().join("walmgr-pgtest").join(test);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write_master_config(dir: &Path) -> PathBuf {
        let path = dir.join("master.toml");
        let text = format!(
            "[walmgr]\nmaster_db = \"dbname=postgres\"\nmaster_data = \"/nonexistent\"\n\
             walmgr_data = \"{}/walshipping\"\n",
            dir.display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    fn setup(config: &Path, dry_run: bool) -> String {
        Spi::get_one::<String>(&format!(
            "SELECT walmgr.setup('{}', dry_run => {dry_run})",
            config.display()
        ))
        .unwrap()
        .unwrap()
    }

    #[pg_test]
    fn setup_in_a_dry_run_lists_the_changes_and_makes_none() {
        let dir = scratch_dir("dry_run");
        let config = write_master_config(&dir);
        let plan = setup(&config, true);
        let expected = format!("ALTER SYSTEM SET walmgr.config = '{}'", config.display());
        assert!(plan.contains(&expected), "{plan}");
        assert!(plan.contains("create directory"), "{plan}");
        assert!(!dir.join("walshipping").exists());
        let data = Spi::get_one::<String>("SELECT current_setting('data_directory')")
            .unwrap()
            .unwrap();
        let auto = std::fs::read_to_string(format!("{data}/postgresql.auto.conf")).unwrap();
        assert!(!auto.contains(&config.display().to_string()), "{auto}");
    }

    #[pg_test]
    fn setup_creates_the_slave_directories_and_writes_the_settings() {
        let dir = scratch_dir("setup");
        let config = write_master_config(&dir);
        let report = setup(&config, false);
        for sub in [
            "logs.complete",
            "logs.partial",
            "data.master",
            "config.backup",
        ] {
            assert!(
                dir.join("walshipping").join(sub).is_dir(),
                "{sub}: {report}"
            );
        }
        let last = report.lines().last().unwrap();
        assert!(
            last.starts_with("restart needed for archive_mode"),
            "{report}"
        );
        let data = Spi::get_one::<String>("SELECT current_setting('data_directory')")
            .unwrap()
            .unwrap();
        let auto = std::fs::read_to_string(format!("{data}/postgresql.auto.conf")).unwrap();
        assert!(auto.contains("archive_library = 'walmgr'"), "{auto}");
        assert!(
            auto.contains(&format!("walmgr.config = '{}'", config.display())),
            "{auto}"
        );

        // stop undoes the archiving settings again.
        let stopped = Spi::get_one::<String>("SELECT walmgr.stop()")
            .unwrap()
            .unwrap();
        assert!(
            stopped.contains("ALTER SYSTEM SET archive_mode = 'off'"),
            "{stopped}"
        );
        let auto = std::fs::read_to_string(format!("{data}/postgresql.auto.conf")).unwrap();
        assert!(auto.contains("archive_mode = 'off'"), "{auto}");
    }

    #[pg_test(
        error = "relative.toml: give the config as an absolute path (the server does not share your working directory)"
    )]
    fn setup_refuses_a_relative_config_path() {
        Spi::get_one::<String>("SELECT walmgr.setup('relative.toml')").unwrap();
    }

    #[pg_test(error = "/tmp/walmgr-pgtest/broken/broken.toml:3: key 'no_such_key': unknown key")]
    fn setup_refuses_a_broken_config_naming_key_and_line() {
        let dir = scratch_dir("broken");
        let path = dir.join("broken.toml");
        std::fs::write(
            &path,
            "[walmgr]\nmaster_data = \"/x\"\nno_such_key = 1\nwalmgr_data = \"/y\"\n",
        )
        .unwrap();
        setup(&path, true);
    }

    /// The SQLSTATE `sql` fails with, or "ok".
    fn sqlstate_of(sql: &str) -> String {
        Spi::run(
            "CREATE OR REPLACE FUNCTION pg_temp.sqlstate_of(q text) RETURNS text AS $$ \
             BEGIN EXECUTE q; RETURN 'ok'; \
             EXCEPTION WHEN OTHERS THEN RETURN SQLSTATE; END $$ LANGUAGE plpgsql",
        )
        .unwrap();
        sqlstate_through_helper(sql)
    }

    /// [`sqlstate_of`] through the helper it made (which only its owner may replace).
    fn sqlstate_through_helper(sql: &str) -> String {
        Spi::get_one_with_args::<String>("SELECT pg_temp.sqlstate_of($1)", &[sql.into()])
            .unwrap()
            .unwrap()
    }

    #[pg_test]
    fn each_kind_of_failure_has_its_own_sqlstate() {
        let dir = scratch_dir("sqlstates");
        let broken = dir.join("broken.toml");
        std::fs::write(&broken, "[walmgr]\nmaster_data = \"/x\"\nno_such_key = 1\n").unwrap();
        let missing = dir.join("missing.toml");
        for (sql, state) in [
            (
                format!("SELECT walmgr.setup('{}')", broken.display()),
                "F0000",
            ),
            (
                format!("SELECT walmgr.setup('{}')", missing.display()),
                "58P01",
            ),
            ("SELECT walmgr.setup('relative.toml')".to_string(), "22023"),
        ] {
            assert_eq!(sqlstate_of(&sql), state, "{sql}");
        }
    }

    /// EXECUTE granted to an ordinary role does not let it change the server: the
    /// functions check for a superuser themselves, before any side effect.
    #[pg_test]
    fn a_role_granted_execute_still_cannot_run_setup_stop_or_synch_standby() {
        Spi::run("CREATE ROLE walmgr_not_super NOSUPERUSER").unwrap();
        Spi::run(
            "GRANT EXECUTE ON FUNCTION walmgr.setup(text, boolean), walmgr.stop(boolean), \
             walmgr.synch_standby(text, boolean) TO walmgr_not_super",
        )
        .unwrap();
        sqlstate_of("SELECT 1"); // creates the helper as the superuser
        let before = Spi::get_one::<String>("SELECT current_setting('archive_mode')")
            .unwrap()
            .unwrap();
        Spi::run("SET ROLE walmgr_not_super").unwrap();
        let states: Vec<String> = [
            "SELECT walmgr.setup('/tmp/walmgr-pgtest/none.toml')",
            "SELECT walmgr.stop()",
            "SELECT walmgr.synch_standby('')",
        ]
        .iter()
        .map(|sql| sqlstate_through_helper(sql))
        .collect();
        Spi::run("RESET ROLE").unwrap();
        assert_eq!(states, ["42501", "42501", "42501"]);
        let after = Spi::get_one::<String>("SELECT current_setting('archive_mode')")
            .unwrap()
            .unwrap();
        assert_eq!(before, after);
    }

    #[pg_test]
    fn status_has_one_row_that_counts_the_files_ready_for_archiving() {
        let rows = Spi::get_one::<i64>("SELECT count(*) FROM walmgr.status")
            .unwrap()
            .unwrap();
        assert_eq!(rows, 1);
        let waiting = || {
            Spi::get_one::<i64>("SELECT files_waiting FROM walmgr.status")
                .unwrap()
                .unwrap()
        };
        let before = waiting();
        // The marks PostgreSQL leaves for the archiver (the backend's working directory is
        // the data directory): a ready file waits, a done one does not. The test server
        // does not archive, so nothing else touches them.
        let ready = std::path::Path::new("pg_wal/archive_status/0000000100000000000000FE.ready");
        let done = std::path::Path::new("pg_wal/archive_status/0000000100000000000000FD.done");
        std::fs::write(ready, b"").unwrap();
        std::fs::write(done, b"").unwrap();
        let with_one_more_ready = waiting();
        std::fs::remove_file(ready).unwrap();
        std::fs::remove_file(done).unwrap();
        assert_eq!(with_one_more_ready, before + 1);
        assert_eq!(waiting(), before);
    }

    #[pg_test]
    fn changing_functions_are_superuser_only_and_status_is_for_pg_monitor() {
        let public_can_setup = Spi::get_one::<bool>(
            "SELECT has_function_privilege('public', 'walmgr.setup(text, boolean)', 'EXECUTE')",
        )
        .unwrap()
        .unwrap();
        assert!(!public_can_setup);
        let monitor_can_read = Spi::get_one::<bool>(
            "SELECT has_table_privilege('pg_monitor', 'walmgr.status', 'SELECT')",
        )
        .unwrap()
        .unwrap();
        assert!(monitor_can_read);
    }
}

/// Required by `cargo pgrx test`.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    #[must_use]
    pub fn postgresql_conf_options() -> Vec<&'static str> {
        vec!["shared_preload_libraries = 'walmgr'"]
    }
}
