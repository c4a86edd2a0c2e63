//! libpq connection strings as walmgr shows them: never with a password in a log line, an
//! error or a plan.

/// `conninfo` with any password replaced by `***`: `password=...` in keyword form (quoted
/// or not) and `user:secret@` in URI form.
pub fn redacted(conninfo: &str) -> String {
    let trimmed = conninfo.trim_start();
    if trimmed.starts_with("postgres://") || trimmed.starts_with("postgresql://") {
        return redact_uri(conninfo);
    }
    let mut out = String::with_capacity(conninfo.len());
    let mut rest = conninfo;
    while let Some(eq) = rest.find('=') {
        let head = rest[..eq].trim_end();
        let key = &head[head.rfind(char::is_whitespace).map_or(0, |i| i + 1)..];
        out.push_str(&rest[..=eq]);
        rest = &rest[eq + 1..];
        let value_len = value_len(rest);
        if key == "password" {
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

/// The length of a keyword value at the start of `s`: a single-quoted string (with `\'`
/// escapes) or everything up to the next space.
fn value_len(s: &str) -> usize {
    let leading = s.len() - s.trim_start().len();
    let v = &s[leading..];
    if let Some(quoted) = v.strip_prefix('\'') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                '\\' if !escaped => escaped = true,
                '\'' if !escaped => return leading + 1 + i + 1,
                _ => escaped = false,
            }
        }
        s.len()
    } else {
        leading + v.find(char::is_whitespace).unwrap_or(v.len())
    }
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
    // Query parameters may carry one too: ?password=...
    let query = &uri[authority_end..];
    let redacted_query: Vec<String> = query
        .split('&')
        .map(|part| match part.split_once("password=") {
            Some((before, _)) if before.is_empty() || before.ends_with('?') => {
                format!("{before}password=***")
            }
            _ => part.to_string(),
        })
        .collect();
    out.push_str(&redacted_query.join("&"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
        ] {
            let out = redacted(given);
            assert_eq!(out, shown, "{given}");
            assert!(!out.contains("s3"), "{out}");
        }
    }
}
