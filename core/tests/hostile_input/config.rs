//! Config files and `--set` overrides, in both formats: any text loads or is refused with
//! an error that names the file, the line and the key; references between values resolve
//! or are refused (unset, malformed, in a cycle, or expanding without bound), and never
//! hang.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use walmgr_core::config::{Config, Format};
use walmgr_core::error::Origin;
use walmgr_core::Error;

const SOURCE: &str = "/etc/walmgr/hostile.conf";

/// Parses in a thread of its own and gives up after a while, so that a config that makes
/// the parser loop fails the test instead of hanging it.
fn parse_in_time(
    text: String,
    format: Format,
    overrides: Vec<(String, String)>,
) -> Result<walmgr_core::Result<Config>, TestCaseError> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(Config::parse(&text, Path::new(SOURCE), format, &overrides));
    });
    rx.recv_timeout(Duration::from_secs(20))
        .map_err(|_| TestCaseError::fail("the config parser did not finish in 20 s"))
}

/// An error from a config must say where: a line of the file (or its end), the file, or
/// `--set`; and the key it names must be one the config wrote (or walmgr_data, which the
/// error for a config without directories names), not something made up.
fn names_where(
    error: &Error,
    text: &str,
    overrides: &[(String, String)],
) -> Result<(), TestCaseError> {
    let Error::Config { origin, key, .. } = error else {
        return Err(TestCaseError::fail(format!("not a config error: {error}")));
    };
    match origin {
        Origin::Line(path, line) => {
            prop_assert_eq!(path, Path::new(SOURCE));
            // The line after the last one is the end of the file, where an unterminated
            // string or table ends.
            prop_assert!(
                *line >= 1 && *line <= text.lines().count() + 1,
                "line {} of a {}-line file: {}",
                line,
                text.lines().count(),
                error
            );
        }
        Origin::File(path) => prop_assert_eq!(path, Path::new(SOURCE)),
        Origin::CommandLine => {
            prop_assert!(!overrides.is_empty(), "--set blamed without one: {}", error)
        }
    }
    if let Some(key) = key {
        let written = text.to_lowercase().contains(&key.to_lowercase())
            || overrides.iter().any(|(k, _)| k == key)
            || key == "walmgr_data";
        prop_assert!(
            written,
            "the error names key {:?}, which was never written: {}",
            key,
            error
        );
    }
    Ok(())
}

/// Config files shaken up: lines that look like config lines (headers, `key = value` in
/// either format's spelling, comments, continuations) made of pieces that are each valid
/// somewhere, and now and then plain noise.
fn soup() -> impl Strategy<Value = String> {
    let key = prop::sample::select(vec![
        "walmgr_data",
        "walmgr_data",
        "logfile",
        "job_name",
        "keep_backups",
        "loop_delay",
        "network_timeout",
        "compression",
        "slave",
        "completed_wals",
        "master_data",
        "v1",
        "unknown_key",
        "WALMGR_DATA",
        "\"walmgr_data\"",
        "walmgr.x",
        "",
    ]);
    let value = prop::sample::select(vec![
        "/w",
        "\"/w\"",
        "\"/w\"",
        "\"/w\"",
        "'/w'",
        "~",
        "~/w",
        "~nobody-here/w",
        "%(walmgr_data)s/x",
        "\"${walmgr_data}/x\"",
        "%(v1)s",
        "\"${logfile}\"",
        "%(",
        "\"${\"",
        "%%",
        "$${",
        "1",
        "-1",
        "1e400",
        "nan",
        "inf",
        "30",
        "5",
        "true",
        "yes",
        "\"yes\"",
        "\"\"",
        "\"\"\"",
        "[1]",
        "{ a = 1 }",
        "1979-05-27",
        "\"\\u00e9\"",
        "# no value",
        "",
    ]);
    let line = prop_oneof![
        2 => prop::sample::select(vec![
            "[walmgr]", "[DEFAULT]", "[other]", "[walmgr", "[]", "[[walmgr]]", "[walmgr.x]",
            "# comment", "; comment", "", "   indented continuation", "\u{feff}[walmgr]",
        ]).prop_map(String::from),
        6 => (key, prop::sample::select(vec![" = ", " = ", " = ", "=", ": ", " ", " == "]), value)
            .prop_map(|(k, sep, v)| format!("{k}{sep}{v}")),
        1 => "\\PC{0,20}",
    ];
    prop_oneof![
        1 => "\\PC{0,80}",
        6 => (any::<bool>(), vec(line, 0..8)).prop_map(|(header, lines)| {
            let header = if header { "[walmgr]\n" } else { "" };
            format!("{header}{}", lines.join("\n"))
        }),
    ]
}

fn overrides() -> impl Strategy<Value = Vec<(String, String)>> {
    vec(
        (
            prop::sample::select(vec![
                "walmgr_data",
                "logfile",
                "keep_backups",
                "job_name",
                "nope",
            ]),
            prop_oneof![
                "\\PC{0,12}",
                Just("%(job_name)s".to_string()),
                Just("${job_name}".to_string())
            ],
        )
            .prop_map(|(k, v)| (k.to_string(), v)),
        0..3,
    )
}

fn format() -> impl Strategy<Value = Format> {
    prop_oneof![Just(Format::Ini), Just(Format::Toml)]
}

/// Keys whose values are text or paths, so that only their references can fail.
const POOL: &[&str] = &[
    "job_name",
    "logfile",
    "pidfile",
    "master_restart_cmd",
    "periodic_command",
    "slave_stop_cmd",
    "slave_start_cmd",
    "archive_command",
    "slave_walmgr",
];
/// Plain variables: an `.ini` file's [DEFAULT] section may hold any name.
const VARIABLES: &[&str] = &["v1", "v2", "v3"];

/// A piece of a value: text, a reference, or a malformed one.
#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Ref(String),
    Broken(usize),
}

/// Pieces of a `flawed` tangle may be malformed or refer to a name nothing sets; those
/// of the others are all well-formed, so that whether they load is up to their pattern.
fn piece(flawed: bool, format: Format) -> impl Strategy<Value = Piece> {
    // TOML has no [DEFAULT]: the variables are only set in `.ini` files.
    let variables = if format == Format::Ini || flawed {
        VARIABLES
    } else {
        &[]
    };
    let names: Vec<&str> = POOL
        .iter()
        .chain(variables)
        .chain(&["host_name", "config_dir"])
        .chain(if flawed { &["never_set"][..] } else { &[] })
        .copied()
        .collect();
    prop_oneof![
        3 => "[a-z/ ._-]{0,6}".prop_map(Piece::Text),
        4 => prop::sample::select(names).prop_map(|n| Piece::Ref(n.to_string())),
        u32::from(flawed) => (0..5usize).prop_map(Piece::Broken),
    ]
}

/// Every literal a piece can write is free of `(` and `{`: once a config loads, a value
/// that still holds one kept a reference unexpanded.
fn written(pieces: &[Piece], format: Format) -> String {
    pieces
        .iter()
        .map(|p| match (p, format) {
            (Piece::Text(t), Format::Ini) => t.clone(),
            // `$` alone and `$$` are shell text, kept as written.
            (Piece::Text(t), Format::Toml) => format!("{t}$$ $HOME"),
            (Piece::Ref(n), Format::Ini) => format!("%({n})s"),
            (Piece::Ref(n), Format::Toml) => format!("${{{n}}}"),
            (Piece::Broken(i), Format::Ini) => {
                ["% ", "%(", "%(job_name", "%()s", "%(job_name)x"][*i].into()
            }
            (Piece::Broken(i), Format::Toml) => {
                ["${", "${}", "${job_name", "${job_name$", "${ }"][*i].into()
            }
        })
        .collect::<Vec<_>>()
        .concat()
}

/// A config whose values refer to each other in any pattern: chains, cycles, references
/// to nothing, malformed ones, several references per value, with some keys overridden by
/// `--set`.
#[derive(Debug, Clone)]
struct Tangle {
    format: Format,
    values: BTreeMap<&'static str, Vec<Piece>>,
    overridden: Vec<&'static str>,
}

fn tangle() -> impl Strategy<Value = Tangle> {
    (any::<bool>(), format())
        .prop_flat_map(|(flawed, format)| {
            (
                vec(
                    (
                        0..POOL.len() + VARIABLES.len(),
                        vec(piece(flawed, format), 0..5),
                    ),
                    3..16,
                ),
                vec(0..POOL.len(), 0..2),
            )
                .prop_map(move |t| (flawed, format, t))
        })
        .prop_map(|(flawed, format, (entries, overridden))| {
            let mut values = BTreeMap::new();
            for (i, pieces) in entries {
                let Some(&name) = POOL.iter().chain(VARIABLES).nth(i) else {
                    continue;
                };
                // TOML has no [DEFAULT]: its files have only the real keys.
                if format == Format::Toml && VARIABLES.contains(&name) {
                    continue;
                }
                values.insert(name, pieces);
            }
            // In a tangle without flaws every name a piece may refer to is set (if only
            // to an empty value), so that only the pattern decides.
            for &name in POOL.iter().chain(VARIABLES) {
                if !flawed && (format == Format::Ini || POOL.contains(&name)) {
                    values.entry(name).or_default();
                }
            }
            let overridden = overridden.into_iter().map(|i| POOL[i]).collect();
            Tangle {
                format,
                values,
                overridden,
            }
        })
}

impl Tangle {
    /// The file, each key's line, and the `--set` pairs.
    fn render(&self) -> (String, BTreeMap<String, Origin>, Vec<(String, String)>) {
        let mut lines = Vec::new();
        let mut origins = BTreeMap::new();
        let line = |text: String, lines: &mut Vec<String>| {
            lines.push(text);
            lines.len()
        };
        let source = || Path::new(SOURCE).to_path_buf();
        if self.format == Format::Ini {
            line("[DEFAULT]".into(), &mut lines);
            for (name, pieces) in self.values.iter().filter(|(n, _)| VARIABLES.contains(n)) {
                let n = line(
                    format!("{name} = {}", written(pieces, self.format)),
                    &mut lines,
                );
                origins.insert(name.to_string(), Origin::Line(source(), n));
            }
        }
        line("[walmgr]".into(), &mut lines);
        line(
            match self.format {
                Format::Ini => "walmgr_data = /w".into(),
                Format::Toml => "walmgr_data = \"/w\"".into(),
            },
            &mut lines,
        );
        for (name, pieces) in self.values.iter().filter(|(n, _)| POOL.contains(n)) {
            let value = written(pieces, self.format);
            let value = match self.format {
                Format::Ini => value,
                Format::Toml => toml::Value::String(value).to_string(),
            };
            let n = line(format!("{name} = {value}"), &mut lines);
            origins.insert(name.to_string(), Origin::Line(source(), n));
        }
        let mut overrides = Vec::new();
        for name in &self.overridden {
            let pieces = self.values.get(name).cloned().unwrap_or_default();
            overrides.push((name.to_string(), written(&pieces, self.format)));
            origins.insert(name.to_string(), Origin::CommandLine);
        }
        (lines.join("\n") + "\n", origins, overrides)
    }
}

fn text_values(c: &Config) -> Vec<String> {
    let paths = [&c.logfile, &c.pidfile].map(|p| p.as_ref().map(|p| p.display().to_string()));
    let texts = [
        &c.job_name,
        &c.master_restart_cmd,
        &c.periodic_command,
        &c.slave_stop_cmd,
        &c.slave_start_cmd,
        &c.archive_command,
    ]
    .map(Clone::clone);
    paths
        .into_iter()
        .chain(texts)
        .flatten()
        .chain([c.slave_walmgr.clone()])
        .collect()
}

proptest! {
    #![proptest_config(crate::cases(256))]

    /// Any text, in either format, with any `--set`: a config or an error that names an
    /// existing line (or the file, or --set) and a key that was written; never a panic.
    #[test]
    fn any_text_is_a_config_or_an_error_that_says_where(
        text in soup(),
        format in format(),
        overrides in overrides(),
    ) {
        if let Err(e) = parse_in_time(text.clone(), format, overrides.clone())? {
            names_where(&e, &text, &overrides)?;
        }
    }

    /// References in any tangle finish: either every one is expanded, or the error names
    /// the key whose value holds the bad reference, on that key's own line (or --set).
    #[test]
    fn references_resolve_or_the_error_names_the_key_and_its_line(tangle in tangle()) {
        let (text, origins, overrides) = tangle.render();
        match parse_in_time(text.clone(), tangle.format, overrides.clone())? {
            Ok(config) => {
                for value in text_values(&config) {
                    prop_assert!(
                        !value.contains(['(', '{']),
                        "a reference was left unexpanded in {:?}\n{}", value, text
                    );
                    prop_assert!(value.len() <= 1 << 20, "{} bytes\n{}", value.len(), text);
                }
            }
            Err(e) => {
                let Error::Config { origin, key: Some(key), .. } = &e else {
                    return Err(TestCaseError::fail(format!("{e}\n{text}")));
                };
                prop_assert_eq!(Some(origin), origins.get(key), "{}\n{}", e, text);
                prop_assert!(e.to_string().contains(&format!("key '{key}'")), "{}", e);
            }
        }
    }

    /// A config that sets only walmgr_data, whatever its text: every directory of the
    /// standby is the walmgr3 default right under it.
    #[test]
    fn the_standby_directories_are_under_walmgr_data_whatever_it_is(
        // Neither `%` nor `$`, which start references, nor what each format quotes.
        data in "/[^\n\r%$'\"\\\\]{0,30}",
        format in format(),
    ) {
        let text = match format {
            Format::Ini => format!("[walmgr]\nwalmgr_data = {data}\n"),
            Format::Toml => format!("[walmgr]\nwalmgr_data = {}\n", toml::Value::String(data.clone())),
        };
        let config = parse_in_time(text.clone(), format, Vec::new())?
            .map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let walmgr_data = config.walmgr_data.clone().expect("walmgr_data is set");
        for dir in [
            Some(&config.completed_wals),
            Some(&config.partial_wals),
            Some(&config.full_backup),
            config.config_backup.as_ref(),
        ].into_iter().flatten() {
            prop_assert_eq!(dir.parent(), Some(walmgr_data.as_path()), "{}", dir.display());
        }
    }
}
