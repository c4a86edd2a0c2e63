//! A standby in a scratch directory that serves one `walmgr xserve` session from raw bytes,
//! and the proof that the session changed nothing outside the standby's own directories.
//!
//! This one file is shared by the property tests (core/tests/hostile_input) and the fuzz
//! target (fuzz/fuzz_targets/wire.rs includes it with `#[path]`), so an input the fuzzer
//! finds replays in `cargo test` once it is dropped into fuzz/corpus/wire/.
//!
//! The scratch directory is the parent of the standby's walmgr_data and also holds a
//! directory beside it, `outside`, with a file in it: a request that escapes walmgr's
//! directories (through `..`, an absolute path, or a symlink it sent itself) shows up there.

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufReader, Cursor};
use std::path::{Path, PathBuf};

use walmgr_core::archive::partial::PartialStore;
use walmgr_core::archive::store::ArchiveStore;
use walmgr_core::config::{Config, Format};
use walmgr_core::remote::slave_dirs;
use walmgr_core::remote::wire::Receiver;
use walmgr_core::wal::WalFileName;

/// What one session did: how it ended, and every reply line it wrote.
pub struct Session {
    pub result: walmgr_core::Result<u64>,
    pub replies: Vec<u8>,
}

pub struct ScratchStandby {
    root: tempfile::TempDir,
    pub walmgr_data: PathBuf,
    pub outside: PathBuf,
    receiver: Receiver,
    /// Everything in the scratch directory but walmgr_data, before the session.
    before: BTreeMap<PathBuf, Entry>,
}

/// What a path is, as far as an escape could change it.
#[derive(Debug, PartialEq, Eq)]
enum Entry {
    Dir,
    File(Vec<u8>),
    Link(PathBuf),
    Other,
}

impl ScratchStandby {
    /// A standby whose config names only walmgr_data (so every directory is walmgr3's
    /// default layout under it), with nothing created yet: the session's DIRS creates them.
    pub fn new() -> ScratchStandby {
        let root = tempfile::Builder::new()
            .prefix("walmgr-hostile-")
            .tempdir()
            .expect("create a scratch directory");
        let walmgr_data = root.path().join("walmgr");
        let outside = root.path().join("outside");
        fs::create_dir_all(outside.join("sub")).expect("create the outside directory");
        fs::write(outside.join("victim"), b"no request may change this file\n")
            .expect("write the outside file");
        let text = format!(
            "[walmgr]\nwalmgr_data = '{}'\nkeep_backups = 1\n",
            walmgr_data.display()
        );
        let config = Config::parse(&text, Path::new("slave.toml"), Format::Toml, &[])
            .expect("the scratch standby's config parses");
        let receiver = Receiver {
            store: ArchiveStore::new(config.completed_wals.clone()),
            partials: PartialStore::new(config.partial_wals.clone()),
            dirs: slave_dirs(&config),
            standby: Some(config),
        };
        let before = snapshot_outside(root.path(), &walmgr_data);
        ScratchStandby {
            root,
            walmgr_data,
            outside,
            receiver,
            before,
        }
    }

    /// The scratch directory: walmgr_data and `outside` are in it.
    pub fn root(&self) -> &Path {
        self.root.path()
    }

    /// Serves `input` as one xserve session, the way `walmgr xserve` serves its stdin.
    pub fn serve(&self, input: &[u8]) -> Session {
        let mut replies = Vec::new();
        let result = self
            .receiver
            .serve(BufReader::new(Cursor::new(input)), &mut replies);
        Session { result, replies }
    }

    /// Ok when nothing outside walmgr_data changed, and walmgr_data holds only walmgr's
    /// directories, and completed_wals and partial_wals only walmgr's files; else what
    /// escaped.
    pub fn nothing_escaped(&self) -> Result<(), String> {
        let after = snapshot_outside(self.root(), &self.walmgr_data);
        for (path, entry) in &after {
            match self.before.get(path) {
                None => {
                    return Err(format!(
                        "{} was created outside walmgr_data",
                        path.display()
                    ))
                }
                Some(was) if was != entry => {
                    return Err(format!(
                        "{} was changed outside walmgr_data",
                        path.display()
                    ))
                }
                Some(_) => {}
            }
        }
        if let Some(gone) = self.before.keys().find(|p| !after.contains_key(*p)) {
            return Err(format!(
                "{} was removed outside walmgr_data",
                gone.display()
            ));
        }
        for name in names_in(&self.walmgr_data) {
            if !is_walmgr_dir(&name) {
                return Err(format!(
                    "walmgr_data/{name} is none of walmgr's directories"
                ));
            }
        }
        for dir in ["logs.complete", "logs.partial"] {
            for name in names_in(&self.walmgr_data.join(dir)) {
                if !is_archive_file(&name) {
                    return Err(format!(
                        "walmgr_data/{dir}/{name} is neither WAL nor walmgr's own file"
                    ));
                }
            }
        }
        Ok(())
    }
}

impl Default for ScratchStandby {
    fn default() -> Self {
        ScratchStandby::new()
    }
}

/// walmgr3's layout under walmgr_data: completed_wals, partial_wals, config_backup, and
/// full_backup with its staging copy (`.inprogress`) and rotated sets (`.1`, `.2`, ...).
fn is_walmgr_dir(name: &str) -> bool {
    matches!(
        name,
        "logs.complete" | "logs.partial" | "config.backup" | "data.master"
    ) || name.starts_with("data.master.")
}

/// A WAL file, a temp or held-length file beside one, the partial store's `.lock`, or
/// BACKUPLOCK (with its draft and stale names).
fn is_archive_file(name: &str) -> bool {
    let bare = name.strip_prefix('.').unwrap_or(name);
    let wal = bare
        .strip_suffix(".walmgr-tmp")
        .or_else(|| bare.strip_suffix(".held"))
        .unwrap_or(bare);
    WalFileName::parse(wal).is_ok() || name == ".lock" || bare.starts_with("BACKUPLOCK")
}

fn names_in(dir: &Path) -> Vec<String> {
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Every path under `root` but `skip` (and what is under it), never following a symlink.
fn snapshot_outside(root: &Path, skip: &Path) -> BTreeMap<PathBuf, Entry> {
    let mut found = BTreeMap::new();
    let mut todo = vec![root.to_path_buf()];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.filter_map(|e| e.ok()) {
            let path = entry.path();
            if path == skip {
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            let kind = if meta.file_type().is_symlink() {
                Entry::Link(fs::read_link(&path).unwrap_or_default())
            } else if meta.is_dir() {
                todo.push(path.clone());
                Entry::Dir
            } else if meta.is_file() {
                Entry::File(fs::read(&path).unwrap_or_default())
            } else {
                Entry::Other
            };
            found.insert(path, kind);
        }
    }
    found
}
