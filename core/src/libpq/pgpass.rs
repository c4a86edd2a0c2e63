//! Reading a password file (`~/.pgpass`, `PGPASSFILE`, `passfile=`) as libpq's
//! `passwordFromFile()` does, rule for rule, so that a file that works with psql works with
//! walmgr and one that psql ignores is ignored here too:
//! - the file must be a plain file with no group or world permission (0600 or stricter);
//!   otherwise it is ignored with a warning, as libpq does (not an error: the server may not
//!   even ask for a password);
//! - lines are `host:port:database:user:password`; `#` at the very start makes a comment;
//!   a trailing `\n` or `\r\n` is dropped;
//! - a field that is exactly `*` matches anything; `\` makes the next character literal, so
//!   `\:` and `\\` are a colon and a backslash, and `\*` is a star that matches only a star;
//! - the first line whose four fields all match wins; later ones are never read;
//! - the host is the connection's `host` (else its `hostaddr`); no host at all, and a Unix
//!   socket in libpq's default directory, are matched as `localhost`. Any other socket
//!   directory is matched by its path, written as it is in the connection string;
//! - the port is matched as written (`5432` when none was given), not as a number.
//!
//! The password this returns is a [`Secret`]: no Debug or Display shows it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::{Secret, DEFAULT_HOST, DEFAULT_PORT, DEFAULT_SOCKET_DIR};

/// What one connection attempt is looked up as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted<'a> {
    pub host: &'a str,
    pub port: &'a str,
    pub dbname: &'a str,
    pub user: &'a str,
}

impl Wanted<'_> {
    /// The host as libpq matches it: "" and the default socket directory are `localhost`.
    /// Only an exact spelling of the default directory counts (libpq compares strings: it
    /// does not canonicalize the path), so `/run/postgresql` is matched by its path.
    fn host_field(&self) -> &str {
        if self.host.is_empty() || self.host == DEFAULT_SOCKET_DIR {
            DEFAULT_HOST
        } else {
            self.host
        }
    }

    fn port_field(&self) -> &str {
        if self.port.is_empty() {
            DEFAULT_PORT
        } else {
            self.port
        }
    }
}

/// Where a password came from, for the hint on a failed login ("password retrieved from
/// file ..."): never the password itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub password: Secret,
    pub file: PathBuf,
    pub line: usize,
}

/// The password `file` holds for `wanted`, or None: no file, a file libpq would ignore
/// (with the same warning), or no matching line. libpq gives up on an empty database or
/// user name before it opens the file.
pub fn lookup(file: &Path, wanted: &Wanted) -> Option<Found> {
    if wanted.dbname.is_empty() || wanted.user.is_empty() {
        return None;
    }
    // stat, not lstat: libpq follows a symlink to the real file and judges that.
    let meta = fs::metadata(file).ok()?;
    if !meta.file_type().is_file() {
        tracing::warn!(
            "password file \"{}\" is not a plain file; it is ignored",
            file.display()
        );
        return None;
    }
    if meta.permissions().mode() & 0o077 != 0 {
        // libpq's own words, so a DBA who has seen psql say it recognizes it.
        tracing::warn!(
            "password file \"{}\" has group or world access; permissions should be u=rw \
             (0600) or less; it is ignored (chmod 0600 {})",
            file.display(),
            file.display()
        );
        return None;
    }
    // An unreadable file is ignored silently, as libpq ignores a failed fopen().
    let text = fs::read(file).ok()?;
    let (password, line) = find(&text, wanted)?;
    Some(Found {
        password,
        file: file.to_path_buf(),
        line,
    })
}

/// The password of the first line of `text` that matches `wanted`, and that line's number
/// (from 1).
pub fn find(text: &[u8], wanted: &Wanted) -> Option<(Secret, usize)> {
    let fields = [
        wanted.host_field().as_bytes(),
        wanted.port_field().as_bytes(),
        wanted.dbname.as_bytes(),
        wanted.user.as_bytes(),
    ];
    for (index, raw) in text.split(|b| *b == b'\n').enumerate() {
        let mut line = raw;
        while let Some((last, rest)) = line.split_last() {
            if *last == b'\r' || *last == b'\n' {
                line = rest;
            } else {
                break;
            }
        }
        if line.first() == Some(&b'#') {
            continue;
        }
        if let Some(password) = matched_password(line, &fields) {
            return Some((Secret::from_bytes(password), index + 1));
        }
    }
    None
}

/// The password of `line` if its four leading fields match `fields`.
fn matched_password(line: &[u8], fields: &[&[u8]; 4]) -> Option<Vec<u8>> {
    let mut rest = line;
    for field in fields {
        rest = field_matches(rest, field)?;
    }
    // The password runs to the first unescaped `:` or the end; `\` escapes one character
    // (a `\` at the very end is kept as it is).
    let mut password = Vec::with_capacity(rest.len());
    let mut i = 0;
    while i < rest.len() && rest[i] != b':' {
        if rest[i] == b'\\' && i + 1 < rest.len() {
            i += 1;
        }
        password.push(rest[i]);
        i += 1;
    }
    Some(password)
}

/// libpq's `pwdfMatchesString()`: if the field at the start of `buf` matches `token`, what
/// follows the field's `:`. A field of exactly `*` matches anything; otherwise the field,
/// unescaped, must equal the token.
fn field_matches<'a>(buf: &'a [u8], token: &[u8]) -> Option<&'a [u8]> {
    if buf.starts_with(b"*:") {
        return Some(&buf[2..]);
    }
    let mut i = 0;
    let mut t = 0;
    while i < buf.len() {
        let mut escaped = false;
        if buf[i] == b'\\' {
            i += 1;
            escaped = true;
            if i == buf.len() {
                return None;
            }
        }
        if buf[i] == b':' && t == token.len() && !escaped {
            return Some(&buf[i + 1..]);
        }
        if t == token.len() || buf[i] != token[t] {
            return None;
        }
        i += 1;
        t += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wanted<'a>(host: &'a str, port: &'a str, dbname: &'a str, user: &'a str) -> Wanted<'a> {
        Wanted {
            host,
            port,
            dbname,
            user,
        }
    }

    fn password(text: &str, w: &Wanted) -> Option<(String, usize)> {
        find(text.as_bytes(), w)
            .map(|(s, line)| (String::from_utf8(s.expose().to_vec()).unwrap(), line))
    }

    fn pw(p: &str, line: usize) -> Option<(String, usize)> {
        Some((p.to_string(), line))
    }

    const MASTER: Wanted = Wanted {
        host: "master.example",
        port: "5433",
        dbname: "postgres",
        user: "walmgr",
    };

    #[test]
    fn the_first_matching_line_wins() {
        let text = "master.example:5433:postgres:walmgr:first\n\
                    master.example:5433:postgres:walmgr:second\n";
        assert_eq!(password(text, &MASTER), pw("first", 1));
        let text = "*:*:*:*:any\nmaster.example:5433:postgres:walmgr:exact\n";
        assert_eq!(password(text, &MASTER), pw("any", 1));
    }

    #[test]
    fn every_field_must_match_and_a_star_matches_anything() {
        for (line, matches) in [
            ("master.example:5433:postgres:walmgr:p", true),
            ("*:5433:postgres:walmgr:p", true),
            ("master.example:*:postgres:walmgr:p", true),
            ("master.example:5433:*:walmgr:p", true),
            ("master.example:5433:postgres:*:p", true),
            ("*:*:*:*:p", true),
            ("other:5433:postgres:walmgr:p", false),
            ("master.example:5432:postgres:walmgr:p", false),
            ("master.example:5433:template1:walmgr:p", false),
            ("master.example:5433:postgres:rep:p", false),
            // Case matters, as in libpq (host names included: it compares strings).
            ("MASTER.example:5433:postgres:walmgr:p", false),
            // A prefix or an extension of the value is not a match.
            ("master:5433:postgres:walmgr:p", false),
            ("master.example.org:5433:postgres:walmgr:p", false),
            ("master.example:54330:postgres:walmgr:p", false),
            // A star is a wildcard only as the whole field.
            ("master.*:5433:postgres:walmgr:p", false),
            ("**:5433:postgres:walmgr:p", false),
            // Fewer than five fields: no password, no match.
            ("master.example:5433:postgres:walmgr", false),
            ("master.example:5433:postgres", false),
            ("", false),
        ] {
            assert_eq!(
                password(line, &MASTER).is_some(),
                matches,
                "{line:?} for {MASTER:?}"
            );
        }
    }

    #[test]
    fn backslash_escapes_colons_backslashes_and_stars() {
        let w = wanted("/run/my:sock", "5432", "db", r"dom\user");
        let text = r"/run/my\:sock:5432:db:dom\\user:s3\:cr\\et";
        assert_eq!(password(text, &w), pw(r"s3:cr\et", 1));
        // An escaped star is a literal star: it matches a user named "*" only.
        let star = wanted("h", "5432", "db", "*");
        assert_eq!(password(r"h:5432:db:\*:lit", &star), pw("lit", 1));
        assert_eq!(password(r"h:5432:db:\*:lit", &MASTER), None);
        // Any other escaped character is itself.
        assert_eq!(
            password(r"h:5432:d\b:\*:p\w", &star),
            pw("pw", 1),
            "\\b is b"
        );
        // A trailing backslash of a field escapes nothing that could end it.
        assert_eq!(password("h:5432:db:*\\", &star), None);
    }

    #[test]
    fn the_password_ends_at_an_unescaped_colon_or_the_line_end() {
        let w = wanted("h", "5432", "db", "u");
        assert_eq!(password("h:5432:db:u:pw:ignored", &w), pw("pw", 1));
        assert_eq!(password("h:5432:db:u:", &w), pw("", 1));
        assert_eq!(password("h:5432:db:u:a b ", &w), pw("a b ", 1));
        // A backslash at the very end is kept.
        assert_eq!(password("h:5432:db:u:pw\\", &w), pw("pw\\", 1));
    }

    #[test]
    fn comments_blank_lines_and_crlf_are_handled_like_libpq() {
        let w = wanted("h", "5432", "db", "u");
        let text =
            "# h:5432:db:u:commented\n\n  # not a comment but no match\r\nh:5432:db:u:pw\r\n";
        assert_eq!(password(text, &w), pw("pw", 4));
        // Only a # in the first column starts a comment.
        assert_eq!(
            password(" #:5432:db:u:x\n", &wanted(" #", "5432", "db", "u")),
            pw("x", 1)
        );
        // No final newline.
        assert_eq!(password("x:1:y:z:w\nh:5432:db:u:last", &w), pw("last", 2));
    }

    #[test]
    fn localhost_matches_no_host_and_the_default_socket_directory_only() {
        let line = "localhost:5432:db:u:local\n";
        for host in ["", "localhost", DEFAULT_SOCKET_DIR] {
            assert_eq!(
                password(line, &wanted(host, "5432", "db", "u")),
                pw("local", 1),
                "host {host:?}"
            );
        }
        // Another socket directory is matched by its path, not as localhost; and libpq does
        // not canonicalize, so /run/postgresql is another path than /var/run/postgresql.
        for host in [
            "/tmp",
            "/run/postgresql",
            "/var/run/postgresql/",
            "127.0.0.1",
        ] {
            assert_eq!(
                password(line, &wanted(host, "5432", "db", "u")),
                None,
                "{host}"
            );
        }
        assert_eq!(
            password(
                "/tmp/sock dir:5432:db:u:p\n",
                &wanted("/tmp/sock dir", "", "db", "u")
            ),
            pw("p", 1)
        );
    }

    #[test]
    fn the_port_defaults_to_5432_and_is_compared_as_text() {
        let line = "h:5432:db:u:p\n";
        assert_eq!(password(line, &wanted("h", "", "db", "u")), pw("p", 1));
        assert_eq!(password(line, &wanted("h", "05432", "db", "u")), None);
    }

    #[test]
    fn an_empty_database_or_user_finds_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        fs::write(&file, "*:*:*:*:p\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(lookup(&file, &wanted("h", "1", "db", "u")).is_some());
        assert!(lookup(&file, &wanted("h", "1", "", "u")).is_none());
        assert!(lookup(&file, &wanted("h", "1", "db", "")).is_none());
    }

    #[test]
    fn a_file_others_may_read_or_that_is_no_plain_file_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pgpass");
        fs::write(&file, "*:*:*:*:p\n").unwrap();
        for (mode, used) in [
            (0o600, true),
            (0o400, true),
            (0o700, true),
            (0o640, false),
            (0o604, false),
            (0o660, false),
            (0o610, false),
            (0o601, false),
        ] {
            fs::set_permissions(&file, fs::Permissions::from_mode(mode)).unwrap();
            assert_eq!(lookup(&file, &MASTER).is_some(), used, "mode {mode:o}");
        }
        // The line number and file are kept for the hint on a failed login.
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let found = lookup(&file, &MASTER).unwrap();
        assert_eq!((found.file.as_path(), found.line), (file.as_path(), 1));
        assert!(!format!("{found:?}").contains("\"p\""), "{found:?}");
        // A directory, and a missing file, give nothing.
        assert!(lookup(dir.path(), &MASTER).is_none());
        assert!(lookup(&dir.path().join("none"), &MASTER).is_none());
        // A symlink to a private file is followed, as libpq's stat() does.
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert!(lookup(&link, &MASTER).is_some());
    }

    #[test]
    fn non_utf8_bytes_are_compared_and_returned_as_bytes() {
        let w = wanted("h", "5432", "db", "u");
        let (secret, _) = find(b"h:5432:db:u:\xff\xfe\n", &w).unwrap();
        assert_eq!(secret.expose(), b"\xff\xfe");
    }
}
