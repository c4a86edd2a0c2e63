//! The `slave` key: `host`, `user@host` or `user@host:port` (an IPv6 address in brackets).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    /// None: log in as the user running walmgr (as ssh does).
    pub user: Option<String>,
    pub host: String,
    pub port: u16,
}

impl SshTarget {
    pub fn parse(text: &str) -> Result<SshTarget, String> {
        let (user, rest) = match text.rsplit_once('@') {
            Some((user, rest)) if !user.is_empty() => (Some(user.to_owned()), rest),
            Some(_) => return Err(format!("{text:?} has an empty user name before '@'")),
            None => (None, text),
        };
        let (host, port) = if let Some(bracketed) = rest.strip_prefix('[') {
            let (host, after) = bracketed
                .split_once(']')
                .ok_or_else(|| format!("{text:?} has '[' without ']'"))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(format!("{text:?}: expected ':port' after ']'")),
                },
            }
        } else {
            match rest.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            }
        };
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(format!("{text:?} does not name a host"));
        }
        let port =
            match port {
                None => 22,
                Some(p) => p.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| {
                    format!("{text:?}: port {p:?} is not a number from 1 to 65535")
                })?,
            };
        Ok(SshTarget {
            user,
            host: host.to_owned(),
            port,
        })
    }

    /// How known_hosts files name this host: `host`, or `[host]:port` off port 22.
    pub fn known_hosts_name(&self) -> String {
        if self.port == 22 {
            self.host.clone()
        } else {
            format!("[{}]:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for SshTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(user) = &self.user {
            write!(f, "{user}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(user: Option<&str>, host: &str, port: u16) -> SshTarget {
        SshTarget {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
        }
    }

    #[test]
    fn the_forms_the_manual_and_spec_allow() {
        assert_eq!(SshTarget::parse("standby").unwrap(), t(None, "standby", 22));
        assert_eq!(
            SshTarget::parse("postgres@standby").unwrap(),
            t(Some("postgres"), "standby", 22)
        );
        assert_eq!(
            SshTarget::parse("postgres@10.0.0.2:2222").unwrap(),
            t(Some("postgres"), "10.0.0.2", 2222)
        );
        assert_eq!(
            SshTarget::parse("pg@[::1]:2222").unwrap(),
            t(Some("pg"), "::1", 2222)
        );
        assert_eq!(
            SshTarget::parse("[fe80::1]").unwrap(),
            t(None, "fe80::1", 22)
        );
    }

    #[test]
    fn bad_targets_say_what_is_wrong() {
        for (bad, why) in [
            ("standby:0", "port"),
            ("standby:ssh", "port"),
            ("@standby", "empty user"),
            ("user@", "does not name a host"),
            ("[::1", "without ']'"),
            ("host/dir", "does not name a host"),
        ] {
            let err = SshTarget::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn known_hosts_names_follow_openssh() {
        assert_eq!(t(None, "db2", 22).known_hosts_name(), "db2");
        assert_eq!(
            t(None, "127.0.0.1", 2222).known_hosts_name(),
            "[127.0.0.1]:2222"
        );
    }
}
