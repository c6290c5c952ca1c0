//! Encrypted images on the embedded default, against real PostgreSQL: what is stored hides every
//! row and password hash; whoever writes the blob store (and the catalog) can break a restore but
//! never get a changed byte loaded; a missing or wrong key refuses before anything exists; and
//! plaintext images are made only when asked for.

#[path = "moto_support.rs"]
mod moto_support;
#[path = "local/support.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use support::*;
use toygres_core::envelope::{object, LocalKeys};
use toygres_core::manifest::{database_object_name, sha256_hex, GLOBALS_NAME, MANIFEST_NAME};
use toygres_core::{
    verify_image, ClusterExecutor, CreateImageRequest, CreateInstanceRequest, Error, ImageFormat, ImageLocation,
    ImageRecord, ImageState, NoProgress, OperationId, Password, RestoreJobSpec, Toygres, VerifyMode,
};
use toygres_s3::kms::AwsKms;

const CANARY: &str = "toygres-canary-row-5c1e9d";

/// Every stored file of `image`, with its bytes.
fn stored_files(f: &Fixture, image: &ImageRecord) -> Vec<(String, Vec<u8>)> {
    let dir = f.blobs.root().join(ImageLocation::for_image(image.id).prefix);
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    files.sort();
    files
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// What a reader of the blob store learns from `bytes`: the bytes themselves, and what zstd
/// makes of them when they are a zstd stream (a plaintext image's objects are).
fn readable(bytes: &[u8]) -> Vec<u8> {
    let mut out = bytes.to_vec();
    if let Ok(plain) = zstd::decode_all(bytes) {
        out.extend_from_slice(&plain);
    }
    out
}

#[test]
fn stored_objects_hide_a_canary_row_and_a_password_hash() {
    let f = fixture();
    rt().block_on(async {
        let password = Password::generate();
        let source = source_instance(&f.executor, &f.t, "canary-source", &password).await;
        let client = f.executor.cluster(&spec(&source)).unwrap().connect("postgres", &password).await.unwrap();
        let sql = format!(
            "CREATE ROLE canary_app LOGIN PASSWORD 'canary-password-8841'; \
             CREATE TABLE canary AS SELECT g AS id, '{CANARY}-' || g AS v FROM generate_series(1, 20000) g;"
        );
        client.batch_execute(&sql).await.unwrap();
        let hash: String = client
            .query_one("SELECT rolpassword FROM pg_authid WHERE rolname = 'canary_app'", &[])
            .await
            .unwrap()
            .get(0);
        let secrets = [CANARY.as_bytes(), hash.as_bytes()];

        // The control: a plaintext image (asked for explicitly) shows both, so the check can fail.
        let plain = f.t.clone().with_plaintext_images();
        let control = plain.create_image(OperationId::new(), CreateImageRequest::new("canary-plain", source.id));
        let control = control.await.unwrap();
        assert_eq!(control.encryption, None, "the record says it is plaintext");
        let shown: Vec<u8> = stored_files(&f, &control).iter().flat_map(|(_, b)| readable(b)).collect();
        assert!(secrets.iter().all(|s| contains(&shown, s)), "a plaintext image shows the canary and the hash");

        for format in [ImageFormat::Logical, ImageFormat::Physical] {
            let mut request = CreateImageRequest::new(format!("canary-{format}"), source.id);
            request.format = format;
            let image = f.t.create_image(OperationId::new(), request).await.unwrap();
            assert!(image.encryption.is_some(), "encrypted by default");
            for (name, bytes) in stored_files(&f, &image) {
                assert!(bytes.starts_with(object::MAGIC), "{format} object {name} is not sealed");
                let seen = readable(&bytes);
                for secret in secrets {
                    assert!(!contains(&seen, secret), "{format} object {name} shows a secret");
                }
            }
            f.t.delete_image(image.id).await.unwrap();
        }
        f.t.delete_image(control.id).await.unwrap();
        f.t.delete_instance(source.id).await.unwrap();
    });
}

/// A restore job of `image` driven by hand into a fresh volume, the control plane's checks
/// skipped: it must refuse `image` before it initialises anything (so before any SQL runs).
async fn job_refuses_before_any_sql(f: &Fixture, image: &ImageRecord, checksum: String, name: &str) -> String {
    let target = unrecorded_spec(name);
    f.executor.create_volume(&target, &f.password).await.unwrap();
    let job = RestoreJobSpec {
        image_id: image.id,
        location: ImageLocation::for_image(image.id),
        checksum,
        instance: target.clone(),
        databases: None,
        data_key: f.t.data_key(image).await.unwrap(),
        recovery: None,
    };
    let job = f.executor.start_restore_job(&job).await.unwrap();
    let waited = f.executor.wait_for_job(&job, std::time::Duration::from_secs(120), Arc::new(NoProgress)).await;
    let reason = match waited {
        Err(Error::JobFailed { reason, .. }) => reason,
        other => panic!("{name}: expected the job to fail, got {other:?}"),
    };
    assert!(!f.executor.cluster(&target).unwrap().is_initialized(), "{name}: the job initialised the volume");
    f.executor.delete_job(&job).await.unwrap();
    f.executor.delete_instance(&target).await.unwrap();
    reason
}

/// Restores `image` through the control plane, expecting a refusal before anything is created.
async fn admission_refuses(t: &Toygres, f: &Fixture, image: &ImageRecord, name: &str) -> Error {
    let err = t.create_instance(OperationId::new(), CreateInstanceRequest::restore(name, image.id)).await.unwrap_err();
    assert!(matches!(t.catalog.get_instance_by_name(name).await, Err(Error::InstanceNotFound(_))), "{name}: recorded");
    assert!(!volume_names(&f.executor).contains(&name.to_string()), "{name}: a volume was created");
    err
}

fn flip(file: &Path, at: usize) {
    let mut bytes = std::fs::read(file).unwrap();
    let at = at.min(bytes.len() - 1);
    bytes[at] ^= 0x40;
    std::fs::write(file, bytes).unwrap();
}

#[test]
fn a_changed_or_swapped_object_is_refused_before_any_sql_runs() {
    let f = fixture();
    rt().block_on(async {
        let image = image_of(&f.t, &f.source, "to-tamper").await;
        let other = image_of(&f.t, &f.source, "to-swap-from").await;
        let location = ImageLocation::for_image(image.id);
        let checksum = image.checksum.clone().unwrap();
        let names = [GLOBALS_NAME.to_string(), database_object_name(0), database_object_name(2)];
        for (i, name) in names.iter().enumerate() {
            let file = f.blobs.object_path(&location, name);
            let original = std::fs::read(&file).unwrap();
            for at in [3, object::HEADER + 1, original.len() / 2, original.len() - 1] {
                flip(&file, at);
                let err = admission_refuses(&f.t, &f, &image, &format!("flipped-{i}-{at}")).await;
                assert!(
                    matches!(err, Error::ChecksumMismatch { ref object, .. } if object == name),
                    "{name}@{at}: {err}"
                );
                let reason = job_refuses_before_any_sql(&f, &image, checksum.clone(), &format!("job-{i}-{at}")).await;
                assert!(reason.contains("corrupted"), "{name}@{at}: {reason}");
                std::fs::write(&file, &original).unwrap();
            }
            // The same object of another image of the same source: never accepted as this one's.
            let theirs = f.blobs.object_path(&ImageLocation::for_image(other.id), name);
            std::fs::copy(&theirs, &file).unwrap();
            let err = admission_refuses(&f.t, &f, &image, &format!("swapped-{i}")).await;
            // Refused on its size when it differs, on its sha256 otherwise.
            let refused = matches!(err, Error::ChecksumMismatch { .. } | Error::ImageIncomplete { .. });
            assert!(refused, "{name} swapped: {err}");
            job_refuses_before_any_sql(&f, &image, checksum.clone(), &format!("swapped-job-{i}")).await;
            std::fs::write(&file, &original).unwrap();
        }

        // The manifest: changed bytes, even with the catalog's checksum made to match (a writer
        // of both), never open under the image's key.
        let manifest = f.blobs.object_path(&location, MANIFEST_NAME);
        let original = std::fs::read(&manifest).unwrap();
        flip(&manifest, original.len() / 2);
        let err = admission_refuses(&f.t, &f, &image, "flipped-manifest").await;
        assert!(matches!(err, Error::ChecksumMismatch { .. }), "manifest: {err}");
        // With the checksum made to match (a writer of the catalog too), it still does not open
        // under the image's key: the admission's verification and the job both refuse it.
        let key = f.t.data_key(&image).await.unwrap();
        let forged_sum = sha256_hex(&std::fs::read(&manifest).unwrap());
        let verified = verify_image(&*f.blobs, &location, &forged_sum, key.as_ref(), VerifyMode::Full).await;
        assert!(
            matches!(verified, Err(Error::ImageNotAuthentic { .. })),
            "manifest with a matching checksum: {verified:?}"
        );
        let reason = job_refuses_before_any_sql(&f, &image, forged_sum, "forged-manifest-job").await;
        assert!(reason.contains("not authentic"), "{reason}");
        // Another image's manifest with its own checksum: bound to the other image, refused too.
        std::fs::copy(f.blobs.object_path(&ImageLocation::for_image(other.id), MANIFEST_NAME), &manifest).unwrap();
        let moved_sum = other.checksum.clone().unwrap();
        let verified = verify_image(&*f.blobs, &location, &moved_sum, key.as_ref(), VerifyMode::Full).await;
        assert!(matches!(verified, Err(Error::ImageNotAuthentic { .. })), "another image's manifest: {verified:?}");
        job_refuses_before_any_sql(&f, &image, moved_sum, "moved-manifest-job").await;
        std::fs::write(&manifest, &original).unwrap();

        // Untouched again, it restores equal to the source.
        let restored = f.t.create_instance(OperationId::new(), CreateInstanceRequest::restore("intact", image.id));
        let restored = restored.await.unwrap();
        assert!(f.snapshot.diff(&snapshot(&f.executor, &restored, &f.password).await).is_empty());
        delete_and_check(&f, &restored).await;
        f.t.delete_image(image.id).await.unwrap();
        f.t.delete_image(other.id).await.unwrap();
    });
}

#[test]
fn a_missing_or_wrong_key_refuses_before_anything_is_created() {
    let f = fixture();
    rt().block_on(async {
        let image = image_of(&f.t, &f.source, "keyed").await;
        assert_eq!(image.state, ImageState::Ready);

        // A control plane whose key directory lacks the image's key.
        let elsewhere = f.base.path().join("other-keys");
        let other = f.t.clone().with_image_keys(Arc::new(LocalKeys::open_or_create(&elsewhere).unwrap()));
        let err = admission_refuses(&other, &f, &image, "no-key").await;
        assert!(matches!(err, Error::KeyUnavailable { .. }), "{err}");
        let key_id = &image.encryption.as_ref().unwrap().key_id;
        assert!(err.to_string().contains(key_id.as_str()), "the error names the key it needs: {err}");

        // The key file replaced by another key under the same id.
        let file = f.base.path().join("image-keys").join(format!("{key_id}.key"));
        let kept = std::fs::read(&file).unwrap();
        std::fs::write(&file, hex::encode([9u8; 32])).unwrap();
        let err = admission_refuses(&f.t, &f, &image, "wrong-key").await;
        assert!(matches!(err, Error::KeyUnavailable { .. }), "{err}");
        // ... and imaging under it fails closed: no record, no object.
        let before = f.t.catalog.list_images(&Default::default()).await.unwrap().len();
        std::fs::remove_file(&file).unwrap();
        let err = f.t.create_image(OperationId::new(), CreateImageRequest::new("unkeyed", f.source.id)).await;
        assert!(matches!(err, Err(Error::KeyUnavailable { .. })), "{err:?}");
        assert_eq!(f.t.catalog.list_images(&Default::default()).await.unwrap().len(), before, "nothing recorded");
        std::fs::write(&file, kept).unwrap();

        // No provider at all restores plaintext images only.
        let bare = Toygres::new(f.t.catalog.clone(), f.t.blobs.clone(), f.t.executor.clone());
        let err = admission_refuses(&bare, &f, &image, "bare").await;
        assert!(matches!(err, Error::KeyUnavailable { .. }), "{err}");
        f.t.delete_image(image.id).await.unwrap();
    });
}

/// The data key wrapped by AWS KMS (moto): the image is sealed, restores equal to its source,
/// is unusable to a control plane with only local keys, and a disabled KMS key refuses to image.
#[test]
fn an_image_wrapped_by_aws_kms_restores_equal_and_fails_closed() {
    let Some(url) = moto_support::url() else { return };
    let f = fixture();
    rt().block_on(async {
        let created = moto_support::kms(&url, "CreateKey", r#"{"Description":"toygres e2e"}"#).await;
        let arn = created["KeyMetadata"]["Arn"].as_str().unwrap().to_string();
        let key_id = created["KeyMetadata"]["KeyId"].as_str().unwrap().to_string();
        let kms = AwsKms::builder(&arn).endpoint(&url).credentials("testing", "moto-secret-e2e").build().unwrap();
        let t = f.t.clone().with_image_keys(Arc::new(kms));
        let image = image_of(&t, &f.source, "kms-image").await;
        let wrapped = image.encryption.clone().expect("encrypted");
        assert_eq!((wrapped.provider.as_str(), wrapped.key_id.as_str()), ("aws-kms", arn.as_str()));
        assert!(stored_files(&f, &image).iter().all(|(_, b)| b.starts_with(object::MAGIC)));

        let err = admission_refuses(&f.t, &f, &image, "kms-without-kms").await;
        assert!(matches!(err, Error::KeyUnavailable { .. }) && err.to_string().contains("aws-kms"), "{err}");
        let restored = t.create_instance(OperationId::new(), CreateInstanceRequest::restore("kms-copy", image.id));
        let restored = restored.await.unwrap();
        assert!(f.snapshot.diff(&snapshot(&f.executor, &restored, &f.password).await).is_empty());
        delete_and_check(&f, &restored).await;

        moto_support::kms(&url, "DisableKey", &format!(r#"{{"KeyId":"{key_id}"}}"#)).await;
        let before = t.catalog.list_images(&Default::default()).await.unwrap().len();
        let err = t.create_image(OperationId::new(), CreateImageRequest::new("kms-disabled", f.source.id)).await;
        assert!(matches!(err, Err(Error::KeyUnavailable { .. })), "{err:?}");
        assert_eq!(t.catalog.list_images(&Default::default()).await.unwrap().len(), before, "nothing recorded");
        t.delete_image(image.id).await.unwrap();
    });
}
