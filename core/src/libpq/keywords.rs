//! libpq's connection keywords (PostgreSQL 15 to 18), the environment variable each is
//! read from when neither the connection string nor a service sets it, and the values libpq
//! accepts for the ones with a fixed set. A keyword libpq does not know is an error in
//! libpq ("invalid connection option"), so it is one here: a misspelt `sslmode` must not
//! quietly connect without TLS.

/// One keyword.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keyword {
    pub name: &'static str,
    /// The variable libpq reads for it (`PGHOST` for `host`), if any.
    pub env: Option<&'static str>,
    /// The values libpq accepts; None: any text (numbers are checked where they are used).
    pub values: Option<&'static [&'static str]>,
}

const fn kw(name: &'static str, env: Option<&'static str>) -> Keyword {
    Keyword {
        name,
        env,
        values: None,
    }
}

const fn one_of(
    name: &'static str,
    env: Option<&'static str>,
    values: &'static [&'static str],
) -> Keyword {
    Keyword {
        name,
        env,
        values: Some(values),
    }
}

pub const SSLMODES: &[&str] = &[
    "disable",
    "allow",
    "prefer",
    "require",
    "verify-ca",
    "verify-full",
];

pub const TLS_VERSIONS: &[&str] = &["", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3"];

/// libpq's `PQconninfoOptions`, in its order.
pub const KEYWORDS: &[Keyword] = &[
    kw("service", Some("PGSERVICE")),
    kw("servicefile", Some("PGSERVICEFILE")),
    kw("user", Some("PGUSER")),
    kw("password", Some("PGPASSWORD")),
    kw("passfile", Some("PGPASSFILE")),
    one_of(
        "channel_binding",
        Some("PGCHANNELBINDING"),
        &["disable", "prefer", "require"],
    ),
    kw("connect_timeout", Some("PGCONNECT_TIMEOUT")),
    kw("dbname", Some("PGDATABASE")),
    kw("host", Some("PGHOST")),
    kw("hostaddr", Some("PGHOSTADDR")),
    kw("port", Some("PGPORT")),
    kw("client_encoding", Some("PGCLIENTENCODING")),
    kw("options", Some("PGOPTIONS")),
    kw("application_name", Some("PGAPPNAME")),
    kw("fallback_application_name", None),
    kw("keepalives", None),
    kw("keepalives_idle", None),
    kw("keepalives_interval", None),
    kw("keepalives_count", None),
    kw("tcp_user_timeout", None),
    kw("replication", None),
    one_of(
        "gssencmode",
        Some("PGGSSENCMODE"),
        &["disable", "prefer", "require"],
    ),
    one_of("sslmode", Some("PGSSLMODE"), SSLMODES),
    one_of(
        "sslnegotiation",
        Some("PGSSLNEGOTIATION"),
        &["postgres", "direct"],
    ),
    kw("sslcompression", Some("PGSSLCOMPRESSION")),
    kw("sslcert", Some("PGSSLCERT")),
    kw("sslkey", Some("PGSSLKEY")),
    one_of(
        "sslcertmode",
        Some("PGSSLCERTMODE"),
        &["disable", "allow", "require"],
    ),
    kw("sslpassword", None),
    kw("sslrootcert", Some("PGSSLROOTCERT")),
    kw("sslcrl", Some("PGSSLCRL")),
    kw("sslcrldir", Some("PGSSLCRLDIR")),
    kw("sslsni", Some("PGSSLSNI")),
    kw("requirepeer", Some("PGREQUIREPEER")),
    kw("require_auth", Some("PGREQUIREAUTH")),
    one_of(
        "ssl_min_protocol_version",
        Some("PGSSLMINPROTOCOLVERSION"),
        TLS_VERSIONS,
    ),
    one_of(
        "ssl_max_protocol_version",
        Some("PGSSLMAXPROTOCOLVERSION"),
        TLS_VERSIONS,
    ),
    kw("min_protocol_version", Some("PGMINPROTOCOLVERSION")),
    kw("max_protocol_version", Some("PGMAXPROTOCOLVERSION")),
    kw("krbsrvname", Some("PGKRBSRVNAME")),
    kw("gsslib", Some("PGGSSLIB")),
    kw("gssdelegation", Some("PGGSSDELEGATION")),
    one_of(
        "target_session_attrs",
        Some("PGTARGETSESSIONATTRS"),
        &[
            "any",
            "read-write",
            "read-only",
            "primary",
            "standby",
            "prefer-standby",
        ],
    ),
    one_of(
        "load_balance_hosts",
        Some("PGLOADBALANCEHOSTS"),
        &["disable", "random"],
    ),
    kw("scram_client_key", None),
    kw("scram_server_key", None),
    kw("oauth_issuer", None),
    kw("oauth_client_id", None),
    kw("oauth_client_secret", None),
    kw("oauth_scope", None),
];

pub fn find(name: &str) -> Option<&'static Keyword> {
    KEYWORDS.iter().find(|k| k.name == name)
}

/// Whether `value` is one libpq accepts for `keyword` (an empty value means the default and
/// is always accepted). Err says what is wrong; values are shown only for keywords whose
/// values are a fixed set (never a password).
pub fn check_value(keyword: &Keyword, value: &str) -> Result<(), String> {
    if value.is_empty() {
        return Ok(());
    }
    if let Some(values) = keyword.values {
        if !values.contains(&value) {
            return Err(format!(
                "invalid {} value: \"{value}\" (one of: {})",
                keyword.name,
                values
                    .iter()
                    .filter(|v| !v.is_empty())
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    match keyword.name {
        "connect_timeout"
        | "keepalives"
        | "keepalives_idle"
        | "keepalives_interval"
        | "keepalives_count"
        | "tcp_user_timeout" => integer(keyword.name, value).map(|_| ()),
        "port" => {
            for port in value.split(',') {
                port_number(port)?;
            }
            Ok(())
        }
        "replication" => match value {
            "true" | "on" | "yes" | "1" | "false" | "off" | "no" | "0" | "database" => Ok(()),
            _ => Err(format!("invalid replication value: \"{value}\"")),
        },
        "sslsni" | "sslcompression" => match value {
            "0" | "1" => Ok(()),
            _ => Err(format!(
                "invalid {} value: \"{value}\" (0 or 1)",
                keyword.name
            )),
        },
        _ => Ok(()),
    }
}

/// libpq's `parse_int_param()`: an integer, surrounding whitespace allowed.
pub fn integer(name: &str, value: &str) -> Result<i64, String> {
    value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| i32::try_from(*n).is_ok())
        .ok_or_else(|| {
            format!("invalid integer value \"{value}\" for connection option \"{name}\"")
        })
}

/// One entry of a `port` list: empty means 5432.
pub fn port_number(port: &str) -> Result<u16, String> {
    if port.is_empty() {
        return Ok(5432);
    }
    match integer("port", port) {
        Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
        _ => Err(format!("invalid port number: \"{port}\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_keyword_is_listed_once() {
        let mut names: Vec<_> = KEYWORDS.iter().map(|k| k.name).collect();
        names.sort();
        let count = names.len();
        names.dedup();
        assert_eq!(names.len(), count);
        assert_eq!(find("sslmode").unwrap().env, Some("PGSSLMODE"));
        assert!(find("ssl_mode").is_none());
    }

    #[test]
    fn fixed_values_and_numbers_are_checked() {
        let sslmode = find("sslmode").unwrap();
        for ok in [
            "",
            "disable",
            "allow",
            "prefer",
            "require",
            "verify-ca",
            "verify-full",
        ] {
            assert_eq!(check_value(sslmode, ok), Ok(()), "{ok}");
        }
        for bad in ["verify_full", "Require", "true", " prefer"] {
            let err = check_value(sslmode, bad).unwrap_err();
            assert!(err.starts_with("invalid sslmode value"), "{err}");
        }
        let timeout = find("connect_timeout").unwrap();
        assert_eq!(check_value(timeout, " 10 "), Ok(()));
        assert!(check_value(timeout, "10s").is_err());
        assert!(check_value(timeout, "99999999999").is_err());
        let port = find("port").unwrap();
        assert_eq!(check_value(port, "5432,,6000"), Ok(()));
        for bad in ["0", "65536", "-1", "54x"] {
            assert!(check_value(port, bad).is_err(), "{bad}");
        }
        assert_eq!(port_number(""), Ok(5432));
        assert_eq!(port_number(" 6000"), Ok(6000));
    }
}
