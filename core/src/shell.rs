//! Words for `/bin/sh` and login shells: configs hold shell commands (slave_start_cmd,
//! the forced command of the master's key) built from paths that may hold anything.

/// `s` as one shell word: unchanged when it is plainly safe, else single-quoted.
pub fn quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+:=@%,".contains(&b))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_quoted_only_when_needed() {
        assert_eq!(quote("/etc/walmgr/slave.toml"), "/etc/walmgr/slave.toml");
        assert_eq!(quote("/a b/it's"), r"'/a b/it'\''s'");
        assert_eq!(quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(quote(""), "''");
    }
}
