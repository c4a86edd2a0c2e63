//! Tablespaces of a restored set: a backup holds each one in place, as a directory
//! `pg_tblspc/OID` (PostgreSQL itself would refuse to start with that: every entry of
//! pg_tblspc must be a symlink), and the map pg_backup_stop() gave (`OID PATH` lines).
//! Restore puts each one where it belongs on this host, at the master's path or where
//! `tablespace_mapping` says, and links pg_tblspc/OID to it, as `pg_basebackup -Fp` does.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use crate::backup::datadir;
use crate::changes::Changes;
use crate::error::{Error, Result};
use crate::os::files::{create_private_dir, give_to_owner_of};

/// The file a backup keeps the tablespace map in (see backup::take).
pub const MAP_FILE: &str = "walmgr_tablespace_map.txt";

/// `OLDDIR=NEWDIR` pairs, comma-separated, `\,` and `\=` escaped.
pub fn parse_mapping(text: &str) -> Result<BTreeMap<PathBuf, PathBuf>> {
    let mut map = BTreeMap::new();
    for entry in split_unescaped(text, ',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let parts = split_unescaped(entry, '=');
        let [old, new] = parts.as_slice() else {
            return Err(Error::Usage(format!(
                "tablespace_mapping: {entry:?} is not OLDDIR=NEWDIR"
            )));
        };
        let (old, new) = (
            PathBuf::from(unescape(old.trim())),
            PathBuf::from(unescape(new.trim())),
        );
        if !old.is_absolute() || !new.is_absolute() {
            return Err(Error::Usage(format!(
                "tablespace_mapping: {entry:?}: both directories must be absolute paths"
            )));
        }
        map.insert(old, new);
    }
    Ok(map)
}

/// Splits at `sep` where it is not escaped; escapes stay for [`unescape`].
fn split_unescaped(text: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        let last = parts.last_mut().expect("one part");
        match c {
            '\\' => {
                last.push('\\');
                if let Some(next) = chars.next() {
                    last.push(next);
                }
            }
            c if c == sep => parts.push(String::new()),
            c => last.push(c),
        }
    }
    parts
}

fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some(next @ (',' | '=' | '\\'))) => {
                out.push(next);
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// One tablespace of a set: its OID and where it goes on this host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub oid: String,
    pub master_path: PathBuf,
    pub target: PathBuf,
}

/// Where each tablespace of `set` goes. Checked before anything moves: a target that exists
/// and is not empty is refused (it could be the master's own tablespace, on this host),
/// unless it is among `freed` (the tablespaces of the data directory this restore replaces).
pub fn plan(
    set: &Path,
    mapping: &BTreeMap<PathBuf, PathBuf>,
    freed: &[PathBuf],
) -> Result<Vec<Placement>> {
    let map_path = set.join(MAP_FILE);
    let text = match fs::read_to_string(&map_path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("read", &map_path, e)),
    };
    let mut placements = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let Some((oid, path)) = line.split_once(' ') else {
            return Err(Error::damaged(
                &map_path,
                format!("line {line:?} is not `OID PATH`"),
            ));
        };
        if oid.is_empty() || !oid.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Error::damaged(
                &map_path,
                format!("{oid:?} is not a tablespace OID"),
            ));
        }
        let master_path = PathBuf::from(path);
        let target = mapping
            .get(&master_path)
            .cloned()
            .unwrap_or_else(|| master_path.clone());
        let not_empty =
            !freed.contains(&target) && fs::read_dir(&target).is_ok_and(|mut d| d.next().is_some());
        if not_empty {
            return Err(Error::refused(format!(
                "tablespace {oid} of the backup goes to {}, which exists and is not empty \
                 (the master's own tablespace, if master and standby share this host): map it \
                 elsewhere with tablespace_mapping = \"{}=NEWDIR\" in the slave config",
                target.display(),
                master_path.display()
            )));
        }
        placements.push(Placement {
            oid: oid.to_string(),
            master_path,
            target,
        });
    }
    Ok(placements)
}

/// The directories the tablespace links of the data directory `data` point to.
pub fn linked_targets(data: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(data.join("pg_tblspc")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| fs::read_link(e.path()).ok())
        .filter(|t| t.is_absolute())
        .collect()
}

/// The tablespaces of a data directory that a restore replaces go with it: removed with
/// it, or (`aside` = the suffix it gets) set aside beside their place, its links following.
pub fn replace_old(data: &Path, aside: Option<&str>, changes: &mut Changes) -> Result<()> {
    let Ok(entries) = fs::read_dir(data.join("pg_tblspc")) else {
        return Ok(());
    };
    for link in entries.filter_map(|e| e.ok()).map(|e| e.path()) {
        let Ok(target) = fs::read_link(&link) else {
            continue;
        };
        if !target.is_absolute() || !target.exists() {
            continue;
        }
        match aside {
            Some(suffix) => {
                let moved = PathBuf::from(format!("{}.{suffix}", target.display()));
                changes.apply(
                    format!(
                        "rename tablespace {} to {}",
                        target.display(),
                        moved.display()
                    ),
                    || {
                        fs::rename(&target, &moved).map_err(|e| Error::io("rename", &target, e))?;
                        fs::remove_file(&link).map_err(|e| Error::io("remove", &link, e))?;
                        std::os::unix::fs::symlink(&moved, &link)
                            .map_err(|e| Error::io("create symlink", &link, e))
                    },
                )?;
            }
            None => {
                changes.apply(format!("remove tablespace {}", target.display()), || {
                    fs::remove_dir_all(&target).map_err(|e| Error::io("remove", &target, e))
                })?;
            }
        }
    }
    Ok(())
}

/// Moves each tablespace out of `data`/pg_tblspc to its target and links it there.
pub fn place(data: &Path, placements: &[Placement], changes: &mut Changes) -> Result<()> {
    for p in placements {
        let link = data.join("pg_tblspc").join(&p.oid);
        changes.apply(
            format!(
                "move tablespace {} (on the master {}) to {} and link {} to it",
                p.oid,
                p.master_path.display(),
                p.target.display(),
                link.display()
            ),
            || {
                if let Some(parent) = p.target.parent() {
                    create_private_dir(parent)?;
                }
                if p.target.is_dir() {
                    // An empty target may exist (a mount point, a prepared directory): the
                    // tablespace's contents go into it.
                    for entry in fs::read_dir(&link).map_err(|e| Error::io("list", &link, e))? {
                        let entry = entry.map_err(|e| Error::io("list", &link, e))?;
                        move_dir(&entry.path(), &p.target.join(entry.file_name()))?;
                    }
                    fs::remove_dir(&link).map_err(|e| Error::io("remove", &link, e))?;
                } else {
                    move_dir(&link, &p.target)?;
                }
                std::os::unix::fs::symlink(&p.target, &link)
                    .map_err(|e| Error::io("create symlink", &link, e))?;
                give_to_owner_of(&link, data)?;
                give_to_owner_of(&p.target, data)
            },
        )?;
    }
    Ok(())
}

/// rename, or across filesystems (a tmpfs, another disk) a copy, then the original goes.
fn move_dir(from: &Path, to: &Path) -> Result<()> {
    match fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(nix::errno::Errno::EXDEV as i32) => {
            if fs::symlink_metadata(from).is_ok_and(|m| m.is_dir()) {
                datadir::copy_tree(from, to, &mut |_| {})?;
                fs::remove_dir_all(from).map_err(|e| Error::io("remove", from, e))
            } else {
                fs::copy(from, to).map_err(|e| Error::io("copy", from, e))?;
                fs::remove_file(from).map_err(|e| Error::io("remove", from, e))
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::DirectoryNotEmpty => Err(Error::refused(
            format!("{} exists and is not empty", to.display()),
        )),
        Err(e) => Err(Error::io("move", from, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_are_old_new_pairs_with_escapes() {
        let map = parse_mapping("/srv/ts1=/data/ts1, /srv/a\\,b=/data/a\\=b").unwrap();
        assert_eq!(map[Path::new("/srv/ts1")], Path::new("/data/ts1"));
        assert_eq!(map[Path::new("/srv/a,b")], Path::new("/data/a=b"));
        assert!(parse_mapping("/srv/ts1").is_err());
        assert!(parse_mapping("relative=/x").is_err());
        assert!(parse_mapping("").unwrap().is_empty());
    }

    #[test]
    fn each_tablespace_goes_to_its_mapped_or_own_path_and_is_linked() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("standby");
        fs::create_dir_all(data.join("pg_tblspc/16400/PG_15_x")).unwrap();
        fs::write(data.join("pg_tblspc/16400/PG_15_x/f"), "rows").unwrap();
        fs::create_dir_all(data.join("pg_tblspc/16401")).unwrap();
        let mapped = dir.path().join("mine/ts1");
        let unmapped = dir.path().join("master/ts2");
        fs::write(
            data.join(MAP_FILE),
            format!("16400 /master/ts1\n16401 {}\n", unmapped.display()),
        )
        .unwrap();
        let mapping = parse_mapping(&format!("/master/ts1={}", mapped.display())).unwrap();
        let placements = plan(&data, &mapping, &[]).unwrap();
        place(&data, &placements, &mut Changes::new(false)).unwrap();
        assert_eq!(fs::read_link(data.join("pg_tblspc/16400")).unwrap(), mapped);
        assert_eq!(
            fs::read_to_string(mapped.join("PG_15_x/f")).unwrap(),
            "rows"
        );
        assert_eq!(
            fs::read_link(data.join("pg_tblspc/16401")).unwrap(),
            unmapped
        );
    }

    #[test]
    fn a_target_in_use_is_refused_before_anything_moves() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("standby");
        fs::create_dir_all(data.join("pg_tblspc/16400")).unwrap();
        let masters = dir.path().join("master/ts1");
        fs::create_dir_all(&masters).unwrap();
        fs::write(masters.join("PG_VERSION"), "15").unwrap();
        fs::write(
            data.join(MAP_FILE),
            format!("16400 {}\n", masters.display()),
        )
        .unwrap();
        let err = plan(&data, &BTreeMap::new(), &[]).unwrap_err().to_string();
        assert!(err.contains("exists and is not empty"), "{err}");
        assert!(err.contains("tablespace_mapping"), "{err}");
        assert!(data.join("pg_tblspc/16400").is_dir());
    }
}
