//! `synch-standby NAMES`: synchronous replication on the master, switched on only for
//! standbys that are there.
//!
//! With `synchronous_standby_names` set, every commit waits until enough of the named
//! standbys have its WAL. Naming standbys none of which is streaming would stop every
//! commit at once, so before enabling, the walsenders are checked: `*` needs one standby
//! streaming, a list needs one of its names streaming, `FIRST n (...)`/`ANY n (...)` need n
//! of them. Otherwise nothing changes. `''` switches it off and needs no check.
//!
//! NAMES is read as PostgreSQL reads the setting (syncrep_gram.y), so what walmgr checks is
//! what the server will wait for: names are unquoted identifiers, numbers or `"quoted"`,
//! `*` stands for any standby, and names match application_name case-insensitively.

use std::fmt;

use crate::changes::Changes;
use crate::error::{Error, Result};
use crate::server::{SyncReplication, Walsender};
use crate::setup::server_settings::{quote_literal, SettingChange};

pub const SETTING: &str = "synchronous_standby_names";

/// How the server picks the standbys a commit waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `FIRST n (...)` (and the plain list, which is `FIRST 1`): the first n streaming by
    /// their place in the list.
    First,
    /// `ANY n (...)`: any n of them (quorum).
    Any,
}

/// A parsed, non-empty `synchronous_standby_names`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStandbys {
    pub method: Method,
    /// How many standbys each commit waits for.
    pub num: u32,
    /// The names as the server compares them (quotes removed); `*` matches any standby.
    pub names: Vec<String>,
    /// Written as a list of names alone (no FIRST/ANY n).
    plain: bool,
}

impl SyncStandbys {
    fn matches(&self, application_name: &str) -> bool {
        self.names
            .iter()
            .any(|n| n == "*" || n.eq_ignore_ascii_case(application_name))
    }
}

/// What commits will wait for, as a DBA reads it: "standby s1", "FIRST 2 of s1, s2, s3".
impl fmt::Display for SyncStandbys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.names.join(", ");
        match (self.plain, self.names.as_slice()) {
            (true, [one]) if one == "*" => write!(f, "any one standby"),
            (true, [one]) => write!(f, "standby {one}"),
            (true, _) => write!(f, "the first streaming of {names}"),
            (false, _) => {
                let method = match self.method {
                    Method::First => "FIRST",
                    Method::Any => "ANY",
                };
                write!(f, "{method} {} of {names}", self.num)
            }
        }
    }
}

/// Parses NAMES as the server parses synchronous_standby_names. `Ok(None)` is `''`
/// (synchronous replication off). Err says what is wrong and how to write it.
pub fn parse(text: &str) -> std::result::Result<Option<SyncStandbys>, String> {
    let tokens = tokens(text)?;
    if tokens.is_empty() {
        return Ok(None);
    }
    let mut rest = tokens.as_slice();
    let (method, num, plain) = match rest {
        [Token::Keyword(m), Token::Num(n), Token::Open, ..] => {
            let found = (*m, Some(n.as_str()), false);
            rest = &rest[3..];
            found
        }
        [Token::Keyword(m), ..] => {
            return Err(format!(
                "{} must be followed by a number and a list in parentheses, e.g. '{} 1 (s1, s2)' \
                 (a standby named {m:?} must be written in double quotes)",
                keyword(*m),
                keyword(*m)
            ))
        }
        [Token::Num(n), Token::Open, ..] => {
            let found = (Method::First, Some(n.as_str()), false);
            rest = &rest[2..];
            found
        }
        _ => (Method::First, None, true),
    };
    let num: u32 = match num {
        None => 1,
        Some(n) => n
            .parse()
            .map_err(|_| format!("{n} is not a number of standbys"))?,
    };
    if num == 0 {
        return Err("the number of synchronous standbys must be greater than zero".into());
    }
    let mut names = Vec::new();
    loop {
        match rest {
            [Token::Name(n) | Token::Num(n), after @ ..] => {
                names.push(n.clone());
                rest = after;
            }
            _ => return Err(expected("a standby name", rest)),
        }
        match rest {
            [Token::Comma, after @ ..] => rest = after,
            [Token::Close, after @ ..] if !plain => {
                rest = after;
                break;
            }
            [] if plain => break,
            _ => {
                return Err(expected(
                    if plain {
                        "',' or the end"
                    } else {
                        "',' or ')'"
                    },
                    rest,
                ))
            }
        }
    }
    if !rest.is_empty() {
        return Err(expected("the end", rest));
    }
    Ok(Some(SyncStandbys {
        method,
        num,
        names,
        plain,
    }))
}

fn keyword(m: Method) -> &'static str {
    match m {
        Method::First => "FIRST",
        Method::Any => "ANY",
    }
}

fn expected(what: &str, rest: &[Token]) -> String {
    match rest.first() {
        None => format!("expected {what}, but NAMES ends there"),
        Some(t) => format!("expected {what} before {t}"),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Keyword(Method),
    Name(String),
    Num(String),
    Comma,
    Open,
    Close,
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Keyword(m) => write!(f, "{}", keyword(*m)),
            Token::Name(n) | Token::Num(n) => write!(f, "{n:?}"),
            Token::Comma => write!(f, "','"),
            Token::Open => write!(f, "'('"),
            Token::Close => write!(f, "')'"),
        }
    }
}

/// syncrep_scanner.l: identifiers start with a letter, `_` or a non-ASCII byte and go on
/// with those, digits and `$`; ANY and FIRST are keywords in any case; `"..."` quotes
/// anything (`""` is a quote); `*` is a name.
fn tokens(text: &str) -> std::result::Result<Vec<Token>, String> {
    let ident_start = |c: char| c.is_ascii_alphabetic() || c == '_' || !c.is_ascii();
    let ident_cont = |c: char| ident_start(c) || c.is_ascii_digit() || c == '$';
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            ',' => out.push(Token::Comma),
            '(' => out.push(Token::Open),
            ')' => out.push(Token::Close),
            '*' => out.push(Token::Name("*".into())),
            '"' => {
                let mut name = String::new();
                loop {
                    match chars.next() {
                        Some('"') if chars.next_if_eq(&'"').is_some() => name.push('"'),
                        Some('"') => break,
                        Some(c) => name.push(c),
                        None => return Err("a double-quoted name is not closed".into()),
                    }
                }
                out.push(Token::Name(name));
            }
            c if c.is_ascii_digit() => {
                let mut num = c.to_string();
                while let Some(d) = chars.next_if(char::is_ascii_digit) {
                    num.push(d);
                }
                out.push(Token::Num(num));
            }
            c if ident_start(c) => {
                let mut name = c.to_string();
                while let Some(d) = chars.next_if(|d| ident_cont(*d)) {
                    name.push(d);
                }
                out.push(if name.eq_ignore_ascii_case("first") {
                    Token::Keyword(Method::First)
                } else if name.eq_ignore_ascii_case("any") {
                    Token::Keyword(Method::Any)
                } else {
                    Token::Name(name)
                });
            }
            other => {
                return Err(format!(
                    "{other:?} cannot appear in a name unless it is double-quoted, \
                     e.g. '\"standby-1\"'"
                ))
            }
        }
    }
    Ok(out)
}

/// The streaming standbys that `wanted` counts, if there are enough of them for commits
/// not to wait forever; else why not (for the refusal).
pub fn check(
    wanted: &SyncStandbys,
    walsenders: &[Walsender],
) -> std::result::Result<Vec<String>, String> {
    let counted: Vec<String> = walsenders
        .iter()
        .filter(|w| w.state == "streaming" && wanted.matches(&w.application_name))
        .map(|w| w.application_name.clone())
        .collect();
    if counted.len() >= wanted.num as usize {
        return Ok(counted);
    }
    let needed = match (wanted.num, wanted.names.as_slice()) {
        (1, [one]) if one == "*" => "a standby".to_string(),
        (1, [one]) => format!("standby {one}"),
        (1, names) => format!("one of {}", names.join(", ")),
        (n, names) if names.iter().any(|name| name == "*") => format!("{n} standbys"),
        (n, names) => format!("{n} of {}", names.join(", ")),
    };
    let streaming = match counted.as_slice() {
        [] => "none is".to_string(),
        some => format!("only {} is", some.join(", ")),
    };
    let connected = if walsenders.is_empty() {
        "no standby is connected".to_string()
    } else {
        format!(
            "connected: {}",
            walsenders
                .iter()
                .map(|w| format!("{} ({})", w.application_name, w.state))
                .collect::<Vec<_>>()
                .join(", ")
        )
    };
    Err(format!(
        "{needed} must be connected and streaming before commits can wait for it, but \
         {streaming} ({connected}); every commit would hang. Start the standby, or check \
         application_name in its primary_conninfo (SELECT application_name, state FROM \
         pg_stat_replication); nothing changed"
    ))
}

/// Sets synchronous_standby_names to `names` after the check, and reloads; returns the one
/// line to tell the DBA. A refusal (or a dry run) changes nothing.
pub fn run(server: &mut dyn SyncReplication, names: &str, changes: &mut Changes) -> Result<String> {
    let names = names.trim();
    let wanted = parse(names)
        .map_err(|m| Error::Usage(format!("synchronous_standby_names {names:?}: {m}")))?;
    let dry = changes.is_dry_run();
    let mut said = match &wanted {
        None => format!(
            "synchronous replication {}: commits {} wait for a standby",
            if dry { "would be off" } else { "off" },
            if dry { "would no longer" } else { "no longer" }
        ),
        Some(wanted) => {
            let counted = check(wanted, &server.walsenders()?).map_err(Error::refused)?;
            format!(
                "synchronous replication {}: commits {} for {wanted} (streaming now: {})",
                if dry { "would be on" } else { "on" },
                if dry { "would wait" } else { "wait" },
                counted.join(", ")
            )
        }
    };
    let change = SettingChange {
        name: SETTING,
        value: Some(names.to_string()),
    };
    changes.apply(change.to_sql(), || server.alter_system(&change))?;
    changes.apply("SELECT pg_reload_conf()", || server.reload())?;
    if wanted.is_some() {
        let commit = server.setting("synchronous_commit")?;
        if matches!(commit.as_str(), "off" | "local") {
            said.push_str(&format!(
                "; but synchronous_commit is {}, so commits do not wait until it is on, \
                 remote_write or remote_apply",
                quote_literal(&commit)
            ));
        }
    }
    Ok(said)
}

/// What `walmgr.synch_standby()` returns: one change per line, then the line for the DBA.
/// The CLI reads it back with [`read_report`].
pub fn report(changes: &Changes, said: &str) -> String {
    let mut lines = changes.described().to_vec();
    lines.push(said.to_string());
    lines.join("\n")
}

/// (changes, the line for the DBA) of a [`report`].
pub fn read_report(text: &str) -> (Vec<&str>, &str) {
    let mut lines: Vec<&str> = text.lines().collect();
    let said = lines.pop().unwrap_or("");
    (lines, said)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(text: &str) -> SyncStandbys {
        parse(text).unwrap().unwrap()
    }

    fn walsender(name: &str, state: &str) -> Walsender {
        Walsender {
            application_name: name.into(),
            state: state.into(),
        }
    }

    #[test]
    fn names_parse_as_postgresql_reads_them() {
        assert_eq!(parse("").unwrap(), None);
        assert_eq!(parse("  ").unwrap(), None);
        let list = parsed("s1, \"Standby-2\", 3");
        assert_eq!(list.names, ["s1", "Standby-2", "3"]);
        assert_eq!((list.method, list.num), (Method::First, 1));
        let any = parsed("any 2 (s1, s2, *)");
        assert_eq!((any.method, any.num), (Method::Any, 2));
        assert_eq!(any.names, ["s1", "s2", "*"]);
        let first = parsed("FIRST 1 (s1)");
        assert_eq!((first.method, first.num), (Method::First, 1));
        let legacy = parsed("2 (a, b)");
        assert_eq!((legacy.method, legacy.num), (Method::First, 2));
        assert_eq!(parsed("\"say \"\"hi\"\"\"").names, ["say \"hi\""]);
        assert_eq!(parsed("s$1_x").names, ["s$1_x"]);
        // An identifier that only begins like a keyword is a name.
        assert_eq!(parsed("anyone, firstly").names, ["anyone", "firstly"]);
    }

    #[test]
    fn what_postgresql_would_refuse_is_refused_with_how_to_write_it() {
        for (bad, says) in [
            ("standby-1", "double-quoted"),
            ("s1 s2", "expected ',' or the end"),
            ("FIRST (s1)", "followed by a number"),
            ("any", "double quotes"),
            ("ANY 0 (s1)", "greater than zero"),
            ("ANY 1 (s1", "NAMES ends there"),
            ("ANY 1 (s1) s2", "expected the end"),
            ("s1,", "expected a standby name"),
            ("\"open", "not closed"),
            ("(s1)", "expected a standby name"),
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.contains(says), "{bad}: {err}");
        }
    }

    #[test]
    fn a_named_standby_must_be_streaming_and_matches_case_insensitively() {
        let connected = [
            walsender("S1", "streaming"),
            walsender("s2", "catchup"),
            walsender("pg_basebackup", "backup"),
        ];
        assert_eq!(check(&parsed("s1"), &connected).unwrap(), ["S1"]);
        assert_eq!(check(&parsed("s2, s1"), &connected).unwrap(), ["S1"]);
        let err = check(&parsed("s2"), &connected).unwrap_err();
        assert!(
            err.contains("standby s2 must be connected and streaming"),
            "{err}"
        );
        assert!(err.contains("s2 (catchup)"), "{err}");
        assert!(err.contains("nothing changed"), "{err}");
        let err = check(&parsed("nosuch, other"), &connected).unwrap_err();
        assert!(err.contains("one of nosuch, other"), "{err}");
    }

    #[test]
    fn a_star_needs_any_standby_streaming() {
        assert_eq!(
            check(&parsed("*"), &[walsender("whatever", "streaming")]).unwrap(),
            ["whatever"]
        );
        let err = check(&parsed("*"), &[]).unwrap_err();
        assert!(err.starts_with("a standby must be connected"), "{err}");
        assert!(err.contains("no standby is connected"), "{err}");
        let err = check(&parsed("*"), &[walsender("s1", "startup")]).unwrap_err();
        assert!(err.contains("s1 (startup)"), "{err}");
    }

    #[test]
    fn first_and_any_need_as_many_streaming_as_they_wait_for() {
        let connected = [walsender("s1", "streaming"), walsender("s3", "streaming")];
        assert!(check(&parsed("FIRST 2 (s1, s2, s3)"), &connected).is_ok());
        assert!(check(&parsed("ANY 2 (*)"), &connected).is_ok());
        let err = check(&parsed("ANY 2 (s1, s2)"), &connected).unwrap_err();
        assert!(err.starts_with("2 of s1, s2 must be"), "{err}");
        assert!(err.contains("only s1 is"), "{err}");
        assert!(check(&parsed("ANY 3 (*)"), &connected).is_err());
    }

    /// A master as the workflow sees it.
    #[derive(Default)]
    struct FakeMaster {
        walsenders: Vec<Walsender>,
        synchronous_commit: String,
        set: Vec<String>,
        reloads: usize,
    }

    impl SyncReplication for FakeMaster {
        fn walsenders(&mut self) -> Result<Vec<Walsender>> {
            Ok(self.walsenders.clone())
        }
        fn setting(&mut self, name: &str) -> Result<String> {
            assert_eq!(name, "synchronous_commit");
            Ok(self.synchronous_commit.clone())
        }
        fn alter_system(&mut self, change: &SettingChange) -> Result<()> {
            self.set.push(change.to_sql());
            Ok(())
        }
        fn reload(&mut self) -> Result<()> {
            self.reloads += 1;
            Ok(())
        }
    }

    fn master_with(walsenders: &[Walsender]) -> FakeMaster {
        FakeMaster {
            walsenders: walsenders.to_vec(),
            synchronous_commit: "on".into(),
            ..FakeMaster::default()
        }
    }

    #[test]
    fn enabling_a_streaming_standby_sets_the_names_and_reloads() {
        let mut master = master_with(&[walsender("s1", "streaming")]);
        let mut changes = Changes::new(false);
        let said = run(&mut master, " s1 ", &mut changes).unwrap();
        assert_eq!(
            said,
            "synchronous replication on: commits wait for standby s1 (streaming now: s1)"
        );
        assert_eq!(
            master.set,
            ["ALTER SYSTEM SET synchronous_standby_names = 's1'"]
        );
        assert_eq!(master.reloads, 1);
        assert_eq!(
            changes.described(),
            [
                "ALTER SYSTEM SET synchronous_standby_names = 's1'",
                "SELECT pg_reload_conf()"
            ]
        );
    }

    #[test]
    fn a_refusal_and_a_dry_run_change_nothing() {
        let mut master = master_with(&[walsender("s1", "streaming")]);
        let err = run(&mut master, "s2", &mut Changes::new(false)).unwrap_err();
        assert!(matches!(err, Error::Refused(_)), "{err}");
        let err = run(&mut master, "standby-2", &mut Changes::new(false)).unwrap_err();
        assert!(matches!(err, Error::Usage(_)), "{err}");
        let mut changes = Changes::new(true);
        let said = run(&mut master, "FIRST 1 (s1, \"it's\")", &mut changes).unwrap();
        assert!(
            said.starts_with("synchronous replication would be on"),
            "{said}"
        );
        assert_eq!(
            changes.described()[0],
            "ALTER SYSTEM SET synchronous_standby_names = 'FIRST 1 (s1, \"it''s\")'"
        );
        assert!(master.set.is_empty());
        assert_eq!(master.reloads, 0);
    }

    #[test]
    fn disabling_needs_no_standby() {
        let mut master = master_with(&[]);
        let said = run(&mut master, "", &mut Changes::new(false)).unwrap();
        assert!(said.starts_with("synchronous replication off"), "{said}");
        assert_eq!(
            master.set,
            ["ALTER SYSTEM SET synchronous_standby_names = ''"]
        );
    }

    #[test]
    fn a_synchronous_commit_that_does_not_wait_is_pointed_out() {
        let mut master = master_with(&[walsender("s1", "streaming")]);
        master.synchronous_commit = "local".into();
        let said = run(&mut master, "s1", &mut Changes::new(false)).unwrap();
        assert!(said.contains("synchronous_commit is 'local'"), "{said}");
    }

    #[test]
    fn a_report_reads_back_into_changes_and_the_line_for_the_dba() {
        let mut changes = Changes::new(true);
        changes.record("ALTER SYSTEM SET synchronous_standby_names = 's1'");
        changes.record("SELECT pg_reload_conf()");
        let text = report(&changes, "synchronous replication would be on");
        let (done, said) = read_report(&text);
        assert_eq!(done, changes.described());
        assert_eq!(said, "synchronous replication would be on");
    }
}
