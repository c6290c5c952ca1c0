//! The `Transfer::Command` path of the local executor (the one azcopy uses), driven by a tiny shell
//! "copy program" that writes and reads files named by the `{url}`: image → restore → equality,
//! and no secret (URL query, secret environment) in the job logs.

#[path = "local/command_blobs.rs"]
mod command_blobs;
#[path = "local/support.rs"]
mod support;

use command_blobs::CommandBlobs;
use std::sync::Arc;
use support::*;
use toygres_core::{
    BlobStore, CommandTransfer, CreateInstanceRequest, ImageId, ImageLocation, OperationId, Password, Transfer,
};
use toygres_local::LocalBlobStore;

/// Local files, but jobs move bytes with `sh` instead of object_store. With `fail`, every upload
/// fails the way a copy program does: a message on stderr and a non-zero exit.
fn shell_copy_blobs(files: LocalBlobStore, fail: bool) -> CommandBlobs {
    let args = |mode: &str| vec!["-c".to_string(), SCRIPT.to_string(), mode.to_string(), "{url}".to_string()];
    let make = move |base_url: String| {
        Transfer::Command(CommandTransfer {
            program: "sh".into(),
            login: Some(vec!["-c".into(), "echo logged in with $FAKE_TOKEN".into()]),
            upload_from_stdin: args(if fail { "fail" } else { "up" }),
            download_to_stdout: args("down"),
            base_url,
            url_query: Some(Password::new("sig=url-query-secret")),
            env: vec![("PLAIN".into(), "1".into())],
            secret_env: vec![("FAKE_TOKEN".into(), Password::new("env-token-secret"))],
        })
    };
    CommandBlobs { files, make: Box::new(make) }
}

const SCRIPT: &str = r#"f="${1%%\?*}"; echo "token $FAKE_TOKEN for $1" >&2; case "$0" in fail) echo "simulated: quota exceeded for $1" >&2; exit 3;; up) mkdir -p "$(dirname "$f")"; cat > "$f";; down) cat "$f";; esac"#;

#[test]
fn command_transfers_image_and_restore_without_leaking_secrets() {
    let f = fixture();
    rt().block_on(async {
        let blobs = Arc::new(shell_copy_blobs(f.blobs.as_ref().clone(), false));
        // A second executor on the same base directory (it sees the source's volume) and catalog.
        let executor = toygres_local::LocalExecutor::builder(f.executor.base_dir(), blobs.clone()).build().unwrap();
        let t = toygres_core::Toygres::new(f.catalog.clone(), blobs.clone(), Arc::new(executor.clone()))
            .with_image_keys(image_keys(f.executor.base_dir()));
        let source = f.source.clone();
        let image = image_of(&t, &source, "via-shell").await;
        let restored = t
            .create_instance(OperationId::new(), CreateInstanceRequest::restore("shell-copy", image.id))
            .await
            .unwrap();
        let diff = f.snapshot.diff(&snapshot(&executor, &restored, &f.password).await);
        assert!(diff.is_empty(), "{}", diff.join("\n"));
        let cluster = executor.cluster(&spec(&restored)).unwrap();
        let pid = cluster.postmaster_pid().unwrap();
        t.delete_instance(restored.id).await.unwrap();
        assert!(!toygres_local::cluster::process_alive(pid));
        t.delete_image(image.id).await.unwrap();
        // Finished jobs are deleted with their logs; a failing job's log stays until it is deleted.

        let bad = ImageLocation::for_image(ImageId::new());
        let transfer = blobs.transfer(&bad);
        assert!(format!("{transfer:?}").contains("***"), "Debug hides the URL query");
        let spec = unrecorded_spec("missing-image");
        use toygres_core::ClusterExecutor;
        executor.create_volume(&spec, &f.password).await.unwrap();
        let job = toygres_core::RestoreJobSpec {
            image_id: bad.image_id,
            location: bad,
            checksum: "sha256:00".into(),
            instance: spec.clone(),
            databases: None,
            data_key: None,
            recovery: None,
        };
        let job = executor.start_restore_job(&job).await.unwrap();
        let err =
            executor.wait_for_job(&job, std::time::Duration::from_secs(30), Arc::new(toygres_core::NoProgress)).await;
        let logs = executor.job_logs(&job).await.unwrap();
        assert!(err.is_err(), "a missing image fails the job");
        assert!(logs.contains("token *** for"), "the copy program's stderr reached the log: {logs}");
        for secret in ["url-query-secret", "env-token-secret", f.password.expose()] {
            assert!(!logs.contains(secret), "{secret} leaked into the job log:\n{logs}");
            assert!(!err.as_ref().unwrap_err().to_string().contains(secret));
        }
        executor.delete_instance(&spec).await.unwrap();
    });
}

#[test]
fn a_failing_copy_programs_stderr_reaches_the_images_failure_reason() {
    let f = fixture();
    rt().block_on(async {
        let blobs = Arc::new(shell_copy_blobs(f.blobs.as_ref().clone(), true));
        let executor = toygres_local::LocalExecutor::builder(f.executor.base_dir(), blobs.clone()).build().unwrap();
        let t = toygres_core::Toygres::new(f.catalog.clone(), blobs.clone(), Arc::new(executor))
            .with_image_keys(image_keys(f.executor.base_dir()));
        let request = toygres_core::CreateImageRequest::new("doomed", f.source.id);
        let image = t.backup().reserve_image(OperationId::new(), &request).await.unwrap();
        let err = t.resume_image(image.id).await.unwrap_err();
        assert!(matches!(err, toygres_core::Error::JobFailed { .. }), "{err}");
        let record = t.catalog.get_image(image.id).await.unwrap();
        assert_eq!(record.state, toygres_core::ImageState::Failed);
        let reason = record.failure_reason.unwrap_or_default();
        assert!(reason.contains("simulated: quota exceeded for"), "the copy program's stderr is in: {reason}");
        assert!(!reason.contains("url-query-secret") && reason.contains("***"), "{reason}");
        assert!(f.blobs.stat(&ImageLocation::for_image(image.id)).await.unwrap().is_empty(), "partial blobs removed");
    });
}
