//! The native format: a TOML document with exactly one table, `[walmgr]`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;
use toml::{Spanned, Value};

use super::{keys, RawEntry, RawValue};
use crate::error::{Error, Origin, Result};

type SpannedTable = BTreeMap<Spanned<String>, Spanned<Value>>;

#[derive(Deserialize)]
struct Document {
    walmgr: SpannedTable,
}

pub(super) fn read(text: &str, source: &Path) -> Result<BTreeMap<String, RawEntry>> {
    let at = |offset: usize| Origin::Line(source.to_path_buf(), line_of(text, offset));
    let syntax = |e: toml::de::Error| {
        let origin = match e.span() {
            Some(span) => at(span.start),
            None => Origin::File(source.to_path_buf()),
        };
        Error::config(
            origin,
            None,
            format!("invalid TOML: {}", e.message().trim_end()),
        )
    };

    // First only the top level, so that stray keys and tables get a message of their own
    // instead of serde's "unknown field".
    let top: SpannedTable = toml::from_str(text).map_err(syntax)?;
    let mut found = false;
    for (name, value) in sorted(top) {
        let origin = at(name.span().start);
        match (name.get_ref().as_str(), value.get_ref()) {
            ("walmgr", Value::Table(_)) => found = true,
            ("walmgr", other) => {
                return Err(Error::config(
                    origin,
                    Some("walmgr"),
                    format!("must be a table ([walmgr]), not {}", other.type_str()),
                ))
            }
            (name, Value::Table(_)) => {
                return Err(Error::config(
                    origin,
                    None,
                    format!("unexpected table [{name}]: a walmgr config has only [walmgr]"),
                ))
            }
            (name, _) => {
                return Err(Error::config(
                    origin,
                    Some(name),
                    "set outside the [walmgr] table; put it below the [walmgr] line",
                ))
            }
        }
    }
    if !found {
        return Err(Error::config(
            Origin::File(source.to_path_buf()),
            None,
            "no [walmgr] table",
        ));
    }

    let document: Document = toml::from_str(text).map_err(syntax)?;
    let mut entries = BTreeMap::new();
    for (name, value) in sorted(document.walmgr) {
        let origin = at(name.span().start);
        let name = name.into_inner();
        let Some(kind) = keys::kind(&name) else {
            return Err(Error::config(
                origin,
                Some(&name),
                keys::unknown_key_message(&name),
            ));
        };
        let value = match value.into_inner() {
            Value::String(s) => RawValue::Str(s),
            Value::Integer(i) => RawValue::Int(i),
            Value::Float(f) => RawValue::Float(f),
            Value::Boolean(b) => RawValue::Bool(b),
            other => {
                return Err(Error::config(
                    origin,
                    Some(&name),
                    format!("must be {}, not {}", kind.describe(), other.type_str()),
                ))
            }
        };
        entries.insert(name, RawEntry { value, origin });
    }
    Ok(entries)
}

/// In file order, so the first problem reported is the first one in the file.
fn sorted(table: SpannedTable) -> Vec<(Spanned<String>, Spanned<Value>)> {
    let mut items: Vec<_> = table.into_iter().collect();
    items.sort_by_key(|(name, _)| name.span().start);
    items
}

fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}
