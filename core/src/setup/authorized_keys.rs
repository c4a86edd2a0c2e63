//! The standby's `~/.ssh/authorized_keys`, as `--ssh-add-key` and `--ssh-remove-key` edit
//! it. The master's key goes in restricted: no shell, no forwarding, no pty, and a forced
//! command that runs walmgr's receiving end, which accepts only walmgr's own requests.

use std::fmt;

const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// A public key as a .pub file holds it: type, base64 blob, optional comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    pub kind: String,
    pub blob: String,
    pub comment: String,
}

impl PublicKey {
    /// Parses the one key of a .pub file.
    pub fn parse(text: &str) -> Result<PublicKey, String> {
        let lines: Vec<&str> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        let [line] = lines.as_slice() else {
            return Err(format!(
                "expected exactly one public key line, found {}",
                lines.len()
            ));
        };
        find_key(line).ok_or_else(|| {
            format!(
                "not an OpenSSH public key (expected one of {} followed by base64)",
                KEY_TYPES.join(", ")
            )
        })
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind, self.blob)?;
        if !self.comment.is_empty() {
            write!(f, " {}", self.comment)?;
        }
        Ok(())
    }
}

/// The key in an authorized_keys line (after any options), if it has one.
fn find_key(line: &str) -> Option<PublicKey> {
    let words = split_words(line);
    let at = words.iter().position(|w| KEY_TYPES.contains(&w.as_str()))?;
    let blob = words.get(at + 1)?;
    let base64 = |c: char| c.is_ascii_alphanumeric() || "+/=".contains(c);
    if blob.len() < 16 || !blob.chars().all(base64) {
        return None;
    }
    Some(PublicKey {
        kind: words[at].clone(),
        blob: blob.clone(),
        comment: words[at + 2..].join(" "),
    })
}

/// Words of an authorized_keys line; options may hold quoted spaces.
fn split_words(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' if quoted => {
                word.push(c);
                word.extend(chars.next());
            }
            '"' => {
                quoted = !quoted;
                word.push(c);
            }
            c if c.is_whitespace() && !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}

#[derive(Debug, PartialEq, Eq)]
pub enum Added {
    /// Not there before.
    New,
    /// There with other options (e.g. unrestricted, from walmgr3): now restricted.
    Restricted,
    /// Already there exactly so.
    Unchanged,
}

/// The authorized_keys line for the master's key.
pub fn restricted_line(key: &PublicKey, forced_command: &str) -> String {
    // sshd takes only \" as an escape inside command="...": a backslash before anything else
    // stays as it is, so doubling backslashes would run a different command.
    let command = forced_command.replace('"', "\\\"");
    format!("restrict,command=\"{command}\" {key}")
}

/// `existing` with `key` restricted to `forced_command`; any other line for the same key
/// is replaced, so the key never keeps wider rights than walmgr's.
pub fn add(existing: &str, key: &PublicKey, forced_command: &str) -> (String, Added) {
    let wanted = restricted_line(key, forced_command);
    let mut out = String::new();
    let mut found_exact = false;
    let mut replaced = false;
    for line in existing.lines() {
        if find_key(line).is_some_and(|k| k.blob == key.blob) {
            if line == wanted && !found_exact {
                found_exact = true;
                out.push_str(line);
                out.push('\n');
            } else {
                replaced = true;
            }
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    let outcome = match (found_exact, replaced) {
        (true, false) => Added::Unchanged,
        (true, true) => Added::Restricted,
        (false, was) => {
            out.push_str(&wanted);
            out.push('\n');
            if was {
                Added::Restricted
            } else {
                Added::New
            }
        }
    };
    (out, outcome)
}

/// `existing` without the lines of the key `which` names: a public key, or (as in walmgr3)
/// a piece of text such as the key's comment or blob. Returns the removed lines.
pub fn remove(existing: &str, which: &str) -> Result<(String, Vec<String>), String> {
    let which = which.trim();
    let matches: Box<dyn Fn(&str) -> bool> = match PublicKey::parse(which) {
        Ok(key) => Box::new(move |line| find_key(line).is_some_and(|k| k.blob == key.blob)),
        Err(_) if which.len() >= 8 => {
            let needle = which.to_owned();
            Box::new(move |line| find_key(line).is_some() && line.contains(&needle))
        }
        Err(_) => {
            return Err(format!(
                "{which:?} is too short to name one key; give the .pub file, the key, or its \
                 comment (at least 8 characters)"
            ))
        }
    };
    let (gone, kept): (Vec<&str>, Vec<&str>) = existing.lines().partition(|l| matches(l));
    let mut out = kept.join("\n");
    if !out.is_empty() {
        out.push('\n');
    }
    Ok((out, gone.into_iter().map(str::to_owned).collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx7 postgres@master";
    const OTHER: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC admin@laptop";
    const COMMAND: &str = "/usr/bin/walmgr /etc/walmgr/wal-slave.toml xserve";

    #[test]
    fn the_master_key_goes_in_restricted_to_xserve_and_once() {
        let key = PublicKey::parse(KEY).unwrap();
        let (text, added) = add(&format!("{OTHER}\n"), &key, COMMAND);
        assert_eq!(added, Added::New);
        assert_eq!(
            text,
            format!("{OTHER}\nrestrict,command=\"{COMMAND}\" {KEY}\n")
        );
        let (again, added) = add(&text, &key, COMMAND);
        assert_eq!(added, Added::Unchanged);
        assert_eq!(again, text);
    }

    #[test]
    fn an_unrestricted_copy_of_the_key_is_replaced() {
        let key = PublicKey::parse(KEY).unwrap();
        let (text, added) = add(&format!("{KEY}\n{OTHER}\n"), &key, COMMAND);
        assert_eq!(added, Added::Restricted);
        assert_eq!(
            text,
            format!("{OTHER}\nrestrict,command=\"{COMMAND}\" {KEY}\n")
        );
    }

    #[test]
    fn removal_by_key_or_comment_leaves_other_keys() {
        let key = PublicKey::parse(KEY).unwrap();
        let (text, _) = add(&format!("{OTHER}\n"), &key, COMMAND);
        for which in [KEY, "postgres@master"] {
            let (left, gone) = remove(&text, which).unwrap();
            assert_eq!(left, format!("{OTHER}\n"), "{which}");
            assert_eq!(gone.len(), 1);
        }
        assert!(remove(&text, "ssh").unwrap_err().contains("too short"));
    }

    #[test]
    fn bad_public_keys_are_named() {
        assert!(PublicKey::parse("").unwrap_err().contains("exactly one"));
        assert!(PublicKey::parse("-----BEGIN OPENSSH PRIVATE KEY-----")
            .unwrap_err()
            .contains("not an OpenSSH public key"));
        assert!(PublicKey::parse(&format!("{KEY}\n{OTHER}"))
            .unwrap_err()
            .contains("found 2"));
    }

    #[test]
    fn quoted_options_with_spaces_do_not_hide_the_key() {
        let line = format!("restrict,command=\"{COMMAND}\" {KEY}");
        assert_eq!(find_key(&line), PublicKey::parse(KEY).ok());
    }
}
