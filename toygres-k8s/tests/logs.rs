//! Trace logs at TRACE level (ours and kube's) while the executor works with secrets: none shows one.
//! In its own test binary, so no concurrent test races the subscriber's callsite registration.

mod support;

use serde_json::json;
use std::sync::Arc;
use std::time::Duration;
use support::*;
use toygres_core::{
    BackupJobSpec, ClusterExecutor, ImageId, ImageLocation, ImageType, InstanceId, InstanceSpec, NoProgress, Password,
    RestoreJobSpec,
};

fn instance() -> InstanceSpec {
    InstanceSpec {
        id: InstanceId::new(),
        name: "restored".into(),
        image_type: ImageType::Stock,
        pg_version: None,
        dns_label: Some("restored-db".into()),
    }
}

/// Collects everything written by a tracing subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread", start_paused = true)]
async fn trace_logs_never_show_a_secret() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber =
        tracing_subscriber::fmt().with_max_level(tracing::Level::TRACE).with_writer(move || writer.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (fake, executor) = FakeApi::executor(blobs());
    let i = instance();
    executor.create_volume(&i, &Password::new(PASSWORD)).await.unwrap();
    executor.create_volume(&i, &Password::new(PASSWORD)).await.unwrap();
    let job = executor
        .start_restore_job(&RestoreJobSpec {
            image_id: ImageId::new(),
            location: ImageLocation::for_image(ImageId::new()),
            checksum: format!("sha256:{}", "ab".repeat(32)),
            instance: i.clone(),
            databases: None,
            data_key: None,
            recovery: None,
        })
        .await
        .unwrap();
    executor
        .start_backup_job(&BackupJobSpec {
            image_id: ImageId::new(),
            source: instance(),
            source_password: Password::new(PASSWORD),
            location: ImageLocation::for_image(ImageId::new()),
            image_type: ImageType::Stock,
            format: Default::default(),
            data_key: None,
            from_image: None,
        })
        .await
        .unwrap();
    let failed = json!({"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]});
    fake.put(&support::job(&job.name), job_with_status(&job.name, failed));
    let err = executor.wait_for_job(&job, Duration::from_secs(5), Arc::new(NoProgress)).await.unwrap_err();
    tracing::info!(error = %err, "wait failed");
    executor.delete_instance(&i).await.unwrap();
    let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("created") && text.contains("already exists"), "tracing was captured: {text}");
    let b64 = serde_json::to_string(&k8s_openapi::ByteString(PASSWORD.as_bytes().to_vec())).unwrap();
    for secret in [PASSWORD, SAS, "SAS-S3CRET", b64.trim_matches('"')] {
        assert!(!text.contains(secret), "a log line shows a secret");
    }
}

fn job_with_status(name: &str, status: serde_json::Value) -> serde_json::Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": NS}, "status": status})
}
