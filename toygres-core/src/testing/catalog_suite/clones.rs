//! Conformance property of clone images: their format, the clone image a physical image was
//! exported from, and clone schedules are recorded and read back.

use super::{new_image, ok, ready_update};
use crate::catalog::CatalogStore;
use crate::domain::ImageFormat;
use crate::ids::{InstanceId, OperationId};
use crate::image::ImageFilter;
use crate::schedule::CreateScheduleRequest;
use std::sync::Arc;

/// A clone image, a physical image exported from it ([`crate::NewImage::from_image`]) and a
/// schedule of clone images round-trip through reserve/create, get and list; an image taken
/// from its instance has no `from_image`.
pub async fn clone_images_exports_and_schedules_round_trip<C: CatalogStore + ?Sized + 'static>(catalog: Arc<C>) {
    let source = InstanceId::new();
    let clone_new = new_image(source, "clone").with_format(ImageFormat::Clone);
    let clone = ok(catalog.reserve_image(OperationId::new(), &clone_new).await, "reserve a clone image");
    assert_eq!((clone.format, clone.from_image), (ImageFormat::Clone, None));
    let clone = ok(catalog.update_image(clone.id, clone.state, ready_update("clone-pw")).await, "clone ready");
    assert_eq!(ok(catalog.get_image(clone.id).await, "get the clone image"), clone);

    let export_new = new_image(source, "export").with_format(ImageFormat::Physical).with_from_image(clone.id);
    let operation = OperationId::new();
    let export = ok(catalog.reserve_image(operation, &export_new).await, "reserve an export");
    assert_eq!((export.format, export.from_image), (ImageFormat::Physical, Some(clone.id)));
    assert_eq!(ok(catalog.reserve_image(operation, &export_new).await, "retry"), export, "a retry returns it");
    assert_eq!(ok(catalog.get_image(export.id).await, "get the export"), export);
    let listed = ok(catalog.list_images(&ImageFilter::new().source(source)).await, "list");
    assert_eq!(listed, vec![clone.clone(), export.clone()], "listed as they are read");

    let new = CreateScheduleRequest::new("clones", source, "*/5 * * * *")
        .with_format(ImageFormat::Clone)
        .to_new()
        .expect("a valid clone schedule");
    let schedule = ok(catalog.create_schedule(OperationId::new(), &new).await, "create a clone schedule");
    assert_eq!(schedule.format, ImageFormat::Clone);
    assert_eq!(ok(catalog.get_schedule(schedule.id).await, "get the schedule"), schedule);
    assert_eq!(ok(catalog.list_schedules().await, "list schedules"), vec![schedule]);
}
