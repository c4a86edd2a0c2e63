//! Connection services: `service=NAME` (or `PGSERVICE`) takes settings from the `[NAME]`
//! section of a service file, as libpq's `parseServiceInfo()` does:
//! - the user's file is read first: `servicefile=` (PostgreSQL 18), else `PGSERVICEFILE`,
//!   else `~/.pg_service.conf`; if it has the section, the system file is not read at all;
//! - then `PGSYSCONFDIR/pg_service.conf` (libpq's compiled-in directory when unset; Debian's
//!   is `/etc/postgresql-common`);
//! - a file that does not exist is skipped; a service found in neither is an error;
//! - inside the section, `keyword=value` lines; surrounding whitespace of the line is
//!   dropped, but not around `=` (`host = x` is the keyword "host ", a syntax error, as in
//!   libpq); `#` lines and blank lines are skipped; the section ends at the next `[`;
//! - a setting never overrides one the connection string made, nor an earlier line of the
//!   section; environment variables come after the service (they fill only what is left);
//! - an unknown keyword, a line without `=` or a nested `service=` is an error naming the
//!   file and line.

use std::fs;
use std::path::{Path, PathBuf};

use super::keywords;
use crate::error::{Error, Origin, Result};

/// One `keyword=value` line of a service's section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Setting {
    pub keyword: String,
    pub value: String,
    pub line: usize,
}

/// The settings of `[service]` in the file `text` (read from `file`), in file order, or
/// None when the file has no such section.
pub fn section(text: &str, file: &Path, service: &str) -> Result<Option<Vec<Setting>>> {
    let mut found: Option<Vec<Setting>> = None;
    for (index, raw) in text.split('\n').enumerate() {
        let number = index + 1;
        let line = raw.trim_matches(|c: char| c.is_ascii_whitespace());
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[') {
            if found.is_some() {
                // The next section ends ours; what follows is not read.
                break;
            }
            // libpq compares the name and then wants `]` right after it; anything after
            // the `]` is not looked at.
            if name
                .strip_prefix(service)
                .is_some_and(|after| after.starts_with(']'))
            {
                found = Some(Vec::new());
            }
            continue;
        }
        let Some(settings) = found.as_mut() else {
            continue;
        };
        let err = |key: Option<&str>, message: String| {
            Error::config(Origin::Line(file.to_path_buf(), number), key, message)
        };
        let Some((keyword, value)) = line.split_once('=') else {
            return Err(err(
                None,
                format!(
                    "syntax error in the section of service \"{service}\": a line without \
                     \"=\" (the form is keyword=value, no spaces around \"=\")"
                ),
            ));
        };
        if keyword == "service" || keyword == "servicefile" {
            return Err(err(
                Some(keyword),
                "nested service specifications are not supported in a service file: \
                 copy that service's settings here"
                    .to_string(),
            ));
        }
        if keywords::find(keyword).is_none() {
            return Err(err(
                None,
                format!(
                    "syntax error in the section of service \"{service}\": {keyword:?} is not \
                     a libpq connection keyword{}",
                    if keyword.trim() != keyword {
                        " (libpq allows no spaces around \"=\")"
                    } else {
                        ""
                    }
                ),
            ));
        }
        settings.push(Setting {
            keyword: keyword.to_string(),
            value: value.to_string(),
            line: number,
        });
    }
    Ok(found)
}

/// Where a service's settings were found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub file: PathBuf,
    pub settings: Vec<Setting>,
}

/// The settings of `service`: from `user_file` if it has the section, else from
/// `system_file`. Files that do not exist are skipped; a service in neither is an error.
pub fn lookup(service: &str, user_file: Option<&Path>, system_file: &Path) -> Result<Found> {
    let mut looked_in = Vec::new();
    for file in user_file.into_iter().chain([system_file]) {
        // libpq skips a file it cannot stat; one it cannot open after that is an error.
        if fs::metadata(file).is_err() {
            looked_in.push(format!("{} (absent)", file.display()));
            continue;
        }
        let bytes = fs::read(file).map_err(|e| Error::io("read the service file", file, e))?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::config(
                Origin::File(file.to_path_buf()),
                None,
                "the service file is not UTF-8 text",
            )
        })?;
        if let Some(settings) = section(&text, file, service)? {
            return Ok(Found {
                file: file.to_path_buf(),
                settings,
            });
        }
        looked_in.push(file.display().to_string());
    }
    Err(Error::Connection {
        origin: format!("service \"{service}\""),
        message: format!(
            "definition of service \"{service}\" not found (looked in {}; set PGSERVICEFILE \
             or PGSYSCONFDIR to where it is defined)",
            looked_in.join(", ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str, service: &str) -> Option<Vec<(String, String, usize)>> {
        section(text, Path::new("/etc/pg_service.conf"), service)
            .unwrap()
            .map(|s| {
                s.into_iter()
                    .map(|s| (s.keyword, s.value, s.line))
                    .collect()
            })
    }

    fn error(text: &str, service: &str) -> String {
        section(text, Path::new("/etc/pg_service.conf"), service)
            .unwrap_err()
            .to_string()
    }

    const FILE: &str = "# services\n\
                        [other]\n\
                        host=elsewhere\n\
                        \n\
                        [master]\n\
                        host=master.example\n\
                        \t port=5433  \n\
                        # a comment\n\
                        dbname=postgres\n\
                        [after]\n\
                        host=after\n";

    #[test]
    fn the_named_section_is_read_and_ends_at_the_next() {
        assert_eq!(
            settings(FILE, "master").unwrap(),
            [
                ("host".into(), "master.example".into(), 6),
                ("port".into(), "5433".into(), 7),
                ("dbname".into(), "postgres".into(), 9),
            ]
        );
        assert_eq!(settings(FILE, "none"), None);
        // A name that only starts like another is not it.
        assert_eq!(settings(FILE, "mast"), None);
        assert_eq!(settings(FILE, "masterx"), None);
        // Only the first section of that name counts.
        let twice = "[s]\nhost=a\n[s]\nhost=b\n";
        assert_eq!(
            settings(twice, "s").unwrap(),
            [("host".into(), "a".into(), 2)]
        );
        // Text after `]` is not looked at, as in libpq.
        assert_eq!(settings("[s] trailing\nport=1\n", "s").unwrap().len(), 1);
    }

    #[test]
    fn values_keep_inner_and_equals_signs_but_not_line_edges() {
        let text = "[s]\noptions=-c search_path=a,b\r\napplication_name=a b\n";
        assert_eq!(
            settings(text, "s").unwrap(),
            [
                ("options".into(), "-c search_path=a,b".into(), 2),
                ("application_name".into(), "a b".into(), 3),
            ]
        );
    }

    #[test]
    fn errors_name_the_file_and_line() {
        let err = error("[s]\nhost=a\nhost\n", "s");
        assert!(err.starts_with("/etc/pg_service.conf:3: "), "{err}");
        assert!(err.contains("without \"=\""), "{err}");
        let err = error("[s]\nhots=a\n", "s");
        assert!(err.starts_with("/etc/pg_service.conf:2: "), "{err}");
        assert!(
            err.contains("\"hots\" is not a libpq connection keyword"),
            "{err}"
        );
        let err = error("[s]\nhost = a\n", "s");
        assert!(err.contains("no spaces around"), "{err}");
        let err = error("[s]\nservice=t\n", "s");
        assert!(err.contains(":2: key 'service': nested service"), "{err}");
        // Lines of other sections are not checked: libpq does not read them.
        assert!(settings("[t]\nnot a setting\n[s]\nhost=a\n", "s").is_some());
    }

    #[test]
    fn an_error_never_shows_a_value() {
        let err = error("[s]\npasswd=s3cret\n", "s");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn the_users_file_is_read_first_and_the_system_file_only_without_the_service() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.conf");
        let system = dir.path().join("pg_service.conf");
        fs::write(&user, "[mine]\nhost=u\n").unwrap();
        fs::write(&system, "[mine]\nhost=s\nport=1\n[theirs]\nhost=t\n").unwrap();
        let found = lookup("mine", Some(&user), &system).unwrap();
        assert_eq!(
            (found.file.as_path(), found.settings.len()),
            (user.as_path(), 1)
        );
        let found = lookup("theirs", Some(&user), &system).unwrap();
        assert_eq!(found.file, system);
        // A user file that does not exist is skipped.
        let found = lookup("mine", Some(&dir.path().join("none")), &system).unwrap();
        assert_eq!(found.file, system);
        let err = lookup("nowhere", Some(&user), &system)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("definition of service \"nowhere\" not found"),
            "{err}"
        );
        assert!(err.contains(&user.display().to_string()), "{err}");
        // A broken user file is an error even when the system file has the service.
        fs::write(&user, "[theirs]\nbad\n").unwrap();
        let err = lookup("theirs", Some(&user), &system)
            .unwrap_err()
            .to_string();
        assert!(err.contains("user.conf:2"), "{err}");
    }
}
