//! backup_label, as pg_backup_stop() writes it and as a damaged or forged set may hold it:
//! the WAL purge after a backup trusts the segment it names.

use std::path::Path;

use proptest::prelude::*;
use walmgr_core::backup::label::BackupLabel;
use walmgr_core::wal::{Lsn, SegmentName, WalFileName};

const SEG_SIZE: u32 = 16 << 20;

#[derive(Debug, Clone)]
struct Written {
    start: Lsn,
    checkpoint: Lsn,
    timeline: u32,
    label: String,
    start_time: String,
    from: &'static str,
}

fn written() -> impl Strategy<Value = Written> {
    (
        any::<u64>(),
        any::<u64>(),
        1u32..,
        "[^\n\r]{0,40}",
        "20[0-9]{2}-[01][0-9]-[0-3][0-9] [0-2][0-9]:[0-5][0-9]:[0-5][0-9] UTC",
        prop::sample::select(vec!["primary", "standby"]),
    )
        .prop_map(
            |(start, checkpoint, timeline, label, start_time, from)| Written {
                start: Lsn(start),
                checkpoint: Lsn(checkpoint),
                timeline,
                label,
                start_time,
                from,
            },
        )
}

impl Written {
    fn start_segment(&self) -> SegmentName {
        SegmentName::from_segno(self.timeline, self.start.0 / u64::from(SEG_SIZE), SEG_SIZE)
    }

    /// The file as PostgreSQL 15-18 write it.
    fn text(&self) -> String {
        format!(
            "START WAL LOCATION: {} (file {})\n\
             CHECKPOINT LOCATION: {}\n\
             BACKUP METHOD: streamed\n\
             BACKUP FROM: {}\n\
             START TIME: {}\n\
             LABEL: {}\n\
             START TIMELINE: {}\n",
            self.start,
            self.start_segment(),
            self.checkpoint,
            self.from,
            self.start_time,
            self.label,
            self.timeline
        )
    }
}

/// Labels near real ones: a real label with one line dropped, duplicated, cut short,
/// replaced by noise, or with one character changed.
fn damaged_label() -> impl Strategy<Value = String> {
    (
        written(),
        any::<prop::sample::Index>(),
        0..5u8,
        any::<prop::sample::Index>(),
        "[^\n]{0,30}",
    )
        .prop_map(|(label, line, damage, cut, noise)| {
            let text = label.text();
            let mut lines: Vec<String> = text.lines().map(String::from).collect();
            let i = line.index(lines.len());
            match damage {
                0 => {
                    lines.remove(i);
                }
                1 => lines.insert(i, lines[i].clone()),
                2 => {
                    let keep = cut.index(lines[i].len() + 1);
                    let keep = (0..=keep)
                        .rev()
                        .find(|k| lines[i].is_char_boundary(*k))
                        .unwrap_or(0);
                    lines[i].truncate(keep);
                }
                3 => lines[i] = noise,
                _ => {
                    let mut chars: Vec<char> = lines[i].chars().collect();
                    let at = cut
                        .index(chars.len().max(1))
                        .min(chars.len().saturating_sub(1));
                    if let Some(c) = chars.get_mut(at) {
                        *c = noise.chars().next().unwrap_or('x');
                    }
                    lines[i] = chars.into_iter().collect();
                }
            }
            lines.join("\n")
        })
}

fn parsed_or_error_naming_the_file(text: &str) -> Result<(), TestCaseError> {
    let path = Path::new("/srv/walshipping/data.master/backup_label");
    match BackupLabel::parse(text, path) {
        Ok(label) => {
            // The purge removes WAL before this segment: it must be a segment's own name.
            let name = WalFileName::Segment(label.start_segment).to_string();
            prop_assert_eq!(
                WalFileName::parse(&name).ok(),
                Some(WalFileName::Segment(label.start_segment))
            );
        }
        Err(e) => prop_assert!(
            e.to_string()
                .contains("/srv/walshipping/data.master/backup_label"),
            "the error does not name the file: {}",
            e
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(crate::cases(256))]

    /// Every label pg_backup_stop() can write parses to what it says.
    #[test]
    fn a_label_as_postgresql_writes_it_parses_to_its_fields(label in written()) {
        let parsed = BackupLabel::parse(&label.text(), Path::new("backup_label"))
            .map_err(|e| TestCaseError::fail(format!("{e}\n{}", label.text())))?;
        prop_assert_eq!(parsed.start_lsn, label.start);
        prop_assert_eq!(parsed.start_segment, label.start_segment());
        prop_assert_eq!(parsed.checkpoint_lsn, label.checkpoint);
        prop_assert_eq!(parsed.timeline, label.timeline);
        prop_assert_eq!(&parsed.label, &label.label);
        prop_assert_eq!(&parsed.start_time, &label.start_time);
        prop_assert_eq!(parsed.from, label.from);
    }

    /// Any text in backup_label: a label whose start segment is a plain WAL name, or an
    /// error that names the file, never a panic.
    #[test]
    fn any_text_is_a_label_or_an_error_naming_the_file(text in "\\PC{0,200}") {
        parsed_or_error_naming_the_file(&text)?;
    }

    /// The same for labels one damage away from real ones, where a parser is most tempted
    /// to accept half a line.
    #[test]
    fn a_damaged_label_is_refused_naming_the_file_or_still_plain(text in damaged_label()) {
        parsed_or_error_naming_the_file(&text)?;
    }
}
