//! Clone images on the local executor, on a real reflink filesystem (`TOYGRES_REFLINK_DIR`,
//! loop-mounted XFS from `.ci/xfs.sh`): a clone restores equal to its source (the fidelity
//! comparator) sharing its blocks (FIEMAP: no byte copied), is independent of the image and of
//! its source, outlives the image's deletion, and is refused with a typed error naming the
//! filesystem where there is no reflink, before anything is recorded.

#[path = "local/support.rs"]
mod support;
#[path = "local/world.rs"]
mod world;

use support::rt;
use toygres_core::{CreateImageRequest, CreateInstanceRequest, Error, ImageFormat, ImageState, InstanceRecord};
use toygres_core::{OperationId, Password, Toygres};
use toygres_local::fidelity::corpus::{CorpusOptions, MAIN_DB};
use toygres_local::fidelity::InstanceSnapshot;
use toygres_local::LocalExecutor;
use world::{corpus_source, World};

fn clone_request(name: &str, source: &InstanceRecord) -> CreateImageRequest {
    let mut request = CreateImageRequest::new(name, source.id);
    request.format = ImageFormat::Clone;
    request
}

/// Bytes of the regular files under `dir` that lie in extents the filesystem marks shared
/// (`FIEMAP_EXTENT_SHARED`: reflinked, not copied), and all their bytes.
fn shared_bytes(dir: &std::path::Path) -> (u64, u64) {
    const FS_IOC_FIEMAP: libc::c_ulong = 0xC020_660B;
    const SHARED: u32 = 0x2000;
    const LAST: u32 = 0x1;
    const SLOTS: usize = 256;
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Extent {
        logical: u64,
        physical: u64,
        length: u64,
        reserved64: [u64; 2],
        flags: u32,
        reserved: [u32; 3],
    }
    #[repr(C)]
    struct Map {
        start: u64,
        length: u64,
        flags: u32,
        mapped: u32,
        count: u32,
        reserved: u32,
        extents: [Extent; SLOTS],
    }
    let (mut shared, mut total) = (0, 0);
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(d) = dirs.pop() {
        for entry in std::fs::read_dir(&d).unwrap().map(|e| e.unwrap()) {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                dirs.push(entry.path());
                continue;
            }
            total += meta.len();
            let file = std::fs::File::open(entry.path()).unwrap();
            let mut start = 0u64;
            loop {
                let mut map = Map {
                    start,
                    length: u64::MAX - start,
                    flags: 1,
                    mapped: 0,
                    count: SLOTS as u32,
                    reserved: 0,
                    extents: [Extent::default(); SLOTS],
                };
                // SAFETY: FS_IOC_FIEMAP fills `map`, sized for SLOTS extents, from an open file.
                let rc = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&file), FS_IOC_FIEMAP, &mut map) };
                assert_eq!(rc, 0, "FIEMAP on {}", entry.path().display());
                let extents = &map.extents[..map.mapped as usize];
                shared += extents.iter().filter(|e| e.flags & SHARED != 0).map(|e| e.length).sum::<u64>();
                match extents.last() {
                    Some(last) if last.flags & LAST == 0 => start = last.logical + last.length,
                    _ => break,
                }
            }
        }
    }
    (shared, total)
}

async fn restore(t: &Toygres, name: &str, image: toygres_core::ImageId) -> InstanceRecord {
    let mut request = CreateInstanceRequest::restore(name, image);
    request.password = Some(Password::new("ignored-x"));
    t.create_instance(OperationId::new(), request).await.unwrap()
}

async fn sql(executor: &LocalExecutor, instance: &InstanceRecord, password: &Password, statement: &str) {
    let client = executor.cluster(&instance.spec()).unwrap().connect(MAIN_DB, password).await.unwrap();
    client.batch_execute(statement).await.unwrap();
}

async fn rows(executor: &LocalExecutor, instance: &InstanceRecord, password: &Password, table: &str) -> Option<i64> {
    let client = executor.cluster(&instance.spec()).unwrap().connect(MAIN_DB, password).await.unwrap();
    let exists: bool = client.query_one("SELECT to_regclass($1) IS NOT NULL", &[&table]).await.unwrap().get(0);
    if !exists {
        return None;
    }
    Some(client.query_one(&format!("SELECT count(*) FROM {table}"), &[]).await.unwrap().get(0))
}

#[test]
fn a_clone_restores_equal_to_its_source_copies_nothing_and_stays_independent() {
    let Some(mut world) = World::on_reflink() else { return };
    rt().block_on(async {
        let (executor, t) = world.executor("clones", None);
        let bin = executor.binaries().clone();
        let options = CorpusOptions { icu: bin.has_icu().await };
        let password = Password::generate();
        let (source, _) = corpus_source(&executor, &t, &password, options, &bin).await;
        // Some bulk, so that a copy would show in the filesystem's usage.
        let bulk = "CREATE TABLE bulk AS SELECT g, repeat(md5(g::text), 8) AS pad FROM generate_series(1, 400000) g";
        sql(&executor, &source, &password, bulk).await;
        let source_params = executor.cluster(&source.spec()).unwrap().params();
        let snapshot = InstanceSnapshot::take(&bin, &source_params, &password).await.unwrap();

        let image = t.create_image(OperationId::new(), clone_request("clone", &source)).await.unwrap();
        assert_eq!((image.state, image.format), (ImageState::Ready, ImageFormat::Clone));
        let manifest = support::manifest_of(&t, &image).await;
        let clone = manifest.clone.as_ref().expect("a clone image's manifest describes its clone");
        assert!(manifest.archives.is_empty() && manifest.databases.is_empty());
        assert!(clone.size > 100 << 20 && clone.files.iter().any(|f| f.path == "PG_VERSION"), "{}", clone.size);
        assert!(image.size_bytes.unwrap() >= clone.size, "the record counts the clone's data");

        let copy = restore(&t, "clone-copy", image.id).await;
        let data = executor.cluster(&copy.spec()).unwrap().data_dir();
        let (shared, total) = shared_bytes(&data);
        assert!(shared > total * 9 / 10, "a clone shares its blocks: {shared} of {total} bytes are shared");
        let params = executor.cluster(&copy.spec()).unwrap().params();
        let taken = InstanceSnapshot::take(&bin, &params, &password).await.unwrap();
        // A base backup never holds unlogged tables' rows (recovery resets them): the one
        // difference, as for physical images.
        let mut expected = snapshot.clone();
        let empty = (0, "d41d8cd98f00b204e9800998ecf8427e".to_string());
        expected.databases.get_mut(MAIN_DB).unwrap().tables.insert("app.scratch".into(), empty);
        let diff = expected.diff(&taken);
        assert!(diff.is_empty(), "clone restore: {diff:#?}");
        assert!(
            params.connect("postgres", &Password::new("ignored-x")).await.is_err(),
            "the request's password is refused"
        );

        // Writes on either side are not seen by the other, nor by the next clone.
        sql(&executor, &copy, &password, "DELETE FROM bulk WHERE g % 2 = 0; CREATE TABLE only_in_copy(x int)").await;
        sql(&executor, &source, &password, "INSERT INTO bulk SELECT g, 'x' FROM generate_series(400001, 400100) g")
            .await;
        assert_eq!(rows(&executor, &copy, &password, "bulk").await, Some(200_000));
        assert_eq!(rows(&executor, &source, &password, "bulk").await, Some(400_100));
        assert_eq!(rows(&executor, &source, &password, "only_in_copy").await, None);
        let second = restore(&t, "clone-second", image.id).await;
        assert_eq!(rows(&executor, &second, &password, "bulk").await, Some(400_000), "the image never changes");
        assert_eq!(rows(&executor, &second, &password, "only_in_copy").await, None);

        // Deleting the image is safe: its live clones keep every block they share.
        t.delete_image(image.id).await.unwrap();
        let store = world.base.path().join("clones").join("clones");
        assert!(std::fs::read_dir(&store).unwrap().next().is_none(), "the clone store is empty");
        let cluster = executor.cluster(&second.spec()).unwrap();
        cluster.stop().await.unwrap();
        cluster.start(&[]).await.unwrap();
        assert_eq!(rows(&executor, &second, &password, "bulk").await, Some(400_000));
        let copy_check = executor.cluster(&copy.spec()).unwrap().connect(MAIN_DB, &password).await.unwrap();
        let sum: i64 = copy_check.query_one("SELECT sum(g)::bigint FROM bulk", &[]).await.unwrap().get(0);
        assert_eq!(sum, (1..=400_000i64).filter(|g| g % 2 == 1).sum::<i64>());
    });
}

#[test]
fn a_clone_image_is_refused_where_there_is_no_reflink_before_anything_is_recorded() {
    rt().block_on(async {
        // The usual temporary directory (overlayfs, ext4 or tmpfs on these machines), not XFS.
        let mut world = World::new();
        let (executor, t) = world.executor("no-reflink", None);
        let password = Password::generate();
        let source = executor.provision_source(&t, "plain-source", &password).await.unwrap();
        let fs = toygres_local::cluster::reflink::filesystem_of(world.base.path()).unwrap();
        if toygres_local::cluster::reflink::supports_reflink(world.base.path()).unwrap() {
            eprintln!("skipped: the temporary directory is on {fs}, which has reflink");
            return;
        }
        let err = t.create_image(OperationId::new(), clone_request("refused", &source)).await.unwrap_err();
        assert!(
            matches!(&err, Error::UnsupportedFormat { format: ImageFormat::Clone, reason } if reason.contains(&fs.name)),
            "{err}"
        );
        assert!(t.catalog.list_images(&Default::default()).await.unwrap().is_empty(), "nothing is recorded");
    });
}

#[test]
fn a_clone_whose_data_is_elsewhere_missing_or_changed_is_refused_before_anything_is_created() {
    let Some(mut world) = World::on_reflink() else { return };
    rt().block_on(async {
        let (executor, t) = world.executor("taker", None);
        let (elsewhere, t_elsewhere) = world.executor("elsewhere", None);
        let password = Password::generate();
        let source = executor.provision_source(&t, "small-source", &password).await.unwrap();
        let image = t.create_image(OperationId::new(), clone_request("small-clone", &source)).await.unwrap();
        let data = world.base.path().join("taker/clones").join(image.id.to_string()).join("data");
        let refused = |t: Toygres, name: &'static str| async move {
            let request = CreateInstanceRequest::restore(name, image.id);
            let err = t.create_instance(OperationId::new(), request).await.unwrap_err();
            assert!(matches!(t.catalog.get_instance_by_name(name).await, Err(Error::InstanceNotFound(_))), "{name}");
            err
        };

        let err = refused(t_elsewhere, "on-another-machine").await;
        assert!(
            matches!(&err, Error::ImageIncomplete { detail, .. } if detail.contains("lives on the machine")),
            "{err}"
        );
        std::fs::write(data.join("planted"), b"x").unwrap();
        let err = refused(t.clone(), "with-a-planted-file").await;
        assert!(matches!(&err, Error::ImageIncomplete { .. }) && err.to_string().contains("planted"), "{err}");
        std::fs::remove_file(data.join("planted")).unwrap();
        let mut version = std::fs::OpenOptions::new().append(true).open(data.join("PG_VERSION")).unwrap();
        std::io::Write::write_all(&mut version, b"\n").unwrap();
        let err = refused(t.clone(), "with-a-grown-file").await;
        assert!(matches!(&err, Error::ImageIncomplete { .. }) && err.to_string().contains("PG_VERSION"), "{err}");
        assert_eq!(executor.instance_clusters().len() + elsewhere.instance_clusters().len(), 1, "only the source");
    });
}

#[test]
fn reconcile_removes_clones_without_a_live_image() {
    let Some(mut world) = World::on_reflink() else { return };
    rt().block_on(async {
        let (executor, t) = world.executor("reconcile", None);
        let password = Password::generate();
        let source = executor.provision_source(&t, "kept-source", &password).await.unwrap();
        let kept = t.create_image(OperationId::new(), clone_request("kept", &source)).await.unwrap();
        let clones = world.base.path().join("reconcile/clones");
        let (orphan, partial) = (toygres_core::ImageId::new(), toygres_core::ImageId::new());
        std::fs::create_dir_all(clones.join(orphan.to_string()).join("data/base")).unwrap();
        std::fs::create_dir_all(clones.join(format!("{partial}.partial/data"))).unwrap();

        let report = t.reconcile().await.unwrap();
        let mut removed = report.orphan_images.clone();
        removed.sort();
        let mut expected = vec![orphan, partial];
        expected.sort();
        assert_eq!(removed, expected, "{report:?}");
        let left: Vec<_> = std::fs::read_dir(&clones).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, vec![std::ffi::OsString::from(kept.id.to_string())]);
        let copy = restore(&t, "after-reconcile", kept.id).await;
        assert_eq!(copy.state, toygres_core::InstanceState::Running);
    });
}

#[test]
fn cancelling_a_clone_image_while_it_is_taken_leaves_nothing() {
    let Some(mut world) = World::on_reflink() else { return };
    rt().block_on(async {
        let (executor, t) = world.executor("cancel", None);
        let password = Password::generate();
        let source = executor.provision_source(&t, "cancel-source", &password).await.unwrap();
        let bulk = "CREATE TABLE bulk AS SELECT g, repeat(md5(g::text), 8) AS pad FROM generate_series(1, 400000) g";
        let client = executor.cluster(&source.spec()).unwrap().connect("postgres", &password).await.unwrap();
        client.batch_execute(bulk).await.unwrap();
        let clones = world.base.path().join("cancel/clones");
        let taking = tokio::spawn({
            let t = t.clone();
            let request = clone_request("doomed", &source);
            async move { t.create_image(OperationId::new(), request).await }
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        let id = loop {
            let partial = std::fs::read_dir(&clones).into_iter().flatten().filter_map(|e| e.ok()).find_map(|e| {
                let name = e.file_name().into_string().ok()?;
                let id = name.strip_suffix(".partial")?.parse::<toygres_core::ImageId>().ok()?;
                e.path().join("data/PG_VERSION").exists().then_some(id)
            });
            if let Some(id) = partial {
                break id;
            }
            assert!(std::time::Instant::now() < deadline, "the clone never started");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        let cancelled = t.cancel_image(id).await.unwrap();
        assert_eq!(cancelled.state, ImageState::Failed);
        let outcome = taking.await.unwrap();
        assert!(outcome.is_err(), "a cancelled image never becomes ready: {outcome:?}");
        assert!(std::fs::read_dir(&clones).unwrap().next().is_none(), "nothing is left in the clone store");
        assert!(!std::env::temp_dir().join(format!("toygres-clone-{id}")).exists());
        if nix::unistd::Uid::effective().is_root() {
            let user = toygres_local::cluster::identity::image_user_name(id);
            assert!(toygres_local::cluster::ServerUser::resolve(&user).is_err(), "{user} is removed");
        }
        assert_eq!(t.get_image(id).await.unwrap().state, ImageState::Failed);
    });
}

#[test]
fn without_isolation_a_clone_is_recovered_by_the_shared_user_and_no_other_server_is_touched() {
    let Some(mut world) = World::on_reflink() else { return };
    rt().block_on(async {
        let (executor, t) = world.executor_with("shared-user", None, |b| b.isolate_instances(false));
        let password = Password::generate();
        let source = executor.provision_source(&t, "shared-source", &password).await.unwrap();
        let pid = executor.cluster(&source.spec()).unwrap().postmaster_pid().expect("the source runs");
        let image = t.create_image(OperationId::new(), clone_request("shared-clone", &source)).await.unwrap();
        assert_eq!(image.state, ImageState::Ready);
        let cluster = executor.cluster(&source.spec()).unwrap();
        assert_eq!(cluster.postmaster_pid(), Some(pid), "the source's server (same OS user) kept running");
        let copy = restore(&t, "shared-copy", image.id).await;
        let client = executor.cluster(&copy.spec()).unwrap().connect("postgres", &password).await.unwrap();
        client.simple_query("SELECT 1").await.unwrap();
    });
}
