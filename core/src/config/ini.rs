//! walmgr3's `.ini` files, read as Python's ConfigParser read them.
//!
//! Only `[walmgr]` configures anything. `[DEFAULT]` is merged under it, as ConfigParser
//! does; names in it that are not keys are allowed, as they only serve `%(name)s`
//! references. Other sections are ignored.

use std::collections::BTreeMap;
use std::path::Path;

use super::{keys, RawEntry, RawValue};
use crate::error::{Error, Origin, Result};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    Walmgr,
    Default,
    Other,
}

struct Pending {
    section: Section,
    key: String,
    indent: usize,
}

pub(super) fn read(text: &str, source: &Path) -> Result<BTreeMap<String, RawEntry>> {
    let at = |line: usize| Origin::Line(source.to_path_buf(), line);
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);

    let mut walmgr: BTreeMap<String, RawEntry> = BTreeMap::new();
    let mut defaults: BTreeMap<String, RawEntry> = BTreeMap::new();
    let mut section: Option<Section> = None;
    let mut seen_walmgr = false;
    let mut pending: Option<Pending> = None;

    for (index, line) in text.lines().enumerate() {
        let lineno = index + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        let indent = line.len() - line.trim_start().len();

        if let Some(p) = pending.as_ref().filter(|p| indent > p.indent) {
            let map = match p.section {
                Section::Walmgr => &mut walmgr,
                Section::Default => &mut defaults,
                Section::Other => continue,
            };
            if let Some(RawEntry {
                value: RawValue::Str(value),
                ..
            }) = map.get_mut(&p.key)
            {
                value.push('\n');
                value.push_str(trimmed);
            }
            continue;
        }
        pending = None;

        if let Some(header) = trimmed.strip_prefix('[') {
            // ConfigParser ignored anything after the closing bracket.
            let name = match header.find(']') {
                Some(end) if end > 0 => &header[..end],
                _ => {
                    return Err(Error::config(
                        at(lineno),
                        None,
                        format!("malformed section header {trimmed:?}"),
                    ))
                }
            };
            section = Some(match name {
                "walmgr" => {
                    seen_walmgr = true;
                    Section::Walmgr
                }
                "DEFAULT" => Section::Default,
                _ => Section::Other,
            });
            continue;
        }

        let Some(sep) = trimmed.find([':', '=']) else {
            return Err(Error::config(
                at(lineno),
                None,
                format!("expected `key = value` or a [section] header, found {trimmed:?}"),
            ));
        };
        let key = trimmed[..sep].trim_end().to_lowercase();
        if key.is_empty() {
            return Err(Error::config(
                at(lineno),
                None,
                format!("missing key name before '{}'", &trimmed[sep..=sep]),
            ));
        }
        let mut value = trimmed[sep + 1..].trim_start().to_owned();
        // ConfigParser's way of writing an empty value.
        if value == "\"\"" {
            value.clear();
        }

        let Some(section) = section else {
            return Err(Error::config(
                at(lineno),
                Some(&key),
                "set before any section header; walmgr settings belong under [walmgr]",
            ));
        };
        let map = match section {
            Section::Walmgr => {
                if keys::kind(&key).is_none() && !keys::is_variable(&key) {
                    return Err(Error::config(
                        at(lineno),
                        Some(&key),
                        keys::unknown_key_message(&key),
                    ));
                }
                &mut walmgr
            }
            Section::Default => &mut defaults,
            Section::Other => {
                pending = Some(Pending {
                    section,
                    key,
                    indent,
                });
                continue;
            }
        };
        // A repeated key replaces the earlier one, as in ConfigParser.
        map.insert(
            key.clone(),
            RawEntry {
                value: RawValue::Str(value),
                origin: at(lineno),
            },
        );
        pending = Some(Pending {
            section,
            key,
            indent,
        });
    }

    if !seen_walmgr {
        return Err(Error::config(
            Origin::File(source.to_path_buf()),
            None,
            "no [walmgr] section",
        ));
    }
    for (key, entry) in defaults {
        walmgr.entry(key).or_insert(entry);
    }
    Ok(walmgr)
}
