//! libpq connection strings as walmgr shows them (never with a password in a log line, an
//! error or a plan) and reads them (the keywords `--add-password` takes from
//! primary_conninfo).

use std::fmt;

/// A libpq connection string that may hold a password. Display and Debug show it with the
/// password hidden, so a config, an error or a log line that formats one cannot leak it;
/// only [`Conninfo::expose`] gives the text to whoever connects or writes it into a
/// server's configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct Conninfo(String);

impl Conninfo {
    pub fn new(text: impl Into<String>) -> Conninfo {
        Conninfo(text.into())
    }

    /// The whole string, password included: for libpq and postgresql.auto.conf only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Conninfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redacted(&self.0))
    }
}

impl fmt::Debug for Conninfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Conninfo({:?})", redacted(&self.0))
    }
}

/// The keywords of a conninfo, in order, in either of libpq's forms: `key=value ...`
/// (values unquoted or single-quoted, `\` escaping the next character) or a
/// `postgresql://user:secret@host:port/dbname?key=value` URI (percent-decoded; its parts
/// become `user`, `password`, `host`, `port` and `dbname`). Err says what is malformed,
/// never a value.
pub fn keywords(conninfo: &str) -> Result<Vec<(String, String)>, String> {
    let trimmed = conninfo.trim();
    for scheme in ["postgresql://", "postgres://"] {
        if let Some(rest) = trimmed.strip_prefix(scheme) {
            return uri_keywords(rest);
        }
    }
    let mut found = Vec::new();
    // Not `trimmed`: a value may end in an escaped space (`password=s3cret\ `), which
    // libpq keeps; whitespace between pairs is skipped below.
    let mut chars = conninfo.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            return Ok(found);
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            // The word itself is not shown: it may be a password typed without its keyword.
            return Err("a word without \"=\" (the form is keyword=value)".to_string());
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quoted value of {key:?}")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        found.push((key, value));
    }
}

/// The part of a URI after its scheme.
fn uri_keywords(rest: &str) -> Result<Vec<(String, String)>, String> {
    let mut found = Vec::new();
    let (main, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (authority, dbname) = main.split_once('/').unwrap_or((main, ""));
    let hosts = match authority.rsplit_once('@') {
        Some((userinfo, hosts)) => {
            let (user, password) = match userinfo.split_once(':') {
                Some((u, p)) => (u, Some(p)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                found.push(("user".to_string(), percent_decoded(user)?));
            }
            if let Some(p) = password {
                found.push(("password".to_string(), percent_decoded(p)?));
            }
            hosts
        }
        None => authority,
    };
    let mut host_list = Vec::new();
    let mut port_list = Vec::new();
    for spec in hosts.split(',').filter(|s| !s.is_empty()) {
        // [v6::addr]:port, host:port, or host alone
        let (host, port) = match spec.strip_prefix('[') {
            Some(v6) => {
                let (addr, after) = v6
                    .split_once(']')
                    .ok_or("unterminated [IPv6 address] in the URI")?;
                (addr, after.strip_prefix(':').unwrap_or(""))
            }
            None => spec.split_once(':').unwrap_or((spec, "")),
        };
        host_list.push(percent_decoded(host)?);
        port_list.push(port.to_string());
    }
    if host_list.iter().any(|h| !h.is_empty()) {
        found.push(("host".to_string(), host_list.join(",")));
    }
    if port_list.iter().any(|p| !p.is_empty()) {
        found.push(("port".to_string(), port_list.join(",")));
    }
    if !dbname.is_empty() {
        found.push(("dbname".to_string(), percent_decoded(dbname)?));
    }
    for pair in query.split('&').filter(|s| !s.is_empty()) {
        let (key, value) = pair
            .split_once('=')
            .ok_or_else(|| format!("missing \"=\" in URI parameter {:?}", pair))?;
        found.push((percent_decoded(key)?, percent_decoded(value)?));
    }
    Ok(found)
}

fn percent_decoded(s: &str) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or("a % in the URI is not followed by two hex digits")?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the URI decodes to invalid UTF-8".to_string())
}

/// The conninfo without its password, and the password: for a program that takes the
/// conninfo as an argument (world-readable in /proc/PID/cmdline), the password goes in
/// PGPASSWORD instead. A conninfo without a password comes back unchanged.
pub fn password_apart(conninfo: &str) -> Result<(String, Option<String>), String> {
    let pairs = keywords(conninfo)?;
    let Some(password) = pairs
        .iter()
        .find(|(k, _)| k == "password")
        .map(|(_, v)| v.clone())
    else {
        return Ok((conninfo.to_owned(), None));
    };
    let rest = pairs
        .iter()
        .filter(|(k, _)| k != "password")
        .map(|(k, v)| format!("{k}={}", quoted(v)))
        .collect::<Vec<_>>()
        .join(" ");
    Ok((rest, Some(password)))
}

/// `value` as a single-quoted conninfo value (`\` and `'` escaped), whatever it holds.
pub fn quoted(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// `conninfo` with any password (or other secret) replaced by `***`: `password=...` in keyword form (quoted
/// or not) and `user:secret@` in URI form.
pub fn redacted(conninfo: &str) -> String {
    let trimmed = conninfo.trim_start();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        return redact_uri(conninfo);
    }
    let mut out = String::with_capacity(conninfo.len());
    let mut rest = conninfo;
    while let Some(eq) = rest.find('=') {
        // The last word before `=` (whitespace may be any Unicode space, several bytes).
        let key = rest[..eq].trim_end().rsplit(char::is_whitespace).next();
        out.push_str(&rest[..=eq]);
        rest = &rest[eq + 1..];
        let value_len = value_len(rest);
        if key.is_some_and(is_secret_keyword) {
            let leading = rest.len() - rest.trim_start().len();
            out.push_str(&rest[..leading]);
            out.push_str("***");
        } else {
            out.push_str(&rest[..value_len]);
        }
        rest = &rest[value_len..];
    }
    out.push_str(rest);
    out
}

/// Keywords whose values are secrets: the password, a client key's passphrase, an OAuth
/// client secret.
fn is_secret_keyword(key: &str) -> bool {
    matches!(key, "password" | "sslpassword" | "oauth_client_secret")
}

/// The length of a keyword value at the start of `s`, as [`keywords`] reads it: a
/// single-quoted string, or everything up to the next unescaped space; `\` escapes the
/// next character in both (so `password=s3\ cret` is one value, all of it hidden).
fn value_len(s: &str) -> usize {
    let leading = s.len() - s.trim_start().len();
    let v = &s[leading..];
    let (quoted, body) = match v.strip_prefix('\'') {
        Some(body) => (true, body),
        None => (false, v),
    };
    let mut escaped = false;
    for (i, c) in body.char_indices() {
        let end = match c {
            _ if escaped => {
                escaped = false;
                continue;
            }
            '\\' => {
                escaped = true;
                continue;
            }
            '\'' if quoted => i + 1,
            c if !quoted && c.is_whitespace() => i,
            _ => continue,
        };
        return leading + usize::from(quoted) + end;
    }
    s.len()
}

fn redact_uri(uri: &str) -> String {
    let scheme_end = uri.find("://").map_or(0, |i| i + 3);
    let authority_end = uri[scheme_end..]
        .find(['/', '?'])
        .map_or(uri.len(), |i| scheme_end + i);
    let mut out = match uri[scheme_end..authority_end].rfind('@') {
        Some(at) => {
            let userinfo = &uri[scheme_end..scheme_end + at];
            match userinfo.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &uri[..scheme_end],
                    &userinfo[..colon],
                    &uri[scheme_end + at..authority_end]
                ),
                None => uri[..authority_end].to_string(),
            }
        }
        None => uri[..authority_end].to_string(),
    };
    // Query parameters may carry one too: ?password=..., its name percent-encoded or not
    // (libpq decodes names as well as values). The query starts at the first `?`, after
    // the database name, as `keywords` reads it.
    let rest = &uri[authority_end..];
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    out.push_str(path);
    if let Some(query) = query {
        let parts: Vec<String> = query
            .split('&')
            .map(|part| match part.split_once('=') {
                Some((name, _)) if percent_decoded(name).is_ok_and(|n| is_secret_keyword(&n)) => {
                    format!("{name}=***")
                }
                _ => part.to_string(),
            })
            .collect();
        out.push('?');
        out.push_str(&parts.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_taken_out_of_a_conninfo_and_the_rest_still_means_the_same() {
        for given in [
            "host=m port=5433 user=rep password='it\\'s' dbname=postgres",
            "host=m user=rep password=se\\cr'et",
            "postgresql://rep:p%40ss@m:5433/postgres?application_name=standby",
        ] {
            let (rest, password) = password_apart(given).unwrap();
            let password = password.unwrap();
            assert!(!rest.contains("password"), "{rest}");
            let mut before = keywords(given).unwrap();
            before.retain(|(k, _)| k != "password");
            assert_eq!(keywords(&rest).unwrap(), before, "{given} -> {rest}");
            assert!(!password.is_empty());
        }
        let plain = "host=m user=rep";
        assert_eq!(password_apart(plain).unwrap(), (plain.to_string(), None));
    }

    #[test]
    fn a_config_formatted_any_way_hides_its_passwords() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.toml");
        std::fs::write(
            &path,
            "[walmgr]\nmaster_data = \"/d\"\nwalmgr_data = \"/w\"\n\
             master_db = \"host=m password=s3cr3t dbname=postgres\"\n\
             primary_conninfo = \"postgresql://rep:t0ps3cr3t@m/postgres\"\n",
        )
        .unwrap();
        let config = crate::config::Config::load(&path, &[]).unwrap();
        let debug = format!("{config:?} {config:#?}");
        assert!(
            !debug.contains("s3cr3t") && !debug.contains("t0ps3cr3t"),
            "{debug}"
        );
        assert!(debug.contains("password=***"), "{debug}");
        let master_db = config.master_db.as_ref().unwrap();
        assert_eq!(master_db.to_string(), "host=m password=*** dbname=postgres");
        assert_eq!(master_db.expose(), "host=m password=s3cr3t dbname=postgres");
    }

    #[test]
    fn a_password_never_shows_in_any_form_of_conninfo() {
        for (given, shown) in [
            (
                "host=m password=s3cret user=u",
                "host=m password=*** user=u",
            ),
            (
                "password = 's3 cret\\'x' dbname=d",
                "password = *** dbname=d",
            ),
            ("host=/tmp port=5433", "host=/tmp port=5433"),
            (
                "postgresql://u:s3cret@m:5432/db",
                "postgresql://u:***@m:5432/db",
            ),
            (
                "postgres://m/db?user=u&password=s3cret",
                "postgres://m/db?user=u&password=***",
            ),
            ("postgresql://u@m/db", "postgresql://u@m/db"),
            // Bugs the hostile-input properties found: an escaped space inside the value
            // showed what followed it; a percent-encoded `password` parameter was shown; a
            // non-ASCII space before a keyword panicked. And one seen while fixing those:
            // a database name holding `password=` hid the real parameter after it.
            ("password=s3\\ cret host=m", "password=*** host=m"),
            (
                "postgresql://m/db?%70assword=s3cret",
                "postgresql://m/db?%70assword=***",
            ),
            (
                "postgresql://m/password=x?password=s3cret",
                "postgresql://m/password=x?password=***",
            ),
            ("host=m\u{a0}password=s3cret", "host=m\u{a0}password=***"),
            // A client key's passphrase is a secret too.
            (
                "sslkey=/k sslpassword=s3cret sslmode=verify-full",
                "sslkey=/k sslpassword=*** sslmode=verify-full",
            ),
            (
                "postgresql://m/db?sslpassword=s3cret",
                "postgresql://m/db?sslpassword=***",
            ),
        ] {
            let out = redacted(given);
            assert_eq!(out, shown, "{given}");
            assert!(!out.contains("s3"), "{out}");
        }
    }

    fn pairs(conninfo: &str) -> Vec<(String, String)> {
        keywords(conninfo).unwrap()
    }

    fn kv(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn keyword_values_may_be_quoted_spaced_and_escaped() {
        assert_eq!(
            pairs("host=m  port = 5433 user='a b\\'c' application_name=s\\ 1"),
            kv(&[
                ("host", "m"),
                ("port", "5433"),
                ("user", "a b'c"),
                ("application_name", "s 1")
            ])
        );
        assert_eq!(pairs("  "), kv(&[]));
        // libpq keeps an escaped space at the very end.
        assert_eq!(pairs("password=s3\\ "), kv(&[("password", "s3 ")]));
        assert!(keywords("host").is_err());
        assert!(keywords("user='open").is_err());
    }

    #[test]
    fn uris_become_the_same_keywords() {
        assert_eq!(
            pairs("postgresql://rep:s%3Acret@master.example:5433/db?application_name=s1"),
            kv(&[
                ("user", "rep"),
                ("password", "s:cret"),
                ("host", "master.example"),
                ("port", "5433"),
                ("dbname", "db"),
                ("application_name", "s1")
            ])
        );
        assert_eq!(
            pairs("postgres://[::1]:6000,other/"),
            kv(&[("host", "::1,other"), ("port", "6000,")])
        );
        assert_eq!(pairs("postgresql://"), kv(&[]));
        assert!(keywords("postgresql://m/%zz").is_err());
    }
}
