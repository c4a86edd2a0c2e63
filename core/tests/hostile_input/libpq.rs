//! libpq's files as walmgr reads them: a password file or a service file holding anything
//! gives an answer or an error that names a line of it, never a panic; and a password line
//! as `--add-password` writes it is the line the reader (libpq's rules) finds, and only for
//! its own connection.

use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;
use walmgr_core::libpq::pgpass::{find, Wanted};
use walmgr_core::libpq::service;
use walmgr_core::setup::pgpass::escape;

/// Field text with every character the format treats specially. Not `\r`: libpq drops
/// every `\r` at the end of a line, escaped or not, so a password ending in one cannot be
/// written at all (`--add-password` reads the password as a line, without it).
fn field() -> impl Strategy<Value = String> {
    vec(
        prop_oneof![
            3 => prop::char::range('a', 'z'),
            1 => prop::sample::select(vec![':', '\\', '*', ' ', '#', '/', '.']),
        ],
        1..10,
    )
    .prop_map(|chars| chars.into_iter().collect::<String>())
}

/// Lines made of fields, separators, escapes and stars: text a password file may hold.
fn pgpass_soup() -> impl Strategy<Value = Vec<u8>> {
    vec(
        prop_oneof![
            4 => prop::sample::select(vec![
                &b"h"[..], b":", b"\\", b"*", b"*:", b"\n", b"\r\n", b"#", b"5432", b"db", b"u",
                b"\xff", b" ",
            ])
            .prop_map(|b| b.to_vec()),
            1 => vec(any::<u8>(), 0..4),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(crate::cases(512))]

    /// Any bytes: a password from a line that exists, or none; never a panic.
    #[test]
    fn any_password_file_answers_without_panicking(text in pgpass_soup()) {
        let wanted = Wanted { host: "h", port: "5432", dbname: "db", user: "u" };
        if let Some((_, line)) = find(&text, &wanted) {
            let lines = text.split(|b| *b == b'\n').count();
            prop_assert!(line >= 1 && line <= lines, "line {line} of {lines}");
        }
    }

    /// The line `--add-password` writes (each field escaped) is found for exactly its
    /// connection, with the password intact; another user, host or port does not get it,
    /// even when a field is `*` or holds `:` and `\`.
    #[test]
    fn a_written_line_answers_for_its_connection_only(
        host in field(),
        port in "[0-9]{1,5}",
        user in field(),
        other_user in field(),
        password in field(),
    ) {
        // The reader's own mapping of "" and the default socket to localhost is tested in
        // its unit tests; here hosts are plain names.
        prop_assume!(host != "localhost" && !host.is_empty());
        let line = format!(
            "{}:{}:replication:{}:{}\n",
            escape(&host), escape(&port), escape(&user), escape(&password)
        );
        let wanted = Wanted { host: &host, port: &port, dbname: "replication", user: &user };
        let (found, number) = find(line.as_bytes(), &wanted)
            .ok_or_else(|| TestCaseError::fail(format!("{line:?} not found for {wanted:?}")))?;
        prop_assert_eq!(found.expose(), password.as_bytes());
        prop_assert_eq!(number, 1);
        if other_user != user {
            let other = Wanted { user: &other_user, ..wanted.clone() };
            prop_assert!(find(line.as_bytes(), &other).is_none(), "{:?} answers for {:?}", line, other);
        }
    }

    /// Any text as a service file: the section's settings, none, or an error naming one of
    /// its lines; never a panic.
    #[test]
    fn any_service_file_gives_settings_or_an_error_with_its_line(
        lines in vec(prop_oneof![
            Just("[s]".to_string()),
            Just("[t]".to_string()),
            Just("host=h".to_string()),
            Just("port = 1".to_string()),
            Just("service=x".to_string()),
            Just("# c".to_string()),
            "[ -~]{0,12}",
        ], 0..12)
    ) {
        let text = lines.join("\n");
        let file = Path::new("/etc/pg_service.conf");
        match service::section(&text, file, "s") {
            Ok(Some(settings)) => {
                for s in settings {
                    prop_assert!(s.line >= 1 && s.line <= lines.len());
                }
            }
            Ok(None) => {}
            Err(e) => {
                let e = e.to_string();
                let line: usize = e
                    .strip_prefix("/etc/pg_service.conf:")
                    .and_then(|rest| rest.split(':').next())
                    .and_then(|n| n.parse().ok())
                    .ok_or_else(|| TestCaseError::fail(format!("no line in {e:?}")))?;
                prop_assert!(line >= 1 && line <= lines.len(), "{e}");
            }
        }
    }
}
