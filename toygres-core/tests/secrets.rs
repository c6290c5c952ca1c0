//! Passwords never appear in `Debug`, `Display`, error text or progress events.

mod support;

use support::*;
use toygres_core::*;

fn assert_hidden(what: &str, text: &str) {
    for secret in [SOURCE_PW, REQUEST_PW] {
        assert!(!text.contains(secret), "{what} shows a password: {text}");
    }
}

#[tokio::test]
async fn no_password_in_debug_display_errors_or_events() {
    let fx = fixture(ImageType::Stock).await;
    let image = fx.ready_image(ImageType::Stock).await;
    let request = restore_request(image.id);
    assert_hidden("request", &format!("{request:?}"));

    let spec = BackupJobSpec {
        image_id: image.id,
        source: InstanceSpec {
            id: fx.source.id,
            name: "source".into(),
            image_type: ImageType::Stock,
            pg_version: None,
            dns_label: None,
        },
        source_password: Password::new(SOURCE_PW),
        location: ImageLocation::for_image(image.id),
        image_type: ImageType::Stock,
        format: Default::default(),
        data_key: Some(envelope::DataKey::generate()),
        from_image: None,
    };
    assert_hidden("backup spec", &format!("{spec:?} {spec:#?}"));
    let hex_key = spec.data_key.as_ref().unwrap().expose_hex();
    assert!(!format!("{spec:?} {spec:#?}").contains(&hex_key[..16]), "the data key shows in Debug");
    let update = ImageUpdate::Ready {
        size_bytes: 1,
        checksum: "sha256:00".into(),
        pg_version: "15".into(),
        image_type: ImageType::Stock,
        source_password: Password::new(SOURCE_PW),
        metadata: None,
    };
    assert_hidden("image update", &format!("{update:?}"));

    // Every failure path of a restore: the error and the recorded reason stay clean.
    for step in RESTORE_STEPS {
        let fx = fixture(ImageType::Stock).await;
        let image = fx.ready_image(ImageType::Stock).await;
        let ex = restoring_executor_with(Some(step), |ex| {
            ex.expect_delete_instance().returning(|_| Ok(()));
        });
        let t = fx.toygres(ex).with_options(fast_options());
        let err = t.create_instance(OperationId::new(), restore_request(image.id)).await.unwrap_err();
        assert_hidden("error", &format!("{err} {err:?}"));
        let record = fx.catalog.get_instance_by_name("restored").await.unwrap();
        assert_hidden("record", &format!("{record:?}"));
        assert_hidden("events", &fx.events.dump());
    }
}

#[test]
fn redact_removes_the_secret_from_job_logs() {
    let logs = format!("psql: FATAL password authentication failed: {SOURCE_PW}");
    assert_hidden("redacted logs", &error::redact(&logs, SOURCE_PW));
    assert_eq!(error::redact("nothing here", ""), "nothing here");
}
