//! An operation id is bound to the request it was first used with, through every creation step
//! callers use (the library's pipelines, the durable client, the REST handlers): the same
//! request answers the same record; another request is `OperationReused`; once the record is
//! deleted, `OperationSpent`. None of the refusals creates anything.

mod support;

use support::*;
use toygres_core::testing::MockClusterExecutor;
use toygres_core::*;

fn reused(result: Result<impl std::fmt::Debug>, operation: OperationId) {
    match result {
        Err(Error::OperationReused { operation: o }) if o == operation => {}
        other => panic!("expected OperationReused for {operation}, got {other:?}"),
    }
}

fn spent(result: Result<impl std::fmt::Debug>, operation: OperationId, id: String) {
    match result {
        Err(e @ Error::OperationSpent { .. }) => {
            assert!(matches!(&e, Error::OperationSpent { operation: o, id: i, .. } if *o == operation && *i == id));
            assert!(e.to_string().contains("Idempotency-Key"), "{e}");
        }
        other => panic!("expected OperationSpent for {operation}, got {other:?}"),
    }
}

#[tokio::test]
async fn an_image_operation_answers_its_request_only_and_not_after_deletion() {
    let fx = fixture(ImageType::Stock).await;
    let t = fx.toygres(MockClusterExecutor::new());
    let operation = OperationId::new();
    let request = CreateImageRequest::new("nightly", fx.source.id).with_label("tier", "gold");
    let image = t.backup().reserve_image(operation, &request).await.unwrap();
    assert_eq!(t.backup().reserve_image(operation, &request).await.unwrap(), image, "a retry");

    for other in
        [request.clone().physical(), request.clone().with_description("other"), request.clone().with_label("a", "b")]
    {
        reused(t.backup().reserve_image(operation, &other).await, operation);
    }
    assert_eq!(fx.catalog.list_images(&ImageFilter::new()).await.unwrap(), vec![image.clone()]);

    let failed = ImageUpdate::Failed { reason: "test".into() };
    fx.catalog.update_image(image.id, ImageState::Creating, failed).await.unwrap();
    fx.catalog.update_image(image.id, ImageState::Failed, ImageUpdate::Deleting).await.unwrap();
    fx.catalog.update_image(image.id, ImageState::Deleting, ImageUpdate::Deleted).await.unwrap();
    spent(t.backup().reserve_image(operation, &request).await, operation, image.id.to_string());
    assert!(fx.catalog.list_images(&ImageFilter::new()).await.unwrap().is_empty(), "nothing was created");
}

#[tokio::test]
async fn a_restore_operation_answers_its_request_only_and_not_after_deletion() {
    let fx = fixture(ImageType::Stock).await;
    let t = fx.toygres(MockClusterExecutor::new());
    let image = fx.ready_image(ImageType::Stock).await;
    let password = Password::new(SOURCE_PW);
    let operation = OperationId::new();
    let request = restore_request(image.id);
    let restore = t.restore();
    let record = restore.create_record(operation, &request, &image, &password).await.unwrap();
    assert_eq!(restore.create_record(operation, &request, &image, &password).await.unwrap(), record);
    let mut other_password = request.clone();
    other_password.password = Some(Password::new("other"));
    let same = restore.create_record(operation, &other_password, &image, &password).await.unwrap();
    assert_eq!(same, record, "a restore ignores the request's password, so it is not compared");

    let mut renamed = request.clone();
    renamed.name = "elsewhere".into();
    for other in [renamed, request.clone().with_databases(["postgres"]), request.clone().with_dns_label("restored")] {
        reused(restore.create_record(operation, &other, &image, &password).await, operation);
    }
    assert!(matches!(fx.catalog.get_instance_by_name("elsewhere").await, Err(Error::InstanceNotFound(_))));

    let failed = InstanceUpdate::Failed { reason: "test".into() };
    fx.catalog.update_instance(record.id, InstanceState::Provisioning, failed).await.unwrap();
    fx.catalog.update_instance(record.id, InstanceState::Failed, InstanceUpdate::Deleting).await.unwrap();
    fx.catalog.update_instance(record.id, InstanceState::Deleting, InstanceUpdate::Deleted).await.unwrap();
    spent(restore.create_record(operation, &request, &image, &password).await, operation, record.id.to_string());
    assert!(matches!(fx.catalog.get_instance_by_name("restored").await, Err(Error::InstanceNotFound(_))));
}

#[tokio::test]
async fn a_fresh_instance_operation_is_bound_to_its_password_too() {
    let fx = fixture(ImageType::Stock).await;
    let t = fx.toygres(MockClusterExecutor::new());
    let operation = OperationId::new();
    let mut request = CreateInstanceRequest::restore("fresh", ImageId::new());
    request.source_image_id = None;
    request.password = Some(Password::new("first-Pw"));
    let record = t.provision().create_record(operation, &request).await.unwrap();
    assert_eq!(t.provision().create_record(operation, &request).await.unwrap(), record);

    let mut other_password = request.clone();
    other_password.password = Some(Password::new("second-Pw"));
    let refused = t.provision().create_record(operation, &other_password).await;
    assert!(!format!("{refused:?}").contains("second-Pw"), "no password in the error");
    reused(refused, operation);
    reused(t.provision().create_record(operation, &request.clone().with_label("k", "v")).await, operation);
    let instances = fx.catalog.list_instances(&InstanceFilter::new().name("fresh")).await.unwrap();
    assert_eq!(instances, vec![record]);
}
