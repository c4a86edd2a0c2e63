//! What the config needs from the running system: home directories and the host name.

use std::ffi::{CStr, CString, OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

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

/// Home directory from the password database: of `user`, or of the real uid when None.
fn passwd_home(user: Option<&str>) -> Option<PathBuf> {
    let lookup = match user {
        Some(u) => Lookup::Name(CString::new(u).ok()?),
        None => Lookup::Uid(real_uid()),
    };
    passwd_field(lookup, |pwd| pwd.pw_dir)
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
}

/// The login name of `uid`, if the password database has one.
pub fn user_name(uid: u32) -> Option<String> {
    passwd_field(Lookup::Uid(uid), |pwd| pwd.pw_name)?
        .into_string()
        .ok()
}

/// The login name of the effective user: whom files are written as and SSH logs in as.
pub fn effective_user_name() -> Option<String> {
    // SAFETY: geteuid cannot fail.
    user_name(unsafe { libc::geteuid() })
}

fn real_uid() -> u32 {
    // SAFETY: getuid cannot fail.
    unsafe { libc::getuid() }
}

enum Lookup {
    Name(CString),
    Uid(u32),
}

/// One string field of a password entry, through the reentrant getpw*_r (the extension
/// calls this from the archiver, where another thread may use the static-buffer versions).
fn passwd_field(
    lookup: Lookup,
    field: impl Fn(&libc::passwd) -> *const libc::c_char,
) -> Option<OsString> {
    let mut buf: Vec<libc::c_char> = vec![0; 1024];
    loop {
        // SAFETY: all-zero is a valid passwd (null pointers, zero ids); it is only read
        // after getpw*_r reports success by setting `result`.
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: every pointer is valid for the call and buf.len() is its true size.
        let rc = unsafe {
            match &lookup {
                Lookup::Name(n) => libc::getpwnam_r(
                    n.as_ptr(),
                    &mut pwd,
                    buf.as_mut_ptr(),
                    buf.len(),
                    &mut result,
                ),
                Lookup::Uid(uid) => {
                    libc::getpwuid_r(*uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result)
                }
            }
        };
        if rc == libc::ERANGE && buf.len() < (1 << 20) {
            buf.resize(buf.len() * 2, 0);
            continue;
        }
        if rc != 0 || result.is_null() {
            return None;
        }
        let ptr = field(&pwd);
        if ptr.is_null() {
            return None;
        }
        // SAFETY: on success the field points to a NUL-terminated string inside buf.
        let bytes = unsafe { CStr::from_ptr(ptr) }.to_bytes();
        return Some(OsStr::from_bytes(bytes).to_os_string());
    }
}

/// The host name, for skytools' `%(host_name)s`.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its full length.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
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
