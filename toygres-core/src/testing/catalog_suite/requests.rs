//! An operation id is bound to the request it was first used with: its request digest is kept
//! with the record, and another digest under the same operation is refused without a change.

use super::{new_image, new_instance, ok};
use crate::catalog::CatalogStore;
use crate::error::Error;
use crate::filter::InstanceFilter;
use crate::ids::{InstanceId, OperationId};
use crate::image::ImageFilter;
use crate::state::InstanceState;
use std::sync::Arc;

/// The same digest returns the same image; another one is [`Error::OperationReused`] and
/// reserves nothing; a missing digest on either side is not compared (records written before
/// digests existed).
pub async fn an_image_operation_is_bound_to_its_request<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let source = InstanceId::new();
    let operation = OperationId::new();
    let mut first = new_image(source, "bound");
    first.request_digest = Some("digest-1".into());
    let image = ok(catalog.reserve_image(operation, &first).await, "reserve");
    assert_eq!(ok(catalog.reserve_image(operation, &first).await, "same request").id, image.id);

    let mut other = new_image(source, "other");
    other.request_digest = Some("digest-2".into());
    match catalog.reserve_image(operation, &other).await {
        Err(Error::OperationReused { operation: o }) if o == operation => {}
        got => panic!("the same operation with another request: expected OperationReused, got {got:?}"),
    }
    let listed = ok(catalog.list_images(&ImageFilter::new().source(source)).await, "list");
    assert_eq!(listed, vec![image.clone()], "a refused reservation changes nothing");

    let unchecked = OperationId::new();
    let legacy = ok(catalog.reserve_image(unchecked, &new_image(source, "legacy")).await, "no digest");
    assert_eq!(ok(catalog.reserve_image(unchecked, &other).await, "digest vs none").id, legacy.id);
}

/// The same for instances: same digest, same record; another digest is
/// [`Error::OperationReused`], creates nothing and takes no name.
pub async fn an_instance_operation_is_bound_to_its_request<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let operation = OperationId::new();
    let mut first = new_instance("bound", InstanceState::Provisioning, "pw");
    first.request_digest = Some("digest-1".into());
    let instance = ok(catalog.create_instance(operation, &first).await, "create");
    assert_eq!(ok(catalog.create_instance(operation, &first).await, "same request").id, instance.id);

    let mut other = new_instance("other", InstanceState::Provisioning, "pw");
    other.request_digest = Some("digest-2".into());
    match catalog.create_instance(operation, &other).await {
        Err(Error::OperationReused { operation: o }) if o == operation => {}
        got => panic!("the same operation with another request: expected OperationReused, got {got:?}"),
    }
    assert_eq!(ok(catalog.list_instances(&InstanceFilter::new()).await, "list"), vec![instance]);
    expect_err!(catalog.get_instance_by_name("other").await, Error::InstanceNotFound(_), "the name stays free");
}
