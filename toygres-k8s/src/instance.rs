//! Instance steps: volume, deployment, readiness, connection info and deletion.

use crate::api::{self, Kind};
use crate::config::ServiceExposure;
use crate::diagnose::events::{refusal_advice, EventWatch, Patience, Problem};
use crate::executor::K8sExecutor;
use crate::jobs::Stuck;
use crate::names::{self, INSTANCE_LABEL};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, LogParams};
use std::collections::BTreeSet;
use std::time::Duration;
use toygres_core::{ConnectionInfo, Error, ErrorClass, InstanceId, InstanceSpec, Password, Result};

/// How long deleting an instance waits for its server pod to stop before it deletes the pod's
/// NetworkPolicy: the default termination grace (30 s) and some.
pub const SERVER_STOP_WAIT: std::time::Duration = std::time::Duration::from_secs(60);

/// Port of every instance.
pub const POSTGRES_PORT: u16 = 5432;

/// What Azure's cloud provider says (in a `SyncLoadBalancerFailed` event) when a Service's DNS label
/// is already used by another public IP in the region.
pub const DNS_LABEL_TAKEN: [&str; 2] = ["DnsRecordInUse", "already used by another public IP"];

/// Whether `pod` reports the `Ready` condition.
pub fn pod_ready(pod: &Pod) -> bool {
    let conditions = pod.status.as_ref().and_then(|s| s.conditions.as_deref()).unwrap_or_default();
    conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The first LoadBalancer address (IP or host name) of `service`.
pub fn load_balancer_address(service: &Service) -> Option<String> {
    let ingress = service.status.as_ref()?.load_balancer.as_ref()?.ingress.as_ref()?;
    ingress.iter().find_map(|i| i.ip.clone().or_else(|| i.hostname.clone()))
}

impl K8sExecutor {
    fn owned(&self, instance: &InstanceSpec) -> impl Fn(&Option<std::collections::BTreeMap<String, String>>) -> bool {
        let id = instance.id.to_string();
        move |labels| names::owned_by(labels.as_ref(), INSTANCE_LABEL, &id)
    }

    pub(crate) async fn create_instance_volume(&self, instance: &InstanceSpec, password: &Password) -> Result<()> {
        let manifests = self.manifests();
        // Render everything first: a bad value fails before anything is created.
        let pvc = manifests.pvc(instance)?;
        let secret = manifests.instance_secret(instance, password)?;
        let config = manifests.config_map(instance)?;
        let owned = self.owned(instance);
        api::create(&self.api::<PersistentVolumeClaim>(), &pvc, |o| owned(&o.metadata.labels)).await?;
        let stored = api::create(&self.api::<Secret>(), &secret, |o| owned(&o.metadata.labels)).await?;
        if self.config.tls_secret.is_none() {
            crate::tls::add_missing_certificate(&self.api::<Secret>(), stored, &secret).await?;
        }
        let stored = api::create(&self.api::<ConfigMap>(), &config, |o| owned(&o.metadata.labels)).await?;
        // A ConfigMap of ours made by an earlier version (a restore resumed across an upgrade: no
        // `ssl = on`, an old pg_hba.conf) gets this version's configuration: it derives entirely
        // from the instance's spec and the executor's configuration, so applying it again is safe.
        if stored.data != config.data {
            api::apply(&self.api::<ConfigMap>(), &config).await?;
        }
        Ok(())
    }

    pub(crate) async fn deploy(&self, instance: &InstanceSpec) -> Result<()> {
        let manifests = self.manifests();
        let policy = manifests.network_policy(instance)?;
        let set = manifests.stateful_set(instance)?;
        let service = manifests.service(instance)?;
        let owned = self.owned(instance);
        // The policy first: the server pod never runs without it (crate::network).
        api::create(&self.api::<NetworkPolicy>(), &policy, |o| owned(&o.metadata.labels)).await?;
        api::create(&self.api::<StatefulSet>(), &set, |o| owned(&o.metadata.labels)).await?;
        api::create(&self.api::<Service>(), &service, |o| owned(&o.metadata.labels)).await?;
        Ok(())
    }

    /// Creates a **new, empty** instance: its volume, Secret and config, then the StatefulSet and Service;
    /// the PostgreSQL image's entrypoint initialises the empty volume with `password` (read from the
    /// Secret). For demos and tests that need a source instance to image; it runs with the image's
    /// default configuration. Restored instances come from the restore pipeline instead. Idempotent.
    pub async fn provision_empty(&self, instance: &InstanceSpec, password: &Password) -> Result<()> {
        self.create_instance_volume(instance, password).await?;
        self.deploy(instance).await
    }

    pub(crate) async fn wait_ready(&self, instance: &InstanceSpec, timeout: Duration) -> Result<()> {
        let pods = self.api::<Pod>();
        let name = names::server_pod_name(instance);
        let mut stuck = Stuck::default();
        let mut watch = EventWatch::default();
        let mut last_seen = String::from("no pod yet");
        let poll = async {
            loop {
                match pods.get_opt(&name).await {
                    Ok(Some(pod)) if pod_ready(&pod) => return Ok(()),
                    Ok(pod) => {
                        let problem = match &pod {
                            Some(pod) => self.pod_diagnosis(&mut watch, pod).await,
                            // The StatefulSet's refusal to create it (Pod Security, quota) is on the set.
                            None => self.server_set_problem(&mut watch, instance).await,
                        };
                        let quiet = if pod.is_some() { "not ready" } else { "no pod yet" };
                        last_seen = problem.as_ref().map_or_else(|| quiet.into(), |p| p.text.clone());
                        if let Some((problem, grace)) = stuck.bear(problem, &self.config) {
                            return Err(self.server_failed(&name, &problem, grace).await);
                        }
                    }
                    Err(e) => tracing::warn!(pod = %name, error = %e, "reading the pod failed; polling again"),
                }
                tokio::time::sleep(self.config.poll_interval).await;
            }
        };
        match tokio::time::timeout(timeout, poll).await {
            Ok(result) => result,
            Err(_) => Err(Error::Timeout {
                step: format!("readiness of pod {name} (last seen: {last_seen})"),
                after: timeout,
            }),
        }
    }

    /// What keeps `instance`'s StatefulSet from creating its pod (see
    /// [`K8sExecutor::controller_problem`]).
    async fn server_set_problem(&self, watch: &mut EventWatch, instance: &InstanceSpec) -> Option<Problem> {
        let name = instance.resource_name();
        let set = self.api::<StatefulSet>().get_opt(&name).await.ok().flatten();
        let uid = set.and_then(|s| s.metadata.uid);
        self.controller_problem(watch, "StatefulSet", &name, uid.as_deref(), true).await
    }

    /// The error of a server pod that cannot start, with the last lines of its server's log (of the
    /// previous, crashed run when it crash-loops); of one refused at admission, with what to do.
    async fn server_failed(&self, pod: &str, problem: &Problem, grace: Duration) -> Error {
        let problem_text = &problem.text;
        if problem.patience == Patience::Refused {
            let advice = refusal_advice(problem_text, &self.config.namespace);
            let message = format!("the server pod cannot be created, refused at admission: {problem_text}; {advice}");
            return Error::backend_class(ErrorClass::Failed, api::BACKEND, message, None);
        }
        let params = LogParams {
            container: Some("postgres".into()),
            previous: problem_text.contains("CrashLoopBackOff"),
            tail_lines: Some(self.config.log_tail_lines),
            ..LogParams::default()
        };
        let log = self.api::<Pod>().logs(pod, &params).await.unwrap_or_else(|e| format!("(no log: {e})"));
        Error::backend_msg(
            api::BACKEND,
            format!(
                "the server pod cannot start, stuck for {grace:?}: {problem_text}; fix the cause (image, Secret, \
                 volume, node capacity), then deploy again. Its log:\n{log}"
            ),
        )
    }

    pub(crate) async fn connection(&self, instance: &InstanceSpec) -> Result<ConnectionInfo> {
        let name = instance.resource_name();
        let info = |host: String, dns_name: Option<String>| ConnectionInfo {
            host,
            port: POSTGRES_PORT,
            user: "postgres".into(),
            database: "postgres".into(),
            dns_name,
            // Every instance accepts TLS connections only (crate::tls).
            ssl_mode: Some(crate::tls::SSL_MODE.into()),
        };
        let region = match &self.config.exposure {
            ServiceExposure::ClusterIp => {
                return Ok(info(self.config.cluster_host(instance), None));
            }
            ServiceExposure::LoadBalancer { region } => region,
        };
        let dns_name = match (&instance.dns_label, region) {
            (Some(label), Some(region)) => Some(format!("{label}.{region}.cloudapp.azure.com")),
            _ => None,
        };
        let services = self.api::<Service>();
        let limit = self.config.load_balancer_timeout;
        // Only this wait's events: an hour-old one (of an earlier attempt) says nothing of now.
        let mut watch = EventWatch::default();
        let mut uid = None;
        let poll = async {
            loop {
                let service =
                    services.get(&name).await.map_err(|e| api::error(&format!("reading Service {name}"), e))?;
                if let Some(address) = load_balancer_address(&service) {
                    return Ok(info(address, dns_name.clone()));
                }
                uid = service.metadata.uid;
                // A DNS label another public IP holds never resolves: the cloud provider says so in an event.
                let warnings = self.warnings(&mut watch, "Service", &name, uid.as_deref(), true).await;
                if let Some(taken) = warnings.iter().find(|w| DNS_LABEL_TAKEN.iter().any(|m| w.contains(m))) {
                    return Err(Error::backend_msg(
                        api::BACKEND,
                        format!("Service {name} gets no address: {taken}; choose another dns_label"),
                    ));
                }
                tokio::time::sleep(self.config.poll_interval).await;
            }
        };
        match tokio::time::timeout(limit, poll).await {
            Ok(result) => result,
            Err(_) => {
                let warnings = self.warnings(&mut watch, "Service", &name, uid.as_deref(), false).await;
                let seen = if warnings.is_empty() { "no Warning events".to_string() } else { warnings.join("; ") };
                Err(Error::Timeout { step: format!("LoadBalancer address of Service {name} ({seen})"), after: limit })
            }
        }
    }

    /// Every instance some object of a kind [`K8sExecutor::remove_instance`] deletes is labelled
    /// for, sorted, once each; objects whose label is no instance id are ignored.
    pub(crate) async fn held_instances(&self) -> Result<Vec<InstanceId>> {
        let mut ids = BTreeSet::new();
        ids.extend(labelled_instances(&self.api::<StatefulSet>()).await?);
        ids.extend(labelled_instances(&self.api::<Service>()).await?);
        ids.extend(labelled_instances(&self.api::<Job>()).await?);
        ids.extend(labelled_instances(&self.api::<Secret>()).await?);
        ids.extend(labelled_instances(&self.api::<ConfigMap>()).await?);
        ids.extend(labelled_instances(&self.api::<PersistentVolumeClaim>()).await?);
        ids.extend(labelled_instances(&self.api::<NetworkPolicy>()).await?);
        Ok(ids.into_iter().collect())
    }

    pub(crate) async fn remove_instance(&self, instance: &InstanceSpec) -> Result<()> {
        let selector = names::instance_selector(instance.id);
        api::delete_labeled(&self.api::<StatefulSet>(), &selector).await?;
        api::delete_labeled(&self.api::<Service>(), &selector).await?;
        api::delete_labeled(&self.api::<Job>(), &selector).await?;
        api::delete_labeled(&self.api::<Secret>(), &selector).await?;
        api::delete_labeled(&self.api::<ConfigMap>(), &selector).await?;
        api::delete_labeled(&self.api::<PersistentVolumeClaim>(), &selector).await?;
        // Last, once the server pod (stopping in the background, up to its termination grace) is
        // gone: a tenant's detached process must never run without the policy's egress block.
        if self.server_stopped(instance.id).await {
            api::delete_labeled(&self.api::<NetworkPolicy>(), &selector).await?;
        } else {
            tracing::warn!(instance = %instance.id, "the server pod is still stopping: its NetworkPolicy is kept \
                           until the next delete or reconcile");
        }
        Ok(())
    }

    /// Whether no server pod of instance `id` is left, waiting [`SERVER_STOP_WAIT`] at most.
    async fn server_stopped(&self, id: InstanceId) -> bool {
        let labels = names::server_selector(id);
        let selector = labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        let deadline = tokio::time::Instant::now() + SERVER_STOP_WAIT;
        loop {
            match api::list(&self.api::<Pod>(), &selector).await {
                Ok(pods) if pods.is_empty() => return true,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "listing the server pods failed; polling again"),
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(self.config.poll_interval).await;
        }
    }
}

/// The instances the objects of `api`'s kind carrying an instance label belong to.
async fn labelled_instances<K: Kind>(api: &Api<K>) -> Result<Vec<InstanceId>> {
    let objects = api::list(api, &names::instances_selector()).await?;
    Ok(objects.iter().filter_map(|o| names::instance_of(o.meta().labels.as_ref())).collect())
}
