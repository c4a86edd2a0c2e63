//! walmgr's PostgreSQL extension: the archive module and the SQL API.
//!
//! Thin by design: it reads settings and server state, then calls walmgr-core. Nothing in
//! here may panic or raise an ERROR on the archive path: a failure is a logged, failed
//! attempt that PostgreSQL retries.

use pgrx::prelude::*;

mod alter_system;
mod archive_module;
mod settings;
mod sql_api;
mod status;

::pgrx::pg_module_magic!(name, version);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    settings::define();
    // Shared memory exists only when the library is preloaded; the same library is also
    // loaded by the archiver (archive_library) and by CREATE EXTENSION.
    if unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        status::init_shared_memory();
    }
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn scratch_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("walmgr-pgtest-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    fn write_master_config(dir: &std::path::Path) -> std::path::PathBuf {
        let path = dir.join("master.toml");
        let text = format!(
            "[walmgr]\nmaster_db = \"dbname=postgres\"\nmaster_data = \"/nonexistent\"\n\
             walmgr_data = \"{}/walshipping\"\n",
            dir.display()
        );
        std::fs::write(&path, text).unwrap();
        path
    }

    #[pg_test]
    fn setup_in_a_dry_run_lists_the_changes_and_makes_none() {
        let dir = scratch_dir();
        let config = write_master_config(&dir);
        let plan = Spi::get_one::<String>(&format!(
            "SELECT walmgr.setup('{}', dry_run => true)",
            config.display()
        ))
        .unwrap()
        .unwrap();
        assert!(
            plan.contains("ALTER SYSTEM SET archive_library = 'walmgr'"),
            "{plan}"
        );
        assert!(plan.contains("create directory"), "{plan}");
        assert!(!dir.join("walshipping").exists());
        let library = Spi::get_one::<String>("SELECT current_setting('archive_library')")
            .unwrap()
            .unwrap();
        assert_eq!(library, "");
    }

    #[pg_test]
    fn setup_creates_the_slave_directories_and_says_a_restart_is_needed() {
        let dir = scratch_dir();
        let config = write_master_config(&dir);
        let report =
            Spi::get_one::<String>(&format!("SELECT walmgr.setup('{}')", config.display()))
                .unwrap()
                .unwrap();
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
        assert!(
            report.lines().last().unwrap().starts_with("restart needed"),
            "{report}"
        );
        let auto = std::fs::read_to_string(
            Spi::get_one::<String>("SELECT current_setting('data_directory')")
                .unwrap()
                .unwrap()
                + "/postgresql.auto.conf",
        )
        .unwrap();
        assert!(auto.contains("archive_library = 'walmgr'"), "{auto}");
        // Leave the test server as we found it.
        Spi::get_one::<String>("SELECT walmgr.stop()").unwrap();
        Spi::run("ALTER SYSTEM RESET ALL").unwrap();
    }

    #[pg_test]
    fn setup_without_a_config_names_the_setting() {
        let err = std::panic::catch_unwind(|| {
            Spi::get_one::<String>("SELECT walmgr.setup()").unwrap();
        });
        assert!(err.is_err());
    }

    #[pg_test]
    fn a_broken_config_is_refused_with_its_line() {
        let dir = scratch_dir();
        let path = dir.join("broken.toml");
        std::fs::write(&path, "[walmgr]\nmaster_data = \"/x\"\nno_such_key = 1\n").unwrap();
        let result = Spi::get_one::<String>(&format!(
            "SELECT walmgr.setup('{}', dry_run => true)",
            path.display()
        ));
        let err = format!("{result:?}");
        assert!(result.is_err(), "{err}");
    }

    #[pg_test]
    fn status_has_one_row_with_the_waiting_count() {
        let waiting = Spi::get_one::<i64>("SELECT files_waiting FROM walmgr.status")
            .unwrap()
            .unwrap();
        assert!(waiting >= 0);
        let rows = Spi::get_one::<i64>("SELECT count(*) FROM walmgr.status")
            .unwrap()
            .unwrap();
        assert_eq!(rows, 1);
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
