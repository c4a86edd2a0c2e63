//! WAL file names: the one gate between a name from outside (archive_command's %f,
//! restore_command's %f, a master's PUT) and a path in the archive.

use proptest::prelude::*;
use walmgr_core::archive::store::ArchiveStore;
use walmgr_core::wal::{SegmentName, WalFileName};

fn segment() -> impl Strategy<Value = SegmentName> {
    (1u32.., any::<u32>(), any::<u32>()).prop_map(|(tli, log, seg)| SegmentName { tli, log, seg })
}

fn wal_file_name() -> impl Strategy<Value = WalFileName> {
    prop_oneof![
        segment().prop_map(WalFileName::Segment),
        (1u32..).prop_map(|tli| WalFileName::History { tli }),
        (segment(), any::<u32>())
            .prop_map(|(segment, offset)| WalFileName::Backup { segment, offset }),
        segment().prop_map(WalFileName::Partial),
    ]
}

/// Names one typo away from valid ones: a character replaced, inserted or dropped, from
/// an alphabet of hex digits in both cases, separators, signs and path characters.
fn near_miss() -> impl Strategy<Value = String> {
    let edit_char = prop::sample::select(
        "0123456789ABCDEFabcdef./+- \0\n%:\\\u{e9}"
            .chars()
            .collect::<Vec<_>>(),
    );
    (
        wal_file_name(),
        any::<prop::sample::Index>(),
        edit_char,
        0..3u8,
    )
        .prop_map(|(name, at, c, edit)| {
            let mut chars: Vec<char> = name.to_string().chars().collect();
            let i = at.index(chars.len());
            match edit {
                0 => chars[i] = c,
                1 => chars.insert(i, c),
                _ => {
                    chars.remove(i);
                }
            }
            chars.into_iter().collect()
        })
}

/// What every accepted name must be: spelled exactly as walmgr writes it, and the name of
/// a file directly inside the archive directory.
fn accepted_name_stays_in_the_archive(text: &str) -> Result<(), TestCaseError> {
    let Ok(name) = WalFileName::parse(text) else {
        return Ok(());
    };
    prop_assert_eq!(name.to_string(), text, "one spelling per name");
    prop_assert!(
        !text.contains(['/', '\0']) && text != "." && text != "..",
        "{:?} is accepted but is no plain file name",
        text
    );
    let store = ArchiveStore::new("/srv/walshipping/logs.complete");
    let path = store.path_of(&name);
    prop_assert_eq!(path.parent(), Some(store.dir()));
    prop_assert_eq!(path.file_name().and_then(|n| n.to_str()), Some(text));
    Ok(())
}

proptest! {
    #![proptest_config(crate::cases(512))]

    /// Every name walmgr can form parses back to itself.
    #[test]
    fn every_wal_file_name_round_trips_through_its_text(name in wal_file_name()) {
        let text = name.to_string();
        prop_assert_eq!(WalFileName::parse(&text).ok(), Some(name), "{}", text);
    }

    /// Any string: a name or an error that quotes it, never a panic; an accepted name is a
    /// plain file right inside the archive.
    #[test]
    fn any_string_is_a_wal_name_inside_the_archive_or_an_error_that_quotes_it(text in "\\PC{0,48}") {
        match WalFileName::parse(&text) {
            Ok(_) => accepted_name_stays_in_the_archive(&text)?,
            Err(e) => prop_assert!(e.to_string().contains(&format!("{text:?}")), "{}", e),
        }
    }

    /// Names a typo away from valid ones are where a lax parser slips; each one is refused
    /// or is itself a valid name in its one spelling.
    #[test]
    fn names_one_edit_from_valid_are_refused_or_exactly_valid(text in near_miss()) {
        accepted_name_stays_in_the_archive(&text)?;
    }

    /// Segment numbers and names agree for every segment size PostgreSQL allows.
    #[test]
    fn a_segment_number_and_its_name_are_the_same_thing(
        tli in 1u32..,
        size_log2 in 20u32..=30,
        segno in any::<u64>(),
    ) {
        let seg_size = 1u32 << size_log2;
        // Names only reach 0xFFFFFFFF in their middle 8 digits.
        let segno = segno % (u64::from(u32::MAX) * (0x1_0000_0000u64 / u64::from(seg_size)));
        let name = SegmentName::from_segno(tli, segno, seg_size);
        prop_assert_eq!(name.segno(seg_size), segno);
        prop_assert_eq!(name.start_lsn(seg_size), segno * u64::from(seg_size));
        let text = WalFileName::Segment(name).to_string();
        prop_assert_eq!(WalFileName::parse(&text).ok(), Some(WalFileName::Segment(name)));
    }
}
