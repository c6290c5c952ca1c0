//! The deploy-to-running tail every new instance ends with, restored or fresh: deploy → wait
//! until ready → connection strings → connection test with the instance's password → `running`.
//! [`Restore::serve`] runs it; the library's pipelines and the durable orchestrations both call it.

use super::step::step;
use super::Restore;
use crate::error::{Error, Result};
use crate::executor::InstanceSpec;
use crate::ids::InstanceId;
use crate::instance::{ConnectionInfo, InstanceRecord, InstanceUpdate};
use crate::progress::{Phase, Subject};
use crate::secret::Password;
use crate::state::InstanceState;

impl Restore {
    /// The tail of every new instance, from its volume (restored or initialised) to `running`:
    /// [`Restore::deploy`], [`Restore::wait_ready`], [`Restore::connection_strings`],
    /// [`Restore::test_connection`] (under [`super::Options::connection_test`], with the password
    /// unsealed from the catalog) and [`Restore::mark_running`]. Every step is idempotent, so a
    /// re-run after a crash converges.
    pub async fn serve(&self, instance: InstanceId) -> Result<InstanceRecord> {
        let spec = self.t.catalog.get_instance(instance).await?.spec();
        let password = self.t.catalog.instance_password(instance).await?;
        self.deploy(&spec).await?;
        self.wait_ready(&spec).await?;
        let connection = self.connection_strings(&spec).await?;
        self.test_connection(instance, &connection, &password).await?;
        self.mark_running(instance, connection).await
    }

    /// Starts PostgreSQL on the instance's volume.
    pub async fn deploy(&self, spec: &InstanceSpec) -> Result<()> {
        let work = self.t.executor.deploy_from_volume(spec);
        step(&*self.t.progress, Subject::Instance(spec.id), Phase::Deploy, work).await
    }

    /// Waits until the server accepts connections.
    pub async fn wait_ready(&self, spec: &InstanceSpec) -> Result<()> {
        let work = self.t.executor.wait_until_ready(spec, self.t.options.ready_timeout);
        step(&*self.t.progress, Subject::Instance(spec.id), Phase::WaitReady, work).await
    }

    /// Where clients connect.
    pub async fn connection_strings(&self, spec: &InstanceSpec) -> Result<ConnectionInfo> {
        let work = self.t.executor.connection_info(spec);
        step(&*self.t.progress, Subject::Instance(spec.id), Phase::ConnectionStrings, work).await
    }

    /// Connects with the instance's password (a restore's is its image's), under [`super::Options::connection_test`].
    pub async fn test_connection(
        &self,
        instance: InstanceId,
        conn: &ConnectionInfo,
        password: &Password,
    ) -> Result<()> {
        let policy = &self.t.options.connection_test;
        step(&*self.t.progress, Subject::Instance(instance), Phase::TestConnection, async {
            let spec = self.t.catalog.get_instance(instance).await?.spec();
            let attempt = |_| self.t.executor.test_connection(&spec, conn, password);
            policy.run("connection test", attempt).await.map_err(|e| Error::ConnectionTest {
                instance,
                attempts: e.attempts,
                last_error: e.last_error.to_string(),
            })
        })
        .await
    }

    /// Records the instance as `running` with its connection info and the version its server
    /// actually runs (newer than the image's after a logical upgrade), when the executor tells.
    pub async fn mark_running(&self, instance: InstanceId, connection: ConnectionInfo) -> Result<InstanceRecord> {
        step(&*self.t.progress, Subject::Instance(instance), Phase::MarkRunning, async {
            let spec = self.t.catalog.get_instance(instance).await?.spec();
            let pg_version = self.t.executor.server_version(&spec).await?;
            let update = InstanceUpdate::Running { connection, pg_version };
            match self.t.catalog.update_instance(instance, InstanceState::Provisioning, update).await {
                // A re-run after the update landed, or a cancel that got there first.
                Err(Error::StateConflict { .. }) => match self.t.catalog.get_instance(instance).await? {
                    r if r.state == InstanceState::Running => Ok(r),
                    _ => Err(Error::Cancelled { what: format!("restore of instance {instance}") }),
                },
                other => other,
            }
        })
        .await
    }
}
