//! Connection strings with passwords: what walmgr shows of one (logs, errors, `-n`) must
//! hide the password however it was written, and must still say everything else.

use proptest::collection::vec;
use proptest::prelude::*;
use walmgr_core::conninfo::{keywords, redacted};

/// A password made to be spotted: upper-case letters (which nothing else in these
/// conninfos uses) mixed with every character that needs quoting or escaping somewhere.
fn password() -> impl Strategy<Value = String> {
    vec(
        prop_oneof![
            3 => prop::char::range('A', 'Z'),
            1 => prop::sample::select(vec![' ', '\'', '\\', '=', '@', ':', '/', '?', '&', '%', '#', '\t']),
        ],
        1..16,
    )
    .prop_map(|chars| chars.into_iter().collect::<String>())
    .prop_filter("a password with a letter to spot", |p| {
        p.chars().any(|c| c.is_ascii_uppercase())
    })
}

/// Everything else in a conninfo: lower case, digits and harmless punctuation.
fn other_value() -> impl Strategy<Value = String> {
    "[a-z0-9._-]{1,12}"
}

fn other_key() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "host",
        "port",
        "user",
        "dbname",
        "application_name",
        "sslmode",
    ])
    .prop_map(String::from)
}

/// One keyword=value pair written in any of the ways libpq reads it: unquoted with
/// backslash escapes, or single-quoted, with or without spaces around `=`.
fn written_pair(key: String, value: String) -> impl Strategy<Value = String> {
    (any::<bool>(), any::<bool>(), any::<bool>()).prop_map(
        move |(quote, space_before, space_after)| {
            let written = if quote || value.is_empty() {
                format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
            } else {
                value
                    .chars()
                    .flat_map(|c| {
                        let escape = c.is_whitespace() || c == '\\' || c == '\'';
                        escape.then_some('\\').into_iter().chain([c])
                    })
                    .collect()
            };
            format!(
                "{key}{}={}{written}",
                if space_before { " " } else { "" },
                if space_after { " " } else { "" }
            )
        },
    )
}

/// A keyword-form conninfo with a password somewhere among other keywords.
fn keyword_conninfo() -> impl Strategy<Value = (String, String)> {
    (
        vec((other_key(), other_value()), 0..4),
        password(),
        any::<prop::sample::Index>(),
    )
        .prop_flat_map(|(others, password, at)| {
            let mut pairs = others;
            let i = at.index(pairs.len() + 1);
            pairs.insert(i, ("password".to_string(), password.clone()));
            let written: Vec<_> = pairs.into_iter().map(|(k, v)| written_pair(k, v)).collect();
            (written, Just(password))
        })
        .prop_map(|(pairs, password)| (pairs.join(" "), password))
}

/// Percent-encodes every byte of `text`, or only those a URI cannot carry as they are
/// (in lower-case hex, so that no upper-case letter is left to spot but the password's).
fn percent(text: &str, all: bool) -> String {
    text.bytes()
        .map(|b| {
            if !all && (b.is_ascii_alphanumeric() || b == b'-' || b == b'.') {
                (b as char).to_string()
            } else {
                format!("%{b:02x}")
            }
        })
        .collect()
}

/// A URI with the password in its user info, or as a query parameter whose name may be
/// percent-encoded too (libpq decodes both).
fn uri_conninfo() -> impl Strategy<Value = (String, String)> {
    (
        password(),
        other_value(),
        other_value(),
        any::<bool>(),
        any::<bool>(),
        vec((other_key(), other_value()), 0..3),
    )
        .prop_map(|(password, user, host, in_userinfo, encode_all, params)| {
            let mut query: Vec<String> = params.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let authority = if in_userinfo {
                format!("{user}:{}@{host}", percent(&password, encode_all))
            } else {
                let key = if encode_all {
                    percent("password", true)
                } else {
                    "password".into()
                };
                query.push(format!("{key}={}", percent(&password, encode_all)));
                host
            };
            let query = if query.is_empty() {
                String::new()
            } else {
                format!("?{}", query.join("&"))
            };
            (format!("postgresql://{authority}/db{query}"), password)
        })
}

/// Any text, and text made of the pieces conninfos are made of, in any order.
fn soup() -> impl Strategy<Value = String> {
    let piece = prop::sample::select(vec![
        "password",
        "password",
        "host",
        "=",
        "=",
        " ",
        " ",
        "'",
        "\\",
        "\\ ",
        "\\'",
        "postgresql://",
        "postgres://",
        "@",
        ":",
        "/",
        "?",
        "&",
        "%70",
        "%",
        "A",
        "x",
        "\t",
    ]);
    prop_oneof![
        1 => "\\PC{0,60}",
        3 => vec(piece, 0..16).prop_map(|p| p.concat()),
    ]
}

/// What libpq would read from `conninfo`, with every password replaced by `***`.
fn as_shown(conninfo: &str) -> Option<Vec<(String, String)>> {
    keywords(conninfo).ok().map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| {
                if k == "password" {
                    (k, "***".to_string())
                } else {
                    (k, v)
                }
            })
            .collect()
    })
}

fn hides_the_password(conninfo: &str, password: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        keywords(conninfo)
            .ok()
            .and_then(|p| p.into_iter().find(|(k, _)| k == "password")),
        Some(("password".to_string(), password.to_string())),
        "the generator wrote {:?}, which libpq would not read as that password",
        conninfo
    );
    let shown = redacted(conninfo);
    prop_assert!(
        !shown.contains(|c: char| c.is_ascii_uppercase()),
        "{:?} shows part of the password {:?}: {:?}",
        conninfo,
        password,
        shown
    );
    prop_assert_eq!(as_shown(&shown), as_shown(conninfo), "shown as {:?}", shown);
    Ok(())
}

proptest! {
    #![proptest_config(crate::cases(512))]

    /// However a password is quoted or escaped in keyword form, no character of it shows,
    /// and what is shown still reads as the same connection.
    #[test]
    fn a_keyword_password_never_shows_however_it_is_written((conninfo, password) in keyword_conninfo()) {
        hides_the_password(&conninfo, &password)?;
    }

    /// The same for URIs: user info, `?password=`, percent-encoded or not.
    #[test]
    fn a_uri_password_never_shows_however_it_is_encoded((conninfo, password) in uri_conninfo()) {
        hides_the_password(&conninfo, &password)?;
    }

    /// Any text at all: reading and redacting it never panics, and whenever libpq would
    /// read keywords from it, the redacted text reads as the same keywords, with every
    /// password `***`.
    #[test]
    fn any_conninfo_redacts_to_the_same_connection_without_its_password(text in soup()) {
        let shown = redacted(&text);
        if let Some(expected) = as_shown(&text) {
            prop_assert_eq!(as_shown(&shown), Some(expected), "shown as {:?}", shown);
        }
    }
}
