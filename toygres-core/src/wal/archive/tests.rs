use super::*;
use crate::envelope::DataKey;

#[test]
fn objects_round_trip_and_refuse_changed_or_swapped_bytes() {
    let archive = WalArchive::of(InstanceId::new());
    let key = DataKey::generate();
    let raw: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
    for key in [None, Some(&key)] {
        let stored = archive.encode(key, "000000010000000000000003", &raw).unwrap();
        assert!(stored.len() < raw.len(), "compressed");
        assert_eq!(archive.decode(key, "000000010000000000000003", &stored).unwrap(), raw);
        let mut changed = stored.clone();
        let at = changed.len() / 2;
        changed[at] ^= 1;
        assert!(matches!(archive.decode(key, "000000010000000000000003", &changed), Err(Error::Corrupt(_))));
    }
    let sealed = archive.encode(Some(&key), "000000010000000000000003", &raw).unwrap();
    let swapped = archive.decode(Some(&key), "000000010000000000000004", &sealed);
    assert!(matches!(swapped, Err(Error::Corrupt(m)) if m.contains("authentication")));
    let other = WalArchive::of(InstanceId::new());
    assert!(other.decode(Some(&key), "000000010000000000000003", &sealed).is_err(), "bound to its archive");
}

#[test]
fn a_replay_reads_whole_segments_then_the_partial_head_and_names_a_hole() {
    let contents =
        ArchiveContents { segments: vec![(1, 2), (1, 3), (1, 4)], partials: vec![(1, 5)], histories: vec![] };
    let (from, to) = (Lsn::of_segment(3), Lsn(Lsn::of_segment(5).0 + 100));
    let names = contents.replay_objects(1, from, to).unwrap();
    assert_eq!(names, ["000000010000000000000003", "000000010000000000000004", "000000010000000000000005.partial"]);
    let holed = ArchiveContents { segments: vec![(1, 3), (1, 5)], ..contents.clone() };
    let err = holed.replay_objects(1, from, Lsn::of_segment(5)).unwrap_err();
    assert!(matches!(err, Error::Corrupt(m) if m.contains("000000010000000000000004")));
    assert!(contents.replay_objects(2, from, to).is_err(), "another timeline's segments do not count");
    assert_eq!(contents.before(1, Lsn::of_segment(4)), ["000000010000000000000002", "000000010000000000000003"]);
}
