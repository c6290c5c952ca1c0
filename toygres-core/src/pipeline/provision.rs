//! A fresh, empty instance (`create_instance` without `source_image_id`): record → volume →
//! initialise empty → deploy → ready → connection strings → test → running; cleanup on failure.
//! The steps after the volume are the restore pipeline's own ([`Restore`]).

use super::step::step;
use super::{Restore, Toygres};
use crate::error::Result;
use crate::executor::InstanceSpec;
use crate::ids::{InstanceId, OperationId};
use crate::instance::{InstanceRecord, NewInstance};
use crate::progress::{Phase, Subject};
use crate::request::CreateInstanceRequest;
use crate::secret::Password;
use crate::state::InstanceState;

/// The steps of a fresh instance. Get one with [`Toygres::provision`].
pub struct Provision {
    pub(super) t: Toygres,
}

impl Provision {
    pub(crate) fn new(t: Toygres) -> Self {
        Self { t }
    }

    /// Runs the whole pipeline: [`Provision::admit`] before anything is created, then the
    /// record, the volume, an empty cluster with the request's password and
    /// [`Restore::serve`]. On a failure after the record, everything created is removed and the
    /// instance is left `failed` with the reason.
    pub async fn run(&self, operation: OperationId, request: CreateInstanceRequest) -> Result<InstanceRecord> {
        let record = self.begin(operation, &request).await?;
        if record.state != InstanceState::Provisioning {
            return Ok(record);
        }
        let id = record.id;
        let restore = Restore::new(self.t.clone());
        let outcome = async {
            restore.prepare_volume(id).await?;
            self.initialize(id).await?;
            restore.serve(id).await
        }
        .await;
        match outcome {
            Ok(running) => Ok(running),
            Err(error) => {
                restore.fail(&record.spec(), &error).await?;
                Err(error)
            }
        }
    }

    /// Validates the request and creates the record (`provisioning`, stock, the request's
    /// password). Idempotent on `operation` for the same request (password included); another
    /// request under it is [`crate::Error::OperationReused`], and after the record's deletion
    /// [`crate::Error::OperationSpent`].
    pub async fn create_record(
        &self,
        operation: OperationId,
        request: &CreateInstanceRequest,
    ) -> Result<InstanceRecord> {
        let password = Self::admit(request)?;
        let mut new = NewInstance::existing(request.name.clone(), password.clone()).with_labels(request.labels.clone());
        new.dns_label = request.dns_label.clone();
        new.state = InstanceState::Provisioning;
        new.request_digest = Some(request.digest());
        let record = self.t.catalog.create_instance(operation, &new).await?;
        super::replay::fresh_instance(&*self.t.catalog, operation, record, &password).await
    }

    /// [`Provision::initialize_empty`] of instance `instance`, its password unsealed from the catalog.
    pub async fn initialize(&self, instance: InstanceId) -> Result<()> {
        let spec = self.t.catalog.get_instance(instance).await?.spec();
        let password = self.t.catalog.instance_password(instance).await?;
        self.initialize_empty(&spec, &password).await
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
    use crate::error::Error;
    use crate::ids::ImageId;

    #[test]
    fn a_fresh_instance_needs_a_password_a_valid_name_and_no_image() {
        let mut request = CreateInstanceRequest::restore("fresh", ImageId::new());
        request.password = Some(Password::new("fresh-Pw-1"));
        assert!(matches!(Provision::admit(&request), Err(Error::InvalidRequest { field: "source_image_id", .. })));
        request.source_image_id = None;
        assert_eq!(Provision::admit(&request).unwrap().expose(), "fresh-Pw-1");
        request.password = Some(Password::new(""));
        assert!(matches!(Provision::admit(&request), Err(Error::InvalidRequest { field: "password", .. })));
        request.password = Some(Password::new("fresh-Pw-1"));
        request.name = "Bad Name".into();
        assert!(matches!(Provision::admit(&request), Err(Error::InvalidRequest { field: "name", .. })));
    }

    /// The strength rule (`PASSWORD_RULE`): weak passwords are refused with a reason that says what
    /// is required; strong ones, and long passphrases of two classes, are admitted.
    #[test]
    fn a_fresh_instance_password_must_be_strong() {
        use crate::request::{PASSWORD_RULE, WEAK_PASSWORD};
        let mut request = CreateInstanceRequest::restore("fresh", ImageId::new());
        request.source_image_id = None;
        let admit = |password: &str| {
            let request = CreateInstanceRequest { password: Some(Password::new(password)), ..request.clone() };
            Provision::admit(&request)
        };
        for weak in [
            "pw",
            "Pw-1",
            "Sh0rt!",
            "password",
            "password1",
            "PASSWORD-X",
            "12345678!",
            "aaaaaaaaaaaaaaaaaaaa",
            // Guessable though of enough classes: a common password, one character, one run.
            "Password1",
            "Passw0rd",
            "aaaaaaaaaaaaaaa1",
            "abcdefghijklmno1",
        ] {
            match admit(weak) {
                Err(Error::InvalidRequest { field: "password", reason }) => {
                    assert!(reason.contains(PASSWORD_RULE), "{weak:?}: {reason}");
                    let short = weak.chars().count() < 8;
                    assert_eq!(reason.starts_with(WEAK_PASSWORD), !short, "{weak:?}: {reason}");
                    assert!(!reason.contains(weak), "the reason never repeats the password: {reason}");
                }
                other => panic!("{weak:?} admitted or refused otherwise: {other:?}"),
            }
        }
        for strong in [
            "Tr0ub4dor&3",
            "pass-word-1",
            "PASS WORD 1",
            "Ünïcødé-pw1",
            "correct horse battery staple",
            &"Aa1-".repeat(256),
        ] {
            assert_eq!(admit(strong).unwrap().expose(), strong);
        }
        // Generated passwords (32 alphanumerics) pass: two classes are enough at that length.
        for _ in 0..100 {
            let generated = Password::generate();
            assert!(admit(generated.expose()).is_ok());
        }
        // A restore carries its image's password and is not checked.
        let mut restore = CreateInstanceRequest::restore("copy", ImageId::new());
        restore.password = Some(Password::new("pw"));
        restore.validate_restore().unwrap();
    }
}
