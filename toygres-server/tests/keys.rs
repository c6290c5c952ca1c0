//! Key rotation of 100 images by `toygres keys rotate`, a real child process killed with SIGKILL
//! halfway: every image stays readable, a second run finishes, the old key can then be removed,
//! and afterwards no image opens with the old key; images restore equal to their source.

mod support;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use support::DataDir;
use toygres_core::envelope::{KeyProvider, LocalKeys};
use toygres_core::{
    CreateImageRequest, CreateInstanceRequest, ImageRecord, InstanceRecord, OperationId, Password, Toygres,
};

const IMAGES: usize = 100;

/// `toygres keys <args…> --data-dir <data>` as a child process, stdout piped.
fn keys_command(data: &DataDir, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_toygres"));
    cmd.arg("keys").args(args).arg("--data-dir").arg(data.path());
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).env_remove("TOYGRES_IMAGE_KEY");
    cmd
}

fn run_keys(data: &DataDir, args: &[&str]) -> (bool, String, String) {
    let out = keys_command(data, args).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

/// A connection to the `postgres` database of `instance` as its superuser.
async fn connect(instance: &InstanceRecord, password: &Password) -> tokio_postgres::Client {
    let conn = instance.connection.clone().expect("a running instance has a connection");
    let (client, connection) = tokio_postgres::Config::new()
        .host(&conn.host)
        .port(conn.port)
        .user(&conn.user)
        .password(password.expose())
        .dbname("postgres")
        .connect(tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// A sum over every row of the table `t` of `instance`.
async fn fingerprint(instance: &InstanceRecord, password: &Password) -> String {
    let client = connect(instance, password).await;
    client.query_one("SELECT md5(string_agg(v, ',' ORDER BY id)) FROM t", &[]).await.unwrap().get(0)
}

/// The images' key ids by image, as the catalog holds them.
async fn key_ids(t: &Toygres) -> BTreeMap<String, String> {
    let page = t.list_images(&toygres_core::ImageFilter::default()).await.unwrap();
    page.items.iter().map(|i| (i.id.to_string(), i.encryption.as_ref().unwrap().key_id.clone())).collect()
}

/// Every image verifies fully (data key unwrapped, manifest authenticated, every byte hashed).
async fn all_verify(t: &Toygres, images: &[ImageRecord]) {
    for image in images {
        let record = t.catalog.get_image(image.id).await.unwrap();
        t.restore().verify_image(&record).await.unwrap_or_else(|e| panic!("image {} unreadable: {e}", image.id));
    }
}

#[test]
fn a_rotation_killed_halfway_leaves_every_image_readable_and_finishes() {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let data = DataDir::new();
    runtime.block_on(async {
        let backends = toygres_server::backends::open(&data.path(), None).await.unwrap();
        let t = backends.toygres;
        let password = Password::generate();
        let mut fresh = CreateInstanceRequest::restore("rotation-source", toygres_core::ImageId::new());
        (fresh.source_image_id, fresh.password) = (None, Some(password.clone()));
        let source = t.create_empty_instance(OperationId::new(), fresh).await.unwrap();
        let client = connect(&source, &password).await;
        client
            .batch_execute("CREATE TABLE t AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, 2000) g")
            .await
            .unwrap();
        let expected = fingerprint(&source, &password).await;

        let mut images: Vec<ImageRecord> = Vec::with_capacity(IMAGES);
        for batch in (0..IMAGES).collect::<Vec<_>>().chunks(4) {
            let taken = batch.iter().map(|i| {
                let t = t.clone();
                let request = CreateImageRequest::new(format!("img-{i:03}"), source.id);
                tokio::spawn(async move { t.create_image(OperationId::new(), request).await.unwrap() })
            });
            for handle in taken.collect::<Vec<_>>() {
                images.push(handle.await.unwrap());
            }
        }
        let keys = LocalKeys::open(toygres_server::keys::key_dir(&data.path())).unwrap();
        let old = keys.current_key_id().await.unwrap();
        assert!(key_ids(&t).await.values().all(|k| *k == old), "every image starts under the first key");

        // 1. A rotation, paced so that it is surely mid-way, killed after its 50th image.
        let mut child = keys_command(&data, &["rotate", "--max-per-second", "20"]).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let new = loop {
            let line = lines.next().expect("rotate printed its new key").unwrap();
            if let Some(id) = line.strip_prefix("new key ") {
                break id.to_string();
            }
        };
        for line in lines.by_ref() {
            if line.unwrap().starts_with(&format!("rotated {}/{IMAGES}", IMAGES / 2)) {
                break;
            }
        }
        kill(Pid::from_raw(child.id() as i32), Signal::SIGKILL).unwrap();
        child.wait().unwrap();
        let halfway = key_ids(&t).await;
        let moved = halfway.values().filter(|k| **k == new).count();
        assert!((IMAGES / 2..IMAGES).contains(&moved), "killed halfway: {moved} of {IMAGES} rewrapped");
        assert!(halfway.values().all(|k| *k == new || *k == old));
        all_verify(&t, &images).await;

        // 2. The old key cannot go while images need it; a second run finishes without a third key.
        let (ok, _, err) = run_keys(&data, &["remove", &old]);
        assert!(!ok && err.contains("rotate"), "removing a key still in use is refused: {err}");
        let (ok, out, err) = run_keys(&data, &["rotate"]);
        assert!(ok, "{out}\n{err}");
        assert!(out.contains("resuming") && !out.contains("new key"), "{out}");
        assert!(key_ids(&t).await.values().all(|k| *k == new), "every image is under the new key");
        assert_eq!(keys.key_ids().unwrap().len(), 2, "no third key");
        let (_, listed, _) = run_keys(&data, &["list"]);
        assert!(listed.contains(&format!("{new}  {IMAGES} images  (current)")), "{listed}");

        // 3. The old key removed: nothing opens with it any more; everything opens with the new one.
        let old_key = std::fs::read(keys.dir().unwrap().join(format!("{old}.key"))).unwrap();
        let (ok, out, err) = run_keys(&data, &["remove", &old]);
        assert!(ok, "{out}\n{err}");
        assert_eq!(keys.key_ids().unwrap(), vec![new.clone()]);
        all_verify(&t, &images).await;
        let only_old = only_key(&data.path().join("only-old"), &old, &old_key);
        for image in &images {
            let record = t.catalog.get_image(image.id).await.unwrap();
            assert!(only_old.unwrap(record.id, record.encryption.as_ref().unwrap()).await.is_err());
        }

        // 4. Images from both halves restore equal to the source.
        for image in [&images[0], &images[IMAGES - 1]] {
            let name = format!("restored-{}", &image.name);
            let restored = t.create_instance(OperationId::new(), CreateInstanceRequest::restore(name, image.id));
            let restored = restored.await.unwrap();
            assert_eq!(fingerprint(&restored, &password).await, expected);
            t.delete_instance(restored.id).await.unwrap();
        }
    });
}

/// A key directory holding only key `id` (its file `bytes`), current.
fn only_key(dir: &Path, id: &str, bytes: &[u8]) -> Arc<LocalKeys> {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join(format!("{id}.key")), bytes).unwrap();
    std::fs::write(dir.join("current"), id).unwrap();
    Arc::new(LocalKeys::open(dir).unwrap())
}
