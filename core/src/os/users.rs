//! Who and where we run: users, home directories, the host name.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

use nix::unistd::{geteuid, gethostname, getuid, Uid, User};

/// The running user's home: `$HOME` as shells and Python's `expanduser` use it, else the
/// password database.
pub fn home_dir() -> Option<PathBuf> {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Some(PathBuf::from(home)),
        _ => passwd_home(None),
    }
}

/// Expands `~` or `~user` at the start of `value`, like Python's `os.path.expanduser`
/// (which walmgr3 applied to every path). Err carries the reason for the message.
pub fn expand_tilde(value: &str) -> Result<PathBuf, String> {
    let Some(rest) = value.strip_prefix('~') else {
        return Ok(PathBuf::from(value));
    };
    let (user, tail) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, ""),
    };
    let home = if user.is_empty() {
        home_dir().ok_or_else(|| {
            "cannot expand '~': $HOME is not set and the user has no home directory".to_owned()
        })?
    } else {
        passwd_home(Some(user)).ok_or_else(|| format!("cannot expand '~{user}': no such user"))?
    };
    let mut bytes = home.into_os_string().into_vec();
    while bytes.last() == Some(&b'/') {
        bytes.pop();
    }
    bytes.extend_from_slice(tail.as_bytes());
    if bytes.is_empty() {
        bytes.push(b'/');
    }
    Ok(PathBuf::from(OsString::from_vec(bytes)))
}

/// The login name of `uid`, if the password database has one.
pub fn user_name(uid: u32) -> Option<String> {
    // getpwuid_r underneath: the extension calls this from the archiver, where another
    // thread may use the static-buffer versions.
    Some(User::from_uid(Uid::from_raw(uid)).ok()??.name)
}

/// The login name of the effective user: whom files are written as and SSH logs in as.
pub fn effective_user_name() -> Option<String> {
    user_name(geteuid().as_raw())
}

/// The effective user's home from the password database, never `$HOME`: where libpq
/// (PostgreSQL 15-17) looks for `.pgpass`, `.pg_service.conf` and `.postgresql/`, so that
/// `runuser -u postgres` without `-l` still finds the postgres user's files.
pub fn effective_user_home() -> Option<PathBuf> {
    User::from_uid(geteuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
        .filter(|dir| !dir.as_os_str().is_empty())
}

/// True when running as root, who may hand files to their directory's owner (chown) and
/// run the server's commands as that owner.
pub fn is_root() -> bool {
    geteuid().is_root()
}

/// Home directory from the password database: of `user`, or of the real uid when None.
fn passwd_home(user: Option<&str>) -> Option<PathBuf> {
    let found = match user {
        Some(name) => User::from_name(name),
        None => User::from_uid(getuid()),
    };
    found
        .ok()
        .flatten()
        .map(|u| u.dir)
        .filter(|dir| !dir.as_os_str().is_empty())
}

/// The host name, for skytools' `%(host_name)s` and to tell whose lock is whose.
pub fn host_name() -> String {
    gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tilde_expansion() {
        let home = home_dir().expect("test needs a home directory");
        let home = home.to_string_lossy().trim_end_matches('/').to_owned();
        assert_eq!(
            expand_tilde("~").unwrap(),
            PathBuf::from(if home.is_empty() { "/" } else { &home })
        );
        assert_eq!(
            expand_tilde("~/x/y").unwrap(),
            PathBuf::from(format!("{home}/x/y"))
        );
        assert_eq!(expand_tilde("/a/~b").unwrap(), PathBuf::from("/a/~b"));
        assert_eq!(expand_tilde("a~").unwrap(), PathBuf::from("a~"));
        assert!(expand_tilde("~root/x").unwrap().ends_with("x"));
        let err = expand_tilde("~no_such_user_walmgr_test/x").unwrap_err();
        assert!(err.contains("no such user"), "{err}");
    }

    #[test]
    fn host_name_is_not_empty() {
        assert!(!host_name().is_empty());
    }
}
