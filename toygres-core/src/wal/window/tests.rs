use super::*;
use crate::wal::archive::ArchiveHead;
use chrono::Duration;

fn range(start: u64, end: u64, end_time: DateTime<Utc>) -> WalRange {
    WalRange { timeline: 1, start_lsn: Lsn(start), end_lsn: Lsn(end), end_time }
}

fn head(start: u64, lsn: u64, time: DateTime<Utc>) -> ArchiveHead {
    ArchiveHead {
        timeline: 1,
        start_lsn: Lsn(start),
        lsn: Lsn(lsn),
        time,
        gaps: vec![],
        timeline_switches: vec![],
        receiver_restarts: 0,
    }
}

#[test]
fn targets_choose_the_newest_base_before_them_and_outside_ones_are_refused() {
    let now = Utc::now();
    let t = |s: i64| now - Duration::seconds(s);
    let instance = InstanceId::new();
    let (old, new, before_archive) = (ImageId::new(), ImageId::new(), ImageId::new());
    let images = [(old, range(100, 200, t(50))), (new, range(300, 400, t(30))), (before_archive, range(10, 20, t(90)))];
    let window =
        RecoveryWindow::compute(instance, &Protection::started(None), Some(&head(50, 1000, t(1))), &images, now);
    assert_eq!(window.earliest.as_ref().unwrap().image_id, Some(old), "taken before archiving started: unusable");
    assert_eq!(window.latest.as_ref().unwrap().lsn, Lsn(1000));
    assert!(window.rpo_seconds.unwrap() >= 1.0);

    assert_eq!(window.admit(&RecoveryTarget::Time(t(40)), &[]).unwrap().0, old);
    assert_eq!(window.admit(&RecoveryTarget::Time(t(2)), &[]).unwrap().0, new);
    assert_eq!(window.admit(&RecoveryTarget::Latest, &[]).unwrap().0, new);
    assert_eq!(window.admit(&RecoveryTarget::Lsn(Lsn(250)), &[]).unwrap().0, old);
    for outside in [RecoveryTarget::Time(t(60)), RecoveryTarget::Time(now), RecoveryTarget::Lsn(Lsn(1001))] {
        let err = window.admit(&outside, &[]).unwrap_err();
        assert!(matches!(&err, Error::OutsideRecoveryWindow { window, .. } if window.starts_with("from ")), "{err}");
    }
    let point = RestorePoint { name: "before".into(), lsn: Lsn(500), time: t(10) };
    let named = RecoveryTarget::RestorePoint { name: "before".into(), lsn: Lsn(0) };
    let (base, _, resolved) = window.admit(&named, std::slice::from_ref(&point)).unwrap();
    assert_eq!((base, resolved), (new, RecoveryTarget::RestorePoint { name: "before".into(), lsn: Lsn(500) }));
    assert!(window.admit(&named, &[]).is_err(), "an unknown name is refused");
}

#[test]
fn no_base_image_means_an_empty_window() {
    let now = Utc::now();
    let window =
        RecoveryWindow::compute(InstanceId::new(), &Protection::started(None), Some(&head(50, 1000, now)), &[], now);
    assert!(window.earliest.is_none() && window.latest.is_none());
    let err = window.admit(&RecoveryTarget::Latest, &[]).unwrap_err();
    assert!(err.to_string().contains("base image"), "{err}");
}
