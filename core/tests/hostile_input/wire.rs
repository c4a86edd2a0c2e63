//! The standby's side of the wire protocol (`walmgr xserve`) against a hostile master: raw
//! bytes, and sessions that follow the protocol but name paths that climb out (`..`,
//! absolute paths, symlinks the session sent itself), lie about lengths and offsets, or
//! mix every BACKUP operation in any order.

use proptest::collection::vec;
use proptest::prelude::*;
use serde_json::{json, Value};

use crate::scratch_standby::{ScratchStandby, Session};

/// How a session's PUT, PARTIAL and BACKUP bodies travel.
#[derive(Debug, Clone, Copy)]
enum Encoding {
    Plain,
    Zstd,
}

/// One request as a master could send it. Paths and link targets may hold `@OUTSIDE` and
/// `@ROOT`, which become the scratch directory's `outside` and the scratch directory
/// itself when the session is written out.
#[derive(Debug, Clone)]
enum Request {
    Put {
        name: String,
        body: Vec<u8>,
    },
    Partial {
        name: String,
        offset: u64,
        body: Vec<u8>,
    },
    Dirs {
        create: bool,
    },
    Backup {
        op: Value,
        body: Option<Vec<u8>>,
    },
    /// A line outside the protocol (it ends the session), or bytes that are not even that.
    Garbage(Vec<u8>),
}

/// Segments that recur, so that requests in one session meet each other's files.
fn segment_name() -> impl Strategy<Value = String> {
    (1u32..=2, 0u32..=3).prop_map(|(tli, seg)| format!("{tli:08X}00000000{seg:08X}"))
}

fn wal_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => segment_name(),
        1 => (1u32..=3).prop_map(|tli| format!("{tli:08X}.history")),
        1 => segment_name().prop_map(|s| format!("{s}.partial")),
        1 => segment_name().prop_map(|s| format!("{s}.00000028.backup")),
        2 => prop::sample::select(vec![
            "../000000010000000000000001",
            "/etc/passwd",
            "@OUTSIDE/victim",
            "000000010000000000000001/..",
            ".",
            "..",
            "BACKUPLOCK",
            ".lock",
        ])
        .prop_map(String::from),
        1 => "[^ \n]{0,30}",
    ]
}

/// The 40-byte long page header that starts every WAL segment (1 MB segments here), so
/// that PARTIAL at offset 0 is accepted and later offsets meet a held copy.
fn segment_header(name: &str) -> Vec<u8> {
    let tli = u32::from_str_radix(&name[0..8], 16).unwrap_or(1);
    let seg = u64::from_str_radix(&name[16..24], 16).unwrap_or(0);
    let seg_size: u32 = 1 << 20;
    let mut h = vec![0u8; 40];
    h[0..2].copy_from_slice(&0xD110u16.to_ne_bytes());
    h[2..4].copy_from_slice(&2u16.to_ne_bytes());
    h[4..8].copy_from_slice(&tli.to_ne_bytes());
    h[8..16].copy_from_slice(&(seg * u64::from(seg_size)).to_ne_bytes());
    h[24..32].copy_from_slice(&7u64.to_ne_bytes());
    h[32..36].copy_from_slice(&seg_size.to_ne_bytes());
    h[36..40].copy_from_slice(&8192u32.to_ne_bytes());
    h
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..64)
}

/// Paths inside a backup set as a hostile master writes them: mostly plain ones, often
/// through a symlink sent earlier in the session (`l`, `d/l`), and some that climb out
/// with `..`, empty or absolute components, or name a place outside walmgr_data.
fn rel() -> impl Strategy<Value = String> {
    let plain = prop::sample::select(vec!["l", "l", "d", "x", "pg_tblspc", "16384", "victim"]);
    let hostile = prop::sample::select(vec!["..", ".", "", "l", "d", "x"]);
    prop_oneof![
        6 => vec(plain, 1..4).prop_map(|c| c.join("/")),
        2 => vec(hostile.clone(), 1..4).prop_map(|c| c.join("/")),
        1 => vec(hostile, 1..3).prop_map(|c| format!("/{}", c.join("/"))),
        1 => prop::sample::select(vec!["@OUTSIDE/x", "@OUTSIDE", "@ROOT/x", "@OUTSIDE/sub/x"]).prop_map(String::from),
        1 => "\\PC{0,12}",
    ]
}

/// Where a symlink in the set may point: anywhere, as a data directory's links do (a
/// tablespace, a log directory). Only ever inside the scratch directory, so that a bug
/// cannot reach the real filesystem: from the staging directory, `../..` is the scratch
/// directory itself.
fn link_target() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "@OUTSIDE",
        "@OUTSIDE/victim",
        "@OUTSIDE/sub",
        "@ROOT",
        "../../outside",
        "../../outside/victim",
        "../logs.complete",
        "../config.backup",
        "d",
        ".",
    ])
    .prop_map(String::from)
}

/// Modes as a master may send them; directories keep their owner's rwx so that the
/// scratch directory can always be removed, whoever runs the test.
fn mode() -> impl Strategy<Value = u64> {
    prop_oneof![
        Just(0o600u64),
        Just(0o700),
        Just(0o4755),
        Just(0o7777),
        any::<u64>()
    ]
}

fn backup_request() -> impl Strategy<Value = Request> {
    let plain = |op: Value| Request::Backup { op, body: None };
    prop_oneof![
        1 => (any::<bool>(), "\\PC{0,10}")
            .prop_map(move |(dry, what)| plain(json!({"op": "begin", "what": what, "dry": dry}))),
        3 => (rel(), mode()).prop_map(move |(rel, mode)| plain(json!({"op": "dir", "rel": rel, "mode": mode | 0o700}))),
        3 => (rel(), link_target())
            .prop_map(move |(rel, target)| plain(json!({"op": "link", "rel": rel, "target": target}))),
        4 => (rel(), mode(), body()).prop_map(|(rel, mode, body)| Request::Backup {
            op: json!({"op": "file", "rel": rel, "mode": mode, "len": body.len()}),
            body: Some(body),
        }),
        2 => (rel(), body()).prop_map(|(rel, body)| Request::Backup {
            op: json!({"op": "put", "rel": rel, "len": body.len()}),
            body: Some(body),
        }),
        1 => (prop::sample::select(vec!["postgresql.conf", "../x", "/etc/x", "", ".hidden", "@OUTSIDE/x"]), body(), any::<bool>())
            .prop_map(|(name, body, dry)| Request::Backup {
                op: json!({"op": "config", "name": name, "len": body.len(), "dry": dry}),
                body: Some(body),
            }),
        // Answered: reports (and clears) the first failure of the pipelined ones before it.
        4 => Just(plain(json!({"op": "check"}))),
        1 => Just(plain(json!({"op": "alive"}))),
        1 => any::<bool>().prop_map(move |dry| plain(json!({"op": "finish", "dry": dry}))),
        1 => Just(plain(json!({"op": "abort"}))),
        1 => Just(plain(json!({"op": "list"}))),
        // Too long to be a file of a backup: a protocol error, the session ends.
        1 => Just(plain(json!({"op": "file", "rel": "x", "len": u64::MAX}))),
    ]
}

/// A symlink, then a write through it: the way out that `..` checks alone do not close.
fn through_a_link() -> impl Strategy<Value = Vec<Request>> {
    (
        prop::sample::select(vec!["l", "d/l", "pg_tblspc/16384"]),
        link_target(),
        prop::sample::select(vec!["x", "victim", "sub", "sub/x", ""]),
        0..3u8,
        body(),
    )
        .prop_map(|(link, target, child, how, body)| {
            let rel = format!("{link}/{child}");
            let write = match how {
                0 => Request::Backup {
                    op: json!({"op": "file", "rel": rel, "mode": 0o644, "len": body.len()}),
                    body: Some(body),
                },
                1 => Request::Backup {
                    op: json!({"op": "put", "rel": rel, "len": body.len()}),
                    body: Some(body),
                },
                _ => Request::Backup {
                    op: json!({"op": "dir", "rel": rel, "mode": 0o700}),
                    body: None,
                },
            };
            vec![
                // Clears a failure kept from the requests before, which would skip these.
                Request::Backup {
                    op: json!({"op": "check"}),
                    body: None,
                },
                Request::Backup {
                    op: json!({"op": "link", "rel": link, "target": target}),
                    body: None,
                },
                write,
            ]
        })
}

/// In-progress WAL as the shipping loop sends it, a segment from offset 0 and then more of
/// it, except that the later offsets are anything at all.
fn in_progress_wal() -> impl Strategy<Value = Vec<Request>> {
    (
        segment_name(),
        body(),
        vec(
            (
                prop_oneof![0u64..(2 << 20), (u64::MAX - 100)..=u64::MAX, any::<u64>()],
                body(),
            ),
            1..4,
        ),
    )
        .prop_map(|(name, tail, more)| {
            let mut first = segment_header(&name);
            first.extend(tail);
            let mut requests = vec![Request::Partial {
                name: name.clone(),
                offset: 0,
                body: first,
            }];
            requests.extend(more.into_iter().map(|(offset, body)| Request::Partial {
                name: name.clone(),
                offset,
                body,
            }));
            requests
        })
}

/// One request, or a few that belong together.
fn requests() -> impl Strategy<Value = Vec<Request>> {
    prop_oneof![
        6 => request().prop_map(|r| vec![r]),
        1 => through_a_link(),
        1 => in_progress_wal(),
    ]
}

fn request() -> impl Strategy<Value = Request> {
    prop_oneof![
        2 => (wal_name(), body()).prop_map(|(name, body)| Request::Put { name, body }),
        2 => (segment_name(), prop_oneof![Just(0u64), 0u64..(2 << 20), any::<u64>()], body(), any::<bool>())
            .prop_map(|(name, offset, tail, with_header)| {
                let mut body = if with_header { segment_header(&name) } else { Vec::new() };
                body.extend(tail);
                Request::Partial { name, offset, body }
            }),
        1 => any::<bool>().prop_map(|create| Request::Dirs { create }),
        10 => backup_request(),
        1 => prop_oneof![
            "[A-Z]{1,8}( [^\n]{0,20})?".prop_map(|line| format!("{line}\n").into_bytes()),
            vec(any::<u8>(), 0..32),
        ]
        .prop_map(Request::Garbage),
    ]
}

/// A body as the session sends it: raw, or in zstd chunks (`raw_len`, `packed_len`, frame).
fn framed(body: &[u8], encoding: Encoding) -> Vec<u8> {
    match encoding {
        Encoding::Plain => body.to_vec(),
        Encoding::Zstd if body.is_empty() => Vec::new(),
        Encoding::Zstd => {
            let packed = zstd::bulk::compress(body, 1).expect("zstd compresses");
            let mut out = (body.len() as u32).to_be_bytes().to_vec();
            out.extend((packed.len() as u32).to_be_bytes());
            out.extend(packed);
            out
        }
    }
}

/// The bytes of a whole session: HELLO, DIRS create and a begun backup with its staging
/// directory (so that the requests after them reach the writers), then `requests`.
fn session_bytes(
    standby: &ScratchStandby,
    encoding: Encoding,
    requests: &[Request],
    bye: bool,
) -> Vec<u8> {
    let places = |text: &str| {
        text.replace("@OUTSIDE", &standby.outside.display().to_string())
            .replace("@ROOT", &standby.root().display().to_string())
    };
    let mut out = format!(
        "HELLO 1 {}\nDIRS create\nBACKUP {}\nBACKUP {}\n",
        match encoding {
            Encoding::Plain => "plain",
            Encoding::Zstd => "zstd",
        },
        json!({"op": "begin", "what": "hostile"}),
        json!({"op": "dir", "rel": "", "mode": 0o700}),
    )
    .into_bytes();
    for request in requests {
        match request {
            Request::Put { name, body } => {
                out.extend(format!("PUT {} {}\n", places(name), body.len()).bytes());
                out.extend(framed(body, encoding));
            }
            Request::Partial { name, offset, body } => {
                out.extend(format!("PARTIAL {name} {offset} {}\n", body.len()).bytes());
                out.extend(framed(body, encoding));
            }
            Request::Dirs { create } => out.extend(if *create {
                &b"DIRS create\n"[..]
            } else {
                b"DIRS check\n"
            }),
            Request::Backup { op, body } => {
                out.extend(format!("BACKUP {}\n", places(&op.to_string())).bytes());
                if let Some(body) = body {
                    out.extend(framed(body, encoding));
                }
            }
            Request::Garbage(bytes) => out.extend(bytes),
        }
    }
    if bye {
        out.extend(b"BYE\n");
    }
    out
}

/// Every line the standby wrote is a reply: `OK ...` or `ERR ...`, nothing else.
fn only_replies(session: &Session) -> Result<(), String> {
    let text = String::from_utf8_lossy(&session.replies);
    match text
        .lines()
        .find(|l| !l.starts_with("OK ") && !l.starts_with("ERR "))
    {
        Some(line) => Err(format!("the standby wrote {line:?}, which is no reply")),
        None => Ok(()),
    }
}

proptest! {
    #![proptest_config(crate::cases(64))]

    /// Any bytes at all, after a valid greeting or instead of one: the session ends with a
    /// result (a protocol error, most often), the standby wrote only replies, and nothing
    /// outside walmgr_data changed.
    #[test]
    fn arbitrary_bytes_end_the_session_cleanly_and_write_nothing_outside(
        greeting in prop::sample::select(vec!["", "HELLO 1 plain\n", "HELLO 1 zstd\n", "HELLO 1 plain\nDIRS create\n"]),
        bytes in vec(any::<u8>(), 0..512),
    ) {
        let standby = ScratchStandby::new();
        let mut input = greeting.as_bytes().to_vec();
        input.extend(&bytes);
        let session = standby.serve(&input);
        prop_assert!(only_replies(&session).is_ok(), "{:?}", only_replies(&session));
        prop_assert!(
            standby.nothing_escaped().is_ok(),
            "{} (the session ended with {:?})",
            standby.nothing_escaped().unwrap_err(),
            session.result
        );
    }

    /// Sessions that follow the protocol but whose every path, name, offset and link is
    /// chosen by an attacker holding the master's key: whatever they ask, no file or
    /// directory appears, changes or goes outside walmgr_data, and inside it nothing but
    /// walmgr's own directories and, in the archive, WAL files.
    #[test]
    fn a_hostile_master_writes_nothing_outside_the_standbys_directories(
        encoding in prop_oneof![Just(Encoding::Plain), Just(Encoding::Zstd)],
        requests in vec(requests(), 1..16).prop_map(|r| r.concat()),
        bye in any::<bool>(),
    ) {
        let standby = ScratchStandby::new();
        let input = session_bytes(&standby, encoding, &requests, bye);
        let session = standby.serve(&input);
        prop_assert!(only_replies(&session).is_ok(), "{:?}", only_replies(&session));
        prop_assert!(
            standby.nothing_escaped().is_ok(),
            "{} (the session ended with {:?})",
            standby.nothing_escaped().unwrap_err(),
            session.result
        );
    }
}

/// The fuzz target's seed corpus (fuzz/corpus/wire/, and whatever a fuzz run added there)
/// replays through the same scratch standby, so every input the fuzzer kept is checked in
/// the normal test run too.
#[test]
fn the_fuzz_corpus_replays_without_an_escape() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/wire");
    let mut inputs: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap_or_else(|e| panic!("{}: {e}", corpus.display()))
        .map(|e| e.expect("list the corpus").path())
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 5,
        "the seed corpus in {} is missing",
        corpus.display()
    );
    for input in inputs {
        let bytes = std::fs::read(&input).expect("read a corpus file");
        let standby = ScratchStandby::new();
        let session = standby.serve(&bytes);
        if let Err(e) = only_replies(&session).and_then(|_| standby.nothing_escaped()) {
            panic!("{}: {e}", input.display());
        }
    }
}
