//! A creation asked for again under its operation id (a retry after a crash or a lost answer;
//! over REST, the same `Idempotency-Key`): when the record the operation created may be the
//! answer. The catalog already refuses another request under the same operation (its digest,
//! [`crate::Error::OperationReused`]); these are the rules on top of it.

use crate::error::{Error, Result};
use crate::ids::OperationId;
use crate::image::ImageRecord;
use crate::instance::InstanceRecord;
use crate::secret::Password;
use crate::state::{ImageState, InstanceState};
use crate::CatalogStore;

/// The image the operation reserved, unless it was deleted since ([`Error::OperationSpent`]):
/// answering with a record that no longer exists would point the caller at nothing.
pub(super) fn image(operation: OperationId, record: ImageRecord) -> Result<ImageRecord> {
    if record.state == ImageState::Deleted {
        return Err(Error::OperationSpent { operation, entity: "image", id: record.id.to_string() });
    }
    Ok(record)
}

/// The instance the operation created, unless it was deleted since ([`Error::OperationSpent`]).
pub(super) fn instance(operation: OperationId, record: InstanceRecord) -> Result<InstanceRecord> {
    if record.state == InstanceState::Deleted {
        return Err(Error::OperationSpent { operation, entity: "instance", id: record.id.to_string() });
    }
    Ok(record)
}

/// A fresh instance the operation created, if it was created with `password`: the password is
/// never part of a request's digest, so it is compared with the sealed one here.
pub(super) async fn fresh_instance(
    catalog: &dyn CatalogStore,
    operation: OperationId,
    record: InstanceRecord,
    password: &Password,
) -> Result<InstanceRecord> {
    let record = instance(operation, record)?;
    if catalog.instance_password(record.id).await? != *password {
        return Err(Error::OperationReused { operation });
    }
    Ok(record)
}
