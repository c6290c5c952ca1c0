//! Where an instance's connection test runs and what it connects to ([`ConnectionTest`]): the
//! control plane to the address clients use ([`crate::connect`]), or, from inside the cluster,
//! the control plane or a probe pod ([`crate::probe`]) to the instance's Service by its cluster
//! name. Load-balancer source ranges filter pods' traffic to a LoadBalancer's address too, so the
//! in-cluster tests never use it; the instance's NetworkPolicy admits them by pod label.

use crate::api;
use crate::config::ConnectionTest;
use crate::connect::{test_connection, test_connection_with, ServerTrust};
use crate::executor::K8sExecutor;
use crate::instance::POSTGRES_PORT;
use crate::tls::{self, CERT_KEY};
use k8s_openapi::api::core::v1::Secret;
use toygres_core::{ConnectionInfo, Error, InstanceSpec, Password, Result};

impl K8sExecutor {
    /// One connection test of `instance` (reached at `connection` by clients) as
    /// [`crate::K8sConfig::connection_test`] says.
    pub(crate) async fn test_connection_of(
        &self,
        instance: &InstanceSpec,
        connection: &ConnectionInfo,
        password: &Password,
    ) -> Result<()> {
        let timeout = self.config.connect_timeout;
        match self.config.connection_test {
            ConnectionTest::ControlPlane => test_connection(connection, password, timeout).await,
            ConnectionTest::ControlPlaneInCluster => {
                let trust = self.instance_certificate(instance).await?;
                test_connection_with(&self.service_address(instance, connection), password, timeout, &trust).await
            }
            ConnectionTest::InCluster => {
                self.probe_connection(&self.service_address(instance, connection), password).await
            }
        }
    }

    /// `connection` on the instance's Service inside the cluster: `pg-<id>.<namespace>.svc`.
    pub fn service_address(&self, instance: &InstanceSpec, connection: &ConnectionInfo) -> ConnectionInfo {
        ConnectionInfo {
            host: self.config.cluster_host(instance),
            port: POSTGRES_PORT,
            dns_name: None,
            ..connection.clone()
        }
    }

    /// Only the certificate `instance`'s server presents (its TLS Secret's `tls.crt`): the test
    /// then also proves it reached the instance.
    async fn instance_certificate(&self, instance: &InstanceSpec) -> Result<ServerTrust> {
        let name = tls::secret_name(&self.config, instance);
        let secret = self.api::<Secret>().get_opt(&name).await;
        let secret = secret.map_err(|e| api::error(&format!("reading Secret {name}"), e))?;
        let pem = secret.and_then(|s| s.data).and_then(|mut d| d.remove(CERT_KEY)).ok_or_else(|| {
            Error::backend_msg(
                api::BACKEND,
                format!("Secret {name} has no {CERT_KEY}: create the instance's volume again (it adds one)"),
            )
        })?;
        ServerTrust::pinned_pem(&String::from_utf8_lossy(&pem.0))
    }
}
