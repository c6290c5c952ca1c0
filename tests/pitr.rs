//! Point-in-time restore on the embedded default (issue 27), against real PostgreSQL: a
//! protected instance's WAL streams into the blob store through `pg_receivewal`, and new
//! instances are restored to a time, an LSN, a restore point or the latest moment, compared
//! with what the source held then. Refused targets create nothing.

#[path = "local/support.rs"]
mod support;
#[path = "local/world.rs"]
mod world;

use chrono::{DateTime, Duration, Utc};
use support::rt;
use toygres_core::wal::{PointInTime, WalArchive};
use toygres_core::{ClusterExecutor, CreateInstanceRequest, Error, InstanceRecord, OperationId, Password};
use toygres_core::{InstanceId, Toygres};
use toygres_local::LocalExecutor;
use world::World;

async fn sql(executor: &LocalExecutor, instance: &InstanceRecord, password: &Password) -> tokio_postgres::Client {
    executor.cluster(&instance.spec()).unwrap().connect("postgres", password).await.unwrap()
}

/// The server's clock now (what commit timestamps are compared with).
async fn server_now(client: &tokio_postgres::Client) -> DateTime<Utc> {
    let micros: i64 =
        client.query_one("SELECT (extract(epoch FROM clock_timestamp()) * 1000000)::int8", &[]).await.unwrap().get(0);
    DateTime::from_timestamp_micros(micros).unwrap()
}

async fn count(client: &tokio_postgres::Client, table: &str) -> Option<i64> {
    let exists: bool = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table]).await.unwrap().get(0);
    match exists {
        true => Some(client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0)),
        false => None,
    }
}

/// Protects `source` and takes the base image its window needs.
async fn protect_with_base(t: &Toygres, source: InstanceId) {
    t.protect(source).await.unwrap();
    let request = t.base_image_request(source).await.unwrap().expect("a protected instance without a base needs one");
    t.create_image(OperationId::new(), request).await.unwrap();
    assert!(t.base_image_request(source).await.unwrap().is_none(), "one base is enough");
    for _ in 0..50 {
        if t.recovery_window(source).await.unwrap().earliest.is_some() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("the archive never reached the base image's end");
}

async fn restore(t: &Toygres, name: &str, point: PointInTime) -> toygres_core::Result<InstanceRecord> {
    t.create_instance(OperationId::new(), CreateInstanceRequest::at_point_in_time(name, point)).await
}

async fn instance_names(t: &Toygres) -> Vec<String> {
    t.catalog.list_instances(&Default::default()).await.unwrap().into_iter().map(|i| i.name).collect()
}

#[test]
fn a_restore_to_a_moment_has_every_row_committed_before_it_and_nothing_after() {
    rt().block_on(async {
        let mut world = World::new();
        let (executor, t) = world.executor("pitr", None);
        let password = Password::generate();
        let source = executor.provision_source(&t, "orders", &password).await.unwrap();
        let db = sql(&executor, &source, &password).await;
        db.batch_execute(
            "CREATE TABLE orders (id int PRIMARY KEY, note text); \
                          INSERT INTO orders SELECT g, 't1' FROM generate_series(1, 100) g",
        )
        .await
        .unwrap();
        assert!(matches!(t.recovery_window(source.id).await, Err(Error::NotProtected { .. })));
        // A physical image taken before protection cannot be a base: WAL before it is not archived.
        let early = toygres_core::CreateImageRequest::new("before-protection", source.id).physical();
        t.create_image(OperationId::new(), early).await.unwrap();
        protect_with_base(&t, source.id).await;
        let window = t.recovery_window(source.id).await.unwrap();
        let earliest = window.earliest.clone().expect("restorable from the base image's end");

        // T2: more rows, committed; then T3: the table is dropped and other work goes on.
        db.batch_execute("INSERT INTO orders SELECT g, 't2' FROM generate_series(101, 250) g").await.unwrap();
        let before_drop = server_now(&db).await;
        db.batch_execute("DROP TABLE orders; CREATE TABLE after_drop AS SELECT 1 AS x").await.unwrap();

        let volumes = executor.list_instances().await.unwrap().len();
        let future = restore(&t, "future", PointInTime::at(source.id, Utc::now() + Duration::hours(1))).await;
        assert!(matches!(&future, Err(Error::OutsideRecoveryWindow { .. })), "{future:?}");
        let early = earliest.time - Duration::seconds(30);
        let too_early = restore(&t, "too-early", PointInTime::at(source.id, early)).await;
        let message = too_early.as_ref().unwrap_err().to_string();
        assert!(
            matches!(&too_early, Err(Error::OutsideRecoveryWindow { .. })) && message.contains("from "),
            "{message}"
        );
        assert_eq!(executor.list_instances().await.unwrap().len(), volumes, "a refusal creates no volume");
        assert!(!instance_names(&t).await.iter().any(|n| n == "future" || n == "too-early"), "nor a record");

        let undo = restore(&t, "undo", PointInTime::at(source.id, before_drop)).await.unwrap();
        let plan = undo.recovery.clone().expect("the record keeps its plan");
        assert_eq!(undo.source_image_id, Some(plan.base_image_id));
        let restored = sql(&executor, &undo, &password).await;
        assert_eq!(count(&restored, "orders").await, Some(250), "every row of T1 and T2");
        let t2: i64 = restored.query_one("SELECT count(*) FROM orders WHERE note = 't2'", &[]).await.unwrap().get(0);
        assert_eq!(t2, 150);
        assert_eq!(count(&restored, "after_drop").await, None, "nothing committed after the target");
        let recovering: bool = restored.query_one("SELECT pg_is_in_recovery()", &[]).await.unwrap().get(0);
        assert!(!recovering, "promoted");

        // Latest: everything committed before the request.
        db.batch_execute("INSERT INTO after_drop VALUES (2)").await.unwrap();
        let latest = restore(&t, "latest", PointInTime::latest(source.id)).await.unwrap();
        let latest = sql(&executor, &latest, &password).await;
        assert_eq!(count(&latest, "orders").await, None);
        assert_eq!(count(&latest, "after_drop").await, Some(2), "the row committed just before the request");

        // A restore point and an LSN.
        db.batch_execute("INSERT INTO after_drop VALUES (3)").await.unwrap();
        let point = t.create_restore_point(source.id, "before-4").await.unwrap();
        db.batch_execute("INSERT INTO after_drop VALUES (4)").await.unwrap();
        let named = PointInTime { restore_point: Some("before-4".into()), ..PointInTime::latest(source.id) };
        let named = sql(&executor, &restore(&t, "named", named).await.unwrap(), &password).await;
        assert_eq!(count(&named, "after_drop").await, Some(3));
        let by_lsn = PointInTime { lsn: Some(point.lsn), ..PointInTime::latest(source.id) };
        let by_lsn = sql(&executor, &restore(&t, "by-lsn", by_lsn).await.unwrap(), &password).await;
        assert_eq!(count(&by_lsn, "after_drop").await, Some(3));
        let unknown = PointInTime { restore_point: Some("never".into()), ..PointInTime::latest(source.id) };
        assert!(matches!(restore(&t, "unknown", unknown).await, Err(Error::OutsideRecoveryWindow { .. })));

        let window = t.recovery_window(source.id).await.unwrap();
        assert!(window.archiving && window.gaps.is_empty());
        assert!(window.rpo_seconds.unwrap() <= 2.0, "{window:?}");
    });
}

#[test]
fn a_killed_receiver_resumes_with_no_gap() {
    rt().block_on(async {
        let mut world = World::new();
        let (executor, t) = world.executor("pitr-kill", None);
        let password = Password::generate();
        let source = executor.provision_source(&t, "busy", &password).await.unwrap();
        let db = sql(&executor, &source, &password).await;
        db.batch_execute("CREATE TABLE events (id bigint, pad text)").await.unwrap();
        protect_with_base(&t, source.id).await;
        let mut killed = 0;
        for round in 0..6 {
            // About 3 segments of WAL per round, one switched, while the receiver is killed.
            db.batch_execute(&format!(
                "INSERT INTO events SELECT g, repeat('x', 400) FROM generate_series({}, {}) g; SELECT pg_switch_wal()",
                round * 100_000 + 1,
                round * 100_000 + 100_000
            ))
            .await
            .unwrap();
            if round % 2 == 0 {
                let pid = wait_for_receiver(&executor, source.id, None).await;
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL).unwrap();
                wait_for_receiver(&executor, source.id, Some(pid)).await;
                killed += 1;
            }
        }
        // The receiver's password is in a root-only file, never in its arguments or environment.
        let pid = wait_for_receiver(&executor, source.id, None).await;
        for what in ["cmdline", "environ"] {
            let bytes = std::fs::read(format!("/proc/{pid}/{what}")).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(password.expose()), "the password is in the receiver's {what}");
        }
        let dir = executor.base_dir().join("archives").join(source.id.to_string());
        for (path, mode) in [(dir.clone(), 0o700), (dir.join("pgpass"), 0o600)] {
            use std::os::unix::fs::MetadataExt;
            let meta = std::fs::metadata(&path).unwrap();
            assert_eq!((meta.uid(), meta.mode() & 0o777), (0, mode), "{}", path.display());
        }
        let latest = restore(&t, "after-kills", PointInTime::latest(source.id)).await.unwrap();
        let restored = sql(&executor, &latest, &password).await;
        assert_eq!(count(&restored, "events").await, Some(600_000), "every row, across every kill");
        let archive = WalArchive::of(source.id);
        let key = t
            .keys
            .data_key(
                archive.key_id(),
                t.catalog.get_instance(source.id).await.unwrap().protection.unwrap().key.as_ref(),
            )
            .await
            .unwrap();
        let head = archive.head(&*t.blobs, key.as_ref()).await.unwrap().unwrap();
        assert!(head.gaps.is_empty(), "{head:?}");
        assert!(head.receiver_restarts >= killed, "{head:?}");
        let contents = archive.contents(&*t.blobs).await.unwrap();
        let segments: Vec<u64> = contents.segments.iter().map(|(_, s)| *s).collect();
        assert!(segments.len() >= 10, "{segments:?}");
        assert!(segments.windows(2).all(|w| w[1] == w[0] + 1), "contiguous: {segments:?}");
        let stored = t.blobs.stat(&archive.location()).await.unwrap();
        assert!(stored.iter().all(|o| !o.name.contains("tmp")), "{stored:?}");
    });
}

/// The receiver's pid once it runs (and differs from `not`).
async fn wait_for_receiver(executor: &LocalExecutor, instance: InstanceId, not: Option<i32>) -> i32 {
    for _ in 0..100 {
        if let Some(pid) = executor.wal_receiver_pid(instance).filter(|p| Some(*p) != not) {
            if toygres_local::cluster::process_alive(pid) {
                return pid;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("no receiver runs for {instance}");
}

#[test]
fn a_restore_of_a_restore_is_protected_and_restored_again_on_its_own_timeline() {
    rt().block_on(async {
        let mut world = World::new();
        let (executor, t) = world.executor("pitr-tl", None);
        let password = Password::generate();
        let a = executor.provision_source(&t, "a", &password).await.unwrap();
        let db = sql(&executor, &a, &password).await;
        db.batch_execute("CREATE TABLE log (who text)").await.unwrap();
        protect_with_base(&t, a.id).await;
        db.batch_execute("INSERT INTO log VALUES ('a1')").await.unwrap();
        let b = restore(&t, "b", PointInTime::latest(a.id)).await.unwrap();
        db.batch_execute("INSERT INTO log VALUES ('a2 after b')").await.unwrap();
        let b_db = sql(&executor, &b, &password).await;
        let timeline = |c: tokio_postgres::Client| async move {
            let row = c.query_one("SELECT timeline_id FROM pg_control_checkpoint()", &[]).await.unwrap();
            row.get::<_, i32>(0)
        };
        b_db.batch_execute("CHECKPOINT; INSERT INTO log VALUES ('b1')").await.unwrap();
        protect_with_base(&t, b.id).await;
        b_db.batch_execute("INSERT INTO log VALUES ('b2')").await.unwrap();
        let before_b3 = server_now(&b_db).await;
        b_db.batch_execute("INSERT INTO log VALUES ('b3')").await.unwrap();

        let c = restore(&t, "c", PointInTime::at(b.id, before_b3)).await.unwrap();
        let c_db = sql(&executor, &c, &password).await;
        let rows: Vec<String> =
            c_db.query("SELECT who FROM log ORDER BY who", &[]).await.unwrap().iter().map(|r| r.get(0)).collect();
        assert_eq!(rows, ["a1", "b1", "b2"], "b's history, not a's later rows nor b's after the target");
        let (tb, tc) = (timeline(b_db).await, timeline(sql(&executor, &c, &password).await).await);
        assert!(tb >= 2 && tc > tb, "b promoted onto a new timeline ({tb}), c onto one after it ({tc})");
        assert_eq!(c.recovery.unwrap().timeline as i32, tb, "c replayed b's timeline");
    });
}

#[test]
fn deleting_a_protected_instance_keeps_its_archive_until_its_base_images_go() {
    rt().block_on(async {
        let mut world = World::new();
        let (executor, t) = world.executor("pitr-retention", None);
        let password = Password::generate();
        let source = executor.provision_source(&t, "gone", &password).await.unwrap();
        let db = sql(&executor, &source, &password).await;
        protect_with_base(&t, source.id).await;
        db.batch_execute("CREATE TABLE kept AS SELECT 1 AS x; SELECT pg_switch_wal()").await.unwrap();
        let first_base = t.recovery_window(source.id).await.unwrap().earliest.unwrap().image_id.unwrap();
        // A second base later on: deleting the first removes the WAL only it needed.
        db.batch_execute("INSERT INTO kept SELECT g FROM generate_series(2, 200000) g; SELECT pg_switch_wal()")
            .await
            .unwrap();
        let request = toygres_core::CreateImageRequest::new("second-base", source.id).physical();
        let second = t.create_image(OperationId::new(), request).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        let archive = WalArchive::of(source.id);
        let before = archive.contents(&*t.blobs).await.unwrap().segments.len();
        t.delete_image(first_base).await.unwrap();
        let after = archive.contents(&*t.blobs).await.unwrap().segments.len();
        assert!(after < before, "the WAL only the first base needed went ({before} → {after})");
        assert_eq!(t.recovery_window(source.id).await.unwrap().earliest.unwrap().image_id, Some(second.id));

        t.delete_instance(source.id).await.unwrap();
        let window = t.recovery_window(source.id).await.unwrap();
        assert!(!window.archiving && window.latest.is_some(), "still restorable: {window:?}");
        let back = restore(&t, "back", PointInTime::latest(source.id)).await.unwrap();
        let back = sql(&executor, &back, &password).await;
        assert_eq!(count(&back, "kept").await, Some(200_000), "the deleted instance's last state");

        t.delete_image(second.id).await.unwrap();
        assert!(t.blobs.stat(&archive.location()).await.unwrap().is_empty(), "its last image gone, the archive goes");
        assert!(matches!(t.recovery_window(source.id).await, Err(Error::NotProtected { .. })));
    });
}

#[test]
fn a_changed_wal_object_fails_the_restore_and_leaves_nothing() {
    rt().block_on(async {
        let mut world = World::new();
        let (executor, t) = world.executor("pitr-tamper", None);
        let password = Password::generate();
        let source = executor.provision_source(&t, "victim", &password).await.unwrap();
        let db = sql(&executor, &source, &password).await;
        protect_with_base(&t, source.id).await;
        db.batch_execute("CREATE TABLE t AS SELECT g FROM generate_series(1, 10000) g; SELECT pg_switch_wal()")
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        let archive = WalArchive::of(source.id);
        let contents = archive.contents(&*t.blobs).await.unwrap();
        let (timeline, segment) = *contents.segments.last().expect("a completed segment");
        let name = toygres_core::wal::segment_name(timeline, segment);
        let path = world.blobs.object_path(&archive.location(), &name);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x40;
        std::fs::write(&path, bytes).unwrap();

        let volumes = executor.list_instances().await.unwrap();
        let failed = restore(&t, "tampered", PointInTime::latest(source.id)).await.unwrap_err();
        let message = failed.to_string();
        assert!(message.contains(&name) && message.contains("authentication"), "{message}");
        let record = t.catalog.list_instances(&Default::default()).await.unwrap();
        let record = record.iter().find(|i| i.name == "tampered").expect("recorded, then failed");
        assert_eq!(record.state, toygres_core::InstanceState::Failed);
        assert_eq!(executor.list_instances().await.unwrap(), volumes, "its volume is gone");
    });
}
