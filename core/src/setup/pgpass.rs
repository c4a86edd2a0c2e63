//! The standby's replication password in `~/.pgpass` (`--add-password`,
//! `--remove-password`).
//!
//! One line, `host:port:replication:user:password`, for the connection primary_conninfo
//! makes: libpq looks a physical replication connection up under the database name
//! `replication`. Rules kept below:
//! - the password is read from a file, never from the command line (where `ps` shows it),
//!   and never appears in a log line, an error or a `-n` plan: those say "a password for
//!   HOST:PORT user U";
//! - every other line of the file stays byte-identical, comments, blank lines, CRLF and all;
//! - the file is rewritten whole through [`store::replace_file`] (temp name, fsync, rename,
//!   fsync directory, mode 0600: libpq ignores a .pgpass others can read), so a crash leaves
//!   the old file or the new one.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};

use crate::archive::store;
use crate::changes::Changes;
use crate::conninfo;
use crate::error::{Error, Result};
use crate::os::users;

/// The database field libpq matches for a physical replication connection.
pub const REPLICATION_DATABASE: &str = "replication";

/// libpq's defaults for what a conninfo leaves out.
const DEFAULT_HOST: &str = "localhost";
const DEFAULT_PORT: &str = "5432";

/// Whom a line is for: the fields libpq matches (the database is always `replication`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub host: String,
    pub port: String,
    pub user: String,
}

impl Key {
    /// The connection `conninfo` makes, as libpq matches it against .pgpass: `host` (else
    /// `hostaddr`, else localhost), `port` (else 5432), `user` (else `default_user`, the
    /// OS user libpq would send).
    pub fn of_conninfo(conninfo: &str, default_user: &str) -> Result<Key> {
        let shown = conninfo::redacted(conninfo);
        let pairs = conninfo::keywords(conninfo)
            .map_err(|m| Error::Usage(format!("primary_conninfo {shown:?}: {m}")))?;
        let get = |name: &str| {
            pairs
                .iter()
                .rev()
                .find(|(k, v)| k == name && !v.is_empty())
                .map(|(_, v)| v.clone())
        };
        let host = get("host")
            .or_else(|| get("hostaddr"))
            .unwrap_or_else(|| DEFAULT_HOST.to_string());
        let port = get("port").unwrap_or_else(|| DEFAULT_PORT.to_string());
        if host.contains(',') || port.contains(',') {
            return Err(Error::refused(format!(
                "primary_conninfo {shown:?} names several hosts or ports: write one .pgpass \
                 line per host by hand (host:port:replication:user:password, mode 0600)"
            )));
        }
        let user = get("user").unwrap_or_else(|| default_user.to_string());
        if get("password").is_some() {
            tracing::warn!(
                "primary_conninfo has a password of its own: libpq uses it and never looks at \
                 .pgpass; remove it from primary_conninfo"
            );
        }
        Ok(Key { host, port, user })
    }

    /// The first four fields of a .pgpass line for this key, escaped.
    fn fields(&self) -> String {
        [
            &self.host,
            &self.port,
            REPLICATION_DATABASE,
            self.user.as_str(),
        ]
        .map(escape)
        .join(":")
    }

    /// Is `line` (one .pgpass line without its terminator) for exactly this key?
    fn is_line_of(&self, line: &str) -> bool {
        let Some(fields) = leading_fields(line) else {
            return false;
        };
        fields
            == [
                self.host.as_str(),
                &self.port,
                REPLICATION_DATABASE,
                &self.user,
            ]
    }

    /// Would libpq take `line`'s password for this connection (`*` matching any value)?
    fn is_matched_by(&self, line: &str) -> bool {
        let Some(fields) = leading_fields(line) else {
            return false;
        };
        let wanted = [
            self.host.as_str(),
            &self.port,
            REPLICATION_DATABASE,
            &self.user,
        ];
        fields.iter().zip(wanted).all(|(f, w)| f == "*" || f == w)
    }
}

/// How a DBA reads a key in a plan or a message: never with the password.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a password for {}:{} user {}",
            self.host, self.port, self.user
        )
    }
}

/// A password, which neither Debug nor Display shows.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(***)")
    }
}

impl Password {
    /// The first line of `file`, its line break dropped. The error names the file, never
    /// what is in it.
    pub fn read(file: &Path) -> Result<Password> {
        let bytes = fs::read(file).map_err(|e| Error::io("read the password from", file, e))?;
        let text = String::from_utf8(bytes).map_err(|_| {
            Error::refused(format!(
                "{}: the password is not UTF-8 text; write it as the file's first line",
                file.display()
            ))
        })?;
        let first = text.split('\n').next().unwrap_or("");
        let first = first.strip_suffix('\r').unwrap_or(first);
        if first.is_empty() {
            return Err(Error::refused(format!(
                "{}: the first line is empty; write the password as the file's first line",
                file.display()
            )));
        }
        Ok(Password(first.to_string()))
    }

    #[cfg(test)]
    fn new(s: &str) -> Password {
        Password(s.to_string())
    }
}

/// A .pgpass field with `:` and `\` escaped, as libpq requires; a field that is exactly `*`
/// is written `\*`, or libpq would read it as "any" (a user named `*` would give the
/// password to every user), and a leading `#` is escaped too.
pub fn escape(field: &str) -> String {
    if field == "*" {
        return "\\*".to_string();
    }
    let mut out = String::with_capacity(field.len() + 1);
    // A line that starts with `#` is a comment to libpq: a host named so is escaped.
    if field.starts_with('#') {
        out.push('\\');
    }
    for c in field.chars() {
        if c == ':' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The first four fields of a .pgpass line, unescaped; None for comments, blank lines and
/// lines with fewer fields (libpq skips those too).
fn leading_fields(line: &str) -> Option<Vec<String>> {
    if line.starts_with('#') {
        return None;
    }
    let mut fields = Vec::with_capacity(4);
    let mut field = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => field.extend(chars.next()),
            ':' => {
                fields.push(std::mem::take(&mut field));
                if fields.len() == 4 {
                    return Some(fields);
                }
            }
            c => field.push(c),
        }
    }
    None
}

/// One line of the file with its terminator (`\n`, `\r\n`, or none at the very end).
fn lines_of(text: &str) -> impl Iterator<Item = (&str, &str)> {
    text.split_inclusive('\n').map(|line| {
        let body = line
            .strip_suffix('\n')
            .map(|l| l.strip_suffix('\r').unwrap_or(l))
            .unwrap_or(line);
        (body, &line[body.len()..])
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Added {
    /// No line for the key was there: ours went in.
    New,
    /// The key's line held another password.
    Replaced,
    /// The key's line already held this password.
    Unchanged,
}

/// `existing` with the line for `key` holding `password`. libpq takes the first line that
/// matches, so ours goes where it is read first: in place of the first line for the key,
/// or before an earlier line that would answer for this connection too (a wildcard such as
/// `*:*:*:rep:...`), else at the end. Later lines for the key, which libpq never reads, go.
pub fn with_password(existing: &str, key: &Key, password: &Password) -> (String, Added) {
    let ours = format!("{}:{}", key.fields(), escape(&password.0));
    let had_key = lines_of(existing).any(|(body, _)| key.is_line_of(body));
    let mut out = String::with_capacity(existing.len() + ours.len() + 1);
    let mut placed = false;
    for (body, end) in lines_of(existing) {
        if key.is_line_of(body) {
            if !placed {
                placed = true;
                out.push_str(&ours);
                out.push_str(if end.is_empty() { "\n" } else { end });
            }
            continue;
        }
        if !placed && key.is_matched_by(body) {
            placed = true;
            out.push_str(&ours);
            out.push('\n');
        }
        out.push_str(body);
        out.push_str(end);
    }
    if !placed {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(&ours);
        out.push('\n');
    }
    let outcome = match (had_key, out == existing) {
        (false, _) => Added::New,
        (true, true) => Added::Unchanged,
        (true, false) => Added::Replaced,
    };
    (out, outcome)
}

/// `existing` without the lines for `key`, every other byte as it was; and how many went.
pub fn without_password(existing: &str, key: &Key) -> (String, usize) {
    let mut out = String::with_capacity(existing.len());
    let mut removed = 0;
    for (body, end) in lines_of(existing) {
        if key.is_line_of(body) {
            removed += 1;
        } else {
            out.push_str(body);
            out.push_str(end);
        }
    }
    (out, removed)
}

/// What `--add-password` and `--remove-password` work on.
pub struct Request<'a> {
    /// The running user's home: the file is `home/.pgpass`.
    pub home: &'a Path,
    /// The standby's primary_conninfo (from `--primary-conninfo` or the slave config).
    pub conninfo: &'a str,
    /// The user libpq sends when the conninfo names none.
    pub default_user: &'a str,
}

impl Request<'_> {
    fn file(&self) -> PathBuf {
        self.home.join(".pgpass")
    }

    fn key(&self) -> Result<Key> {
        let key = Key::of_conninfo(self.conninfo, self.default_user)?;
        let passfile = conninfo::keywords(self.conninfo)
            .unwrap_or_default()
            .into_iter()
            .rfind(|(k, _)| k == "passfile")
            .map(|(_, v)| PathBuf::from(v));
        if let Some(passfile) = passfile.filter(|p| *p != self.file()) {
            tracing::warn!(
                "primary_conninfo names passfile {}: libpq reads that file, not {}",
                passfile.display(),
                self.file().display()
            );
        }
        Ok(key)
    }
}

/// `--add-password=FILE`: puts the password of `password_file` in ~/.pgpass for the
/// replication connection; returns what to tell the DBA.
pub fn add(request: &Request, password_file: &Path, changes: &mut Changes) -> Result<String> {
    let key = request.key()?;
    let password = Password::read(password_file)?;
    let file = request.file();
    let existing = read_if_present(&file)?;
    let (updated, outcome) = with_password(&existing, &key, &password);
    let verb = match outcome {
        Added::Unchanged => {
            return Ok(format!("{} already holds {key}", file.display()));
        }
        Added::New => "add",
        Added::Replaced => "replace",
    };
    changes.apply(
        format!("{verb} {key} in {} (mode 0600)", file.display()),
        || store::replace_file(&file, updated.as_bytes()),
    )?;
    Ok(format!(
        "{} {key} in {}",
        if changes.is_dry_run() {
            "would hold"
        } else {
            "holds"
        },
        file.display()
    ))
}

/// `--remove-password`: removes the replication connection's line from ~/.pgpass.
pub fn remove(request: &Request, changes: &mut Changes) -> Result<String> {
    let key = request.key()?;
    let file = request.file();
    let existing = read_if_present(&file)?;
    let (updated, removed) = without_password(&existing, &key);
    if removed == 0 {
        return Err(Error::refused(format!(
            "{} holds no line for host {} port {} database {REPLICATION_DATABASE} user {}; \
             nothing removed",
            file.display(),
            key.host,
            key.port,
            key.user
        )));
    }
    changes.apply(format!("remove {key} from {}", file.display()), || {
        store::replace_file(&file, updated.as_bytes())
    })?;
    Ok(format!(
        "{} {key} from {}",
        if changes.is_dry_run() {
            "would remove"
        } else {
            "removed"
        },
        file.display()
    ))
}

/// The user libpq sends when a conninfo names none: the OS user it runs as.
pub fn default_user() -> Result<String> {
    users::effective_user_name().ok_or_else(|| {
        Error::refused("cannot tell the running user's name: put user= in primary_conninfo")
    })
}

fn read_if_present(file: &Path) -> Result<String> {
    match fs::read(file) {
        Ok(bytes) => String::from_utf8(bytes).map_err(|_| {
            Error::refused(format!(
                "{} is not UTF-8 text; walmgr leaves it alone: edit it by hand",
                file.display()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        Err(e) => Err(Error::io("read", file, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn key() -> Key {
        Key {
            host: "master.example".into(),
            port: "5433".into(),
            user: "rep".into(),
        }
    }

    const OTHERS: &str = "# my passwords\r\n\
                          db.example:5432:*:app:app:pw\r\n\
                          \n\
                          master.example:5433:postgres:rep:other\n";

    #[test]
    fn colons_and_backslashes_are_escaped_in_every_field() {
        assert_eq!(escape(r"a:b\c"), r"a\:b\\c");
        // A lone star would be libpq's wildcard; a star inside a value is just a star.
        assert_eq!(escape("*"), r"\*");
        assert_eq!(escape("a*"), "a*");
        // A line starting with # would be a comment.
        assert_eq!(escape("#h"), r"\#h");
        let key = Key {
            host: "/run/my:sock".into(),
            port: "5432".into(),
            user: "r\\p".into(),
        };
        let (text, added) = with_password("", &key, &Password::new(r"s3:cr\et"));
        assert_eq!(added, Added::New);
        assert_eq!(
            text,
            "/run/my\\:sock:5432:replication:r\\\\p:s3\\:cr\\\\et\n"
        );
        // Read back the way libpq reads it, the line is for this key.
        assert!(key.is_line_of(text.trim_end()));
    }

    #[test]
    fn a_new_line_is_appended_and_everything_else_stays_byte_identical() {
        let (text, added) = with_password(OTHERS, &key(), &Password::new("pw1"));
        assert_eq!(added, Added::New);
        assert_eq!(
            text,
            format!("{OTHERS}master.example:5433:replication:rep:pw1\n")
        );
        // A file without a final newline gets one before our line.
        let (text, _) = with_password("a:b:c:d:e", &key(), &Password::new("pw1"));
        assert_eq!(text, "a:b:c:d:e\nmaster.example:5433:replication:rep:pw1\n");
    }

    #[test]
    fn the_line_for_the_same_key_is_replaced_in_place() {
        let before = format!("{OTHERS}master.example:5433:replication:rep:old\r\nlast:1:*:x:y");
        let (text, added) = with_password(&before, &key(), &Password::new("new"));
        assert_eq!(added, Added::Replaced);
        assert_eq!(
            text,
            format!("{OTHERS}master.example:5433:replication:rep:new\r\nlast:1:*:x:y")
        );
        let (again, added) = with_password(&text, &key(), &Password::new("new"));
        assert_eq!(added, Added::Unchanged);
        assert_eq!(again, text);
    }

    #[test]
    fn a_stale_duplicate_for_the_key_goes_with_the_replacement() {
        let before = "master.example:5433:replication:rep:a\nx:1:y:z:w\n\
                      master.example:5433:replication:rep:b\n";
        let (text, added) = with_password(before, &key(), &Password::new("a"));
        assert_eq!(added, Added::Replaced);
        assert_eq!(text, "master.example:5433:replication:rep:a\nx:1:y:z:w\n");
    }

    #[test]
    fn a_wildcard_line_that_would_answer_first_is_put_after_ours() {
        let before = "# all\n*:*:*:rep:wildcard\n";
        let (text, added) = with_password(before, &key(), &Password::new("pw"));
        assert_eq!(added, Added::New);
        assert_eq!(
            text,
            "# all\nmaster.example:5433:replication:rep:pw\n*:*:*:rep:wildcard\n"
        );
    }

    #[test]
    fn removing_takes_exactly_the_keys_line_and_leaves_every_other_byte() {
        let (with, _) = with_password(OTHERS, &key(), &Password::new("pw"));
        let (without, removed) = without_password(&with, &key());
        assert_eq!(removed, 1);
        assert_eq!(without, OTHERS);
        // In the middle, with CRLF around it.
        let middle = "a:1:b:c:d\r\nmaster.example:5433:replication:rep:pw\r\nz:1:b:c:d";
        let (without, removed) = without_password(middle, &key());
        assert_eq!(removed, 1);
        assert_eq!(without, "a:1:b:c:d\r\nz:1:b:c:d");
        // Another database, port or user is another line.
        let (same, removed) = without_password(OTHERS, &key());
        assert_eq!((same.as_str(), removed), (OTHERS, 0));
    }

    #[test]
    fn the_key_comes_from_primary_conninfo_with_libpqs_defaults() {
        let k = Key::of_conninfo(
            "host=master.example port=5433 user=rep application_name=s1",
            "postgres",
        )
        .unwrap();
        assert_eq!(k, key());
        let k = Key::of_conninfo("application_name=s1", "postgres").unwrap();
        assert_eq!(
            (k.host.as_str(), k.port.as_str(), k.user.as_str()),
            ("localhost", "5432", "postgres")
        );
        let k = Key::of_conninfo("hostaddr=10.0.0.1 user=rep", "postgres").unwrap();
        assert_eq!(k.host, "10.0.0.1");
        let k = Key::of_conninfo("postgresql://rep@master.example:5433/x", "pg").unwrap();
        assert_eq!(k, key());
        let err = Key::of_conninfo("host=a,b password=s3cret", "pg")
            .unwrap_err()
            .to_string();
        assert!(err.contains("several hosts"), "{err}");
        assert!(!err.contains("s3cret"), "{err}");
    }

    #[test]
    fn the_password_is_the_first_line_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        fs::write(&file, "s3cret\r\nsecond line\n").unwrap();
        let password = Password::read(&file).unwrap();
        assert_eq!(password, Password::new("s3cret"));
        assert_eq!(format!("{password:?}"), "Password(***)");
        assert!(!key().to_string().contains("s3cret"));
        fs::write(&file, "\nlater").unwrap();
        let err = Password::read(&file).unwrap_err().to_string();
        assert!(err.contains("first line is empty"), "{err}");
        assert!(!err.contains("later"), "{err}");
    }

    fn request<'a>(home: &'a Path, conninfo: &'a str) -> Request<'a> {
        Request {
            home,
            conninfo,
            default_user: "postgres",
        }
    }

    #[test]
    fn add_creates_a_private_pgpass_and_remove_restores_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let pw = home.join("pw");
        fs::write(&pw, "s3cret\n").unwrap();
        let conninfo = "host=master.example port=5433 user=rep";
        let said = add(&request(home, conninfo), &pw, &mut Changes::new(false)).unwrap();
        assert!(!said.contains("s3cret"), "{said}");
        let pgpass = home.join(".pgpass");
        let mode = fs::metadata(&pgpass).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(
            fs::read_to_string(&pgpass).unwrap(),
            "master.example:5433:replication:rep:s3cret\n"
        );

        // An existing file, readable by others: its other lines survive, the mode is fixed.
        fs::write(&pgpass, OTHERS).unwrap();
        fs::set_permissions(&pgpass, fs::Permissions::from_mode(0o644)).unwrap();
        add(&request(home, conninfo), &pw, &mut Changes::new(false)).unwrap();
        let mode = fs::metadata(&pgpass).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        remove(&request(home, conninfo), &mut Changes::new(false)).unwrap();
        assert_eq!(fs::read_to_string(&pgpass).unwrap(), OTHERS);
        let err = remove(&request(home, conninfo), &mut Changes::new(false))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nothing removed"), "{err}");
    }

    #[test]
    fn a_dry_run_describes_the_change_without_the_password_and_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path();
        let pw = home.join("pw");
        fs::write(&pw, "s3cret").unwrap();
        let mut changes = Changes::new(true);
        add(&request(home, "host=m user=rep"), &pw, &mut changes).unwrap();
        assert_eq!(
            changes.described(),
            [format!(
                "add a password for m:5432 user rep in {} (mode 0600)",
                home.join(".pgpass").display()
            )]
        );
        assert!(!home.join(".pgpass").exists());
    }
}
