//! A fresh, empty instance (`create_instance` without `source_image_id`): record → volume →
//! initialise empty → deploy → ready → connection strings → test → running; cleanup on failure.
//! The steps after the volume are the restore pipeline's own ([`Restore`]).

use super::step::step;
use super::{Restore, Toygres};
use crate::error::{Error, Result};
use crate::executor::InstanceSpec;
use crate::ids::OperationId;
use crate::instance::{InstanceRecord, NewInstance};
use crate::progress::{Phase, Subject};
use crate::request::{validate_dns1123_label, CreateInstanceRequest};
use crate::secret::Password;
use crate::state::InstanceState;

/// The steps of a fresh instance. Get one with [`Toygres::provision`].
pub struct Provision {
    t: Toygres,
}

impl Provision {
    pub(crate) fn new(t: Toygres) -> Self {
        Self { t }
    }

    /// Validates a fresh-instance request (no `source_image_id`, a valid name and DNS label, a
    /// non-empty password); nothing is created when this fails. Returns the password.
    pub fn validate(request: &CreateInstanceRequest) -> Result<Password> {
        if request.source_image_id.is_some() {
            return Err(Error::InvalidRequest {
                field: "source_image_id",
                reason: "a fresh instance has no source image; use the restore pipeline".into(),
            });
        }
        validate_dns1123_label("name", &request.name)?;
        if let Some(label) = &request.dns_label {
            validate_dns1123_label("dns_label", label)?;
        }
        match &request.password {
            Some(p) if !p.is_empty() => Ok(p.clone()),
            _ => Err(Error::InvalidRequest {
                field: "password",
                reason: "a fresh instance needs the superuser password it is created with".into(),
            }),
        }
    }

    /// Runs the whole pipeline; on a failure after the record, everything created is removed and
    /// the instance is left `failed` with the reason.
    pub async fn run(&self, operation: OperationId, request: CreateInstanceRequest) -> Result<InstanceRecord> {
        let record = self.create_record(operation, &request).await?;
        if record.state != InstanceState::Provisioning {
            return Ok(record);
        }
        let spec = record.spec();
        let restore = Restore::new(self.t.clone());
        let password = self.t.catalog.instance_password(spec.id).await?;
        let outcome = async {
            restore.create_volume(&spec, &password).await?;
            self.initialize_empty(&spec, &password).await?;
            restore.deploy(&spec).await?;
            restore.wait_ready(&spec).await?;
            let connection = restore.connection_strings(&spec).await?;
            restore.test_connection(spec.id, &connection, &password).await?;
            restore.mark_running(spec.id, connection).await
        }
        .await;
        match outcome {
            Ok(running) => Ok(running),
            Err(error) => {
                restore.fail(&spec, &error).await?;
                Err(error)
            }
        }
    }

    /// Validates the request and creates the record (`provisioning`, stock, the request's
    /// password). Idempotent on `operation` for the same request (password included); another
    /// request under it is [`Error::OperationReused`], and after the record's deletion
    /// [`Error::OperationSpent`].
    pub async fn create_record(
        &self,
        operation: OperationId,
        request: &CreateInstanceRequest,
    ) -> Result<InstanceRecord> {
        let password = Self::validate(request)?;
        let mut new = NewInstance::existing(request.name.clone(), password.clone()).with_labels(request.labels.clone());
        new.dns_label = request.dns_label.clone();
        new.state = InstanceState::Provisioning;
        new.request_digest = Some(request.digest());
        let record = self.t.catalog.create_instance(operation, &new).await?;
        super::replay::fresh_instance(&*self.t.catalog, operation, record, &password).await
    }

    /// Initialises the instance's empty volume with `password` ([`crate::ClusterExecutor::initialize_empty`]).
    pub async fn initialize_empty(&self, spec: &InstanceSpec, password: &Password) -> Result<()> {
        let work = self.t.executor.initialize_empty(spec, password);
        step(&*self.t.progress, Subject::Instance(spec.id), Phase::InitializeEmpty, work).await
    }
}

impl Toygres {
    /// Creates a fresh, empty instance with the request's password. See [`Provision::run`].
    pub async fn create_empty_instance(
        &self,
        operation: OperationId,
        request: CreateInstanceRequest,
    ) -> Result<InstanceRecord> {
        self.provision().run(operation, request).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ImageId;

    #[test]
    fn a_fresh_instance_needs_a_password_a_valid_name_and_no_image() {
        let mut request = CreateInstanceRequest::restore("fresh", ImageId::new());
        request.password = Some(Password::new("pw"));
        assert!(matches!(Provision::validate(&request), Err(Error::InvalidRequest { field: "source_image_id", .. })));
        request.source_image_id = None;
        assert_eq!(Provision::validate(&request).unwrap().expose(), "pw");
        request.password = Some(Password::new(""));
        assert!(matches!(Provision::validate(&request), Err(Error::InvalidRequest { field: "password", .. })));
        request.password = Some(Password::new("pw"));
        request.name = "Bad Name".into();
        assert!(matches!(Provision::validate(&request), Err(Error::InvalidRequest { field: "name", .. })));
    }
}
