//! References between values: walmgr3's `%(name)s` in `.ini` files and `${name}` in TOML.
//!
//! References are resolved on the raw text, before typing, so `--set walmgr_data=...`
//! also moves every path written as `%(walmgr_data)s/...`.

use std::collections::BTreeMap;
use std::path::Path;

use super::{Format, RawEntry, RawValue};
use crate::error::{Error, Origin, Result};
use crate::os::users as system;

/// The longest value references may expand to. No value walmgr reads comes near it (paths,
/// commands, connection strings); a value that refers to another twice, which refers to
/// another twice, ... doubles at each level, and forty lines would ask for terabytes.
const MAX_EXPANDED: usize = 1 << 20;

pub(super) struct Resolver<'a> {
    entries: &'a BTreeMap<String, RawEntry>,
    format: Format,
    source: &'a Path,
    done: BTreeMap<String, String>,
    /// Keys being expanded right now, outermost first: a reference to one of them is a cycle.
    active: Vec<String>,
}

impl<'a> Resolver<'a> {
    pub(super) fn new(
        entries: &'a BTreeMap<String, RawEntry>,
        format: Format,
        source: &'a Path,
    ) -> Self {
        Resolver {
            entries,
            format,
            source,
            done: BTreeMap::new(),
            active: Vec::new(),
        }
    }

    /// The fully expanded text of `name`, or None when nothing by that name is defined.
    pub(super) fn text_of(&mut self, name: &str) -> Result<Option<String>> {
        if let Some(done) = self.done.get(name) {
            return Ok(Some(done.clone()));
        }
        let Some(entry) = self.entries.get(name) else {
            return Ok(self.builtin(name));
        };
        let text = match &entry.value {
            RawValue::Str(raw) => {
                if let Some(start) = self.active.iter().position(|k| k == name) {
                    let mut chain = self.active[start..].to_vec();
                    chain.push(name.to_owned());
                    let top = self.active.last().map_or(name, String::as_str);
                    let origin = self
                        .entries
                        .get(top)
                        .map_or(entry.origin.clone(), |e| e.origin.clone());
                    return Err(Error::config(
                        origin,
                        Some(top),
                        format!(
                            "values refer to each other in a cycle: {}",
                            chain.join(" -> ")
                        ),
                    ));
                }
                self.active.push(name.to_owned());
                let expanded = self.expand(name, raw, &entry.origin);
                self.active.pop();
                expanded?
            }
            other => other.to_text(),
        };
        self.done.insert(name.to_owned(), text.clone());
        Ok(Some(text))
    }

    /// Values skytools' config class defined before reading the file; the file may
    /// override them, which `text_of` checks first.
    fn builtin(&self, name: &str) -> Option<String> {
        match name {
            // skytools named the job after the config file when job_name is not set.
            "job_name" => Some(job_name_default(self.source)),
            "service_name" => Some("walmgr".to_owned()),
            "host_name" => Some(system::host_name()),
            "config_dir" => Some(
                self.source
                    .parent()
                    .map(|p| p.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
            "config_file" => Some(self.source.to_string_lossy().into_owned()),
            _ => None,
        }
    }

    fn expand(&mut self, key: &str, raw: &str, origin: &Origin) -> Result<String> {
        match self.format {
            Format::Ini => self.expand_percent(key, raw, origin),
            Format::Toml => self.expand_dollar(key, raw, origin),
        }
    }

    /// Python 2 SafeConfigParser rules, which walmgr3 used: `%%` is a literal `%`,
    /// `%(name)s` a reference (names are case-insensitive like keys), any other `%` an error.
    fn expand_percent(&mut self, key: &str, raw: &str, origin: &Origin) -> Result<String> {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(pos) = rest.find('%') {
            out.push_str(&rest[..pos]);
            let after = &rest[pos + 1..];
            if let Some(tail) = after.strip_prefix('%') {
                out.push('%');
                rest = tail;
            } else if let Some(inner) = after.strip_prefix('(') {
                let close = inner
                    .find(')')
                    .filter(|&c| c > 0 && inner[c + 1..].starts_with('s'));
                let Some(close) = close else {
                    return Err(Error::config(
                        origin.clone(),
                        Some(key),
                        format!(
                            "bad reference {:?}: write %(name)s for another key's value, %% for a literal %",
                            truncate(&rest[pos..])
                        ),
                    ));
                };
                let name = inner[..close].to_lowercase();
                out.push_str(&self.reference(key, &name, &format!("%({name})s"), origin)?);
                bounded(&out, key, origin)?;
                rest = &inner[close + 2..];
            } else {
                return Err(Error::config(
                    origin.clone(),
                    Some(key),
                    "'%' must be followed by '%' or '(' (write %% for a literal %)",
                ));
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    /// `${name}` is a reference and `$${` a literal `${`; every other `$` is kept, since
    /// shell commands are full of `$VAR` and `$$`.
    fn expand_dollar(&mut self, key: &str, raw: &str, origin: &Origin) -> Result<String> {
        let mut out = String::with_capacity(raw.len());
        let mut rest = raw;
        while let Some(pos) = rest.find('$') {
            out.push_str(&rest[..pos]);
            let at = &rest[pos..];
            if let Some(tail) = at.strip_prefix("$${") {
                out.push_str("${");
                rest = tail;
            } else if let Some(inner) = at.strip_prefix("${") {
                let Some(close) = inner.find('}').filter(|&c| c > 0) else {
                    return Err(Error::config(
                        origin.clone(),
                        Some(key),
                        format!(
                            "bad reference {:?}: write ${{name}} for another key's value, $${{ for a literal ${{",
                            truncate(at)
                        ),
                    ));
                };
                let name = &inner[..close];
                out.push_str(&self.reference(key, name, &format!("${{{name}}}"), origin)?);
                bounded(&out, key, origin)?;
                rest = &inner[close + 1..];
            } else {
                out.push('$');
                rest = &at[1..];
            }
        }
        out.push_str(rest);
        Ok(out)
    }

    fn reference(
        &mut self,
        key: &str,
        name: &str,
        written: &str,
        origin: &Origin,
    ) -> Result<String> {
        match self.text_of(name)? {
            Some(text) => Ok(text),
            None => Err(Error::config(
                origin.clone(),
                Some(key),
                format!("refers to {written}, but '{name}' is not set"),
            )),
        }
    }
}

fn bounded(expanded: &str, key: &str, origin: &Origin) -> Result<()> {
    if expanded.len() <= MAX_EXPANDED {
        return Ok(());
    }
    Err(Error::config(
        origin.clone(),
        Some(key),
        format!(
            "its references expand to more than {} MiB; values that refer to others \
             several times, over many levels, grow without bound",
            MAX_EXPANDED >> 20
        ),
    ))
}

/// skytools' default job name: the config file's name without its extension.
pub(super) fn job_name_default(source: &Path) -> String {
    source
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "walmgr".to_owned())
}

fn truncate(s: &str) -> String {
    s.chars().take(30).collect()
}
