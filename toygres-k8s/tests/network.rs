//! The network rules of `docs/azure-aks-network.md`: each instance's NetworkPolicy (no egress;
//! TCP 5432 from the configured clients, the backup and probe Jobs and the control plane only),
//! created before its server and deleted with it; the Services' source ranges and traffic
//! policy; the configuration's required decision on who may connect; the Jobs' namespace-wide
//! policies in `deploy/`.

mod support;

use k8s_openapi::api::networking::v1::{NetworkPolicy, NetworkPolicyPeer};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use support::*;
use toygres_core::{BackupJobSpec, ClusterExecutor, Error, ImageId, ImageLocation, InstanceSpec, Password, Transfer};
use toygres_k8s::network::{BACKUP_PEER, CONTROL_PLANE_PEER, NAMESPACE_NAME_LABEL, PROBE_PEER};
use toygres_k8s::transfer::job_transfer;
use toygres_k8s::{K8sConfig, Manifests, ServiceExposure};

const RANGES: [&str; 2] = ["203.0.113.0/24", "2001:db8::/32"];

fn config() -> K8sConfig {
    K8sConfig {
        exposure: ServiceExposure::LoadBalancer { region: Some("westus2".into()) },
        job_service_account: Some("toygres-jobs".into()),
        load_balancer_source_ranges: RANGES.map(String::from).to_vec(),
        client_namespaces: vec!["apps".into()],
        ..K8sConfig::default()
    }
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// Whether a pod labelled `pod` is selected by `selector`'s `matchLabels` (none of these
/// selectors uses expressions).
fn selects(selector: &BTreeMap<String, String>, pod: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| pod.get(k) == Some(v))
}

fn peer_labels(peer: &NetworkPolicyPeer) -> BTreeMap<String, String> {
    peer.pod_selector.as_ref().and_then(|s| s.match_labels.clone()).unwrap_or_default()
}

fn backup_pod_labels(config: &K8sConfig) -> BTreeMap<String, String> {
    let spec = BackupJobSpec {
        image_id: ImageId::new(),
        source: restored(None),
        source_password: Password::new(PASSWORD),
        location: ImageLocation::for_image(ImageId::new()),
        image_type: toygres_core::ImageType::Stock,
        format: Default::default(),
        data_key: None,
        from_image: None,
    };
    let transfer = job_transfer(Transfer::Command(command_transfer()), "job", "azure").unwrap();
    let job = Manifests::new(config).backup_job(&spec, &transfer).unwrap();
    job.spec.unwrap().template.metadata.unwrap().labels.unwrap()
}

fn restore_pod_labels(config: &K8sConfig, instance: &InstanceSpec) -> BTreeMap<String, String> {
    let transfer = job_transfer(Transfer::Command(command_transfer()), "job", "azure").unwrap();
    let job = Manifests::new(config).restore_job(&restore_spec(instance), &transfer).unwrap();
    job.spec.unwrap().template.metadata.unwrap().labels.unwrap()
}

/// The labels of `instance`'s server pod, as its StatefulSet's template gives them.
fn server_labels(config: &K8sConfig, instance: &InstanceSpec) -> BTreeMap<String, String> {
    let set = serde_json::to_value(Manifests::new(config).stateful_set(instance).unwrap()).unwrap();
    serde_json::from_value(set["spec"]["template"]["metadata"]["labels"].clone()).unwrap()
}

#[test]
fn the_instance_policy_denies_egress_and_admits_5432_from_the_right_sources_only() {
    let config = config();
    let m = Manifests::new(&config);
    let i = restored(Some("orders-db"));
    let policy: NetworkPolicy = m.network_policy(&i).unwrap();
    assert_eq!(policy.metadata.name, Some(i.resource_name()));
    assert_eq!(policy.metadata.labels, Some(toygres_k8s::names::instance_labels(i.id, "postgres")));
    let spec = policy.spec.unwrap();
    assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string(), "Egress".to_string()]));
    assert_eq!(spec.egress, Some(vec![]), "the server opens no connection, not even DNS");

    // It selects the server pod, and not the instance's restore Job pod (which needs HTTPS).
    let server = server_labels(&config, &i);
    let selector = spec.pod_selector.unwrap().match_labels.unwrap();
    assert!(selects(&selector, &server));
    assert!(!selects(&selector, &restore_pod_labels(&config, &i)));

    let ingress = spec.ingress.unwrap();
    assert_eq!(ingress.len(), 1, "one rule: {ingress:?}");
    let ports = ingress[0].ports.clone().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].protocol.as_deref(), Some("TCP"));
    assert_eq!(ports[0].port, Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(5432)));
    let peers = ingress[0].from.clone().unwrap();
    assert!(!peers.is_empty(), "an empty `from` would admit everyone");
    let blocks: Vec<_> = peers.iter().filter_map(|p| p.ip_block.clone()).collect();
    assert_eq!(blocks.iter().map(|b| b.cidr.as_str()).collect::<Vec<_>>(), RANGES);
    assert!(blocks.iter().all(|b| b.except.is_none()));
    let namespaces: Vec<_> = peers.iter().filter_map(|p| p.namespace_selector.clone()).collect();
    assert_eq!(namespaces.len(), 1);
    assert_eq!(namespaces[0].match_labels, Some(labels(&[(NAMESPACE_NAME_LABEL, "apps")])));
    assert!(peers.iter().all(|p| p.namespace_selector.is_none() || p.pod_selector.is_none()));
    let pod_peers: Vec<_> = peers.iter().filter(|p| p.pod_selector.is_some()).map(peer_labels).collect();
    assert_eq!(pod_peers, vec![labels(&BACKUP_PEER), labels(&PROBE_PEER), labels(&CONTROL_PLANE_PEER)]);
    assert_eq!(peers.len(), RANGES.len() + 1 + 3);

    // The pods it names are the ones that exist: the backup Jobs' pods, the probe's
    // (`toygres.io/component: probe`), the control plane's Deployment in deploy/.
    assert!(selects(&labels(&BACKUP_PEER), &backup_pod_labels(&config)));
    assert!(!selects(&labels(&BACKUP_PEER), &restore_pod_labels(&config, &i)), "a restore runs tenant SQL");
    assert_eq!(PROBE_PEER[1], ("toygres.io/component", "probe"));
    let deployment = deploy_docs("20-control-plane.yaml").into_iter().find(|d| d["kind"] == "Deployment").unwrap();
    let control_plane: BTreeMap<String, String> =
        serde_json::from_value(deployment["spec"]["template"]["metadata"]["labels"].clone()).unwrap();
    assert!(selects(&labels(&CONTROL_PLANE_PEER), &control_plane));
}

#[test]
fn a_load_balancer_keeps_client_addresses_and_admits_the_ranges_only() {
    let config = config();
    let service = Manifests::new(&config).service(&restored(None)).unwrap().spec.unwrap();
    assert_eq!(service.external_traffic_policy.as_deref(), Some("Local"), "ipBlocks must see client addresses");
    assert_eq!(service.load_balancer_source_ranges, Some(RANGES.map(String::from).to_vec()));
    let cluster = K8sConfig { exposure: ServiceExposure::ClusterIp, ..config };
    let service = Manifests::new(&cluster).service(&restored(None)).unwrap().spec.unwrap();
    assert_eq!(service.type_.as_deref(), Some("ClusterIP"));
    assert_eq!((service.external_traffic_policy, service.load_balancer_source_ranges), (None, None));
}

fn refusal(config: K8sConfig) -> (&'static str, String) {
    match config.validate() {
        Err(Error::InvalidRequest { field, reason }) => (field, reason),
        other => panic!("{config:?} not refused: {other:?}"),
    }
}

#[test]
fn who_may_connect_is_a_required_decision_and_every_range_a_cidr() {
    let none = K8sConfig { load_balancer_source_ranges: vec![], client_namespaces: vec![], ..config() };
    let (field, reason) = refusal(none.clone());
    assert_eq!(field, "load_balancer_source_ranges");
    assert!(reason.contains("client CIDRs") && reason.contains("0.0.0.0/0"), "{reason}");
    // Everyone, written out, is a decision.
    K8sConfig { load_balancer_source_ranges: vec!["0.0.0.0/0".into(), "::/0".into()], ..none.clone() }
        .validate()
        .unwrap();
    // ClusterIP: namespaces or ranges.
    let cluster = K8sConfig { exposure: ServiceExposure::ClusterIp, ..none.clone() };
    assert_eq!(refusal(cluster.clone()).0, "client_namespaces");
    K8sConfig { client_namespaces: vec!["apps".into()], ..cluster.clone() }.validate().unwrap();
    K8sConfig { load_balancer_source_ranges: vec!["10.244.0.0/16".into()], ..cluster }.validate().unwrap();
    config().validate().unwrap();

    for bad in ["203.0.113.0", "203.0.113.0/33", "2001:db8::/129", "example.com/24", "", "10.0.0.0/8 "] {
        let (field, reason) = refusal(K8sConfig { load_balancer_source_ranges: vec![bad.into()], ..config() });
        assert_eq!(field, "load_balancer_source_ranges", "{bad:?}");
        assert!(reason.contains("is not a CIDR") && reason.contains("203.0.113.0/24"), "{reason}");
    }
    let (field, _) = refusal(K8sConfig { client_namespaces: vec!["Not_A_Namespace".into()], ..config() });
    assert_eq!(field, "client_namespaces");
}

#[tokio::test]
async fn deploy_creates_the_policy_before_the_server_and_delete_removes_it() {
    let (fake, executor) = FakeApi::executor_with(blobs(), config());
    let i = restored(None);
    let policy = format!("/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/{}", i.resource_name());
    executor.create_volume(&i, &Password::new(PASSWORD)).await.unwrap();
    fake.take_calls();
    executor.deploy_from_volume(&i).await.unwrap();
    let calls = fake.take_calls();
    let at = |call: &str| calls.iter().position(|c| c == call).unwrap_or_else(|| panic!("no {call}: {calls:?}"));
    let sets = format!("POST /apis/apps/v1/namespaces/{NS}/statefulsets");
    assert!(at(&format!("POST {}", policy.rsplit_once('/').unwrap().0)) < at(&sets), "{calls:?}");
    let stored = fake.get(&policy).unwrap();
    assert_eq!(stored["spec"]["egress"], json!([]));
    // Idempotent: a re-run finds its own policy.
    executor.deploy_from_volume(&i).await.unwrap();

    // An instance of which only the policy is left is still listed, and its deletion removes it.
    for kind in ["statefulsets", "services"] {
        fake.remove(&format!("/apis/apps/v1/namespaces/{NS}/{kind}/{}", i.resource_name()));
        fake.remove(&core(kind, &i.resource_name()));
    }
    for kind in ["secrets", "configmaps", "persistentvolumeclaims"] {
        fake.remove(&core(kind, &i.resource_name()));
    }
    assert_eq!(executor.list_instances().await.unwrap(), vec![i.id]);
    executor.delete_instance(&i).await.unwrap();
    assert!(fake.get(&policy).is_none(), "the policy outlived its instance");
    assert_eq!(executor.list_instances().await.unwrap(), vec![]);
}

/// The policy outlives the server pod, which stops in the background after its StatefulSet is
/// deleted: kept while the pod is there (past `SERVER_STOP_WAIT`, for the next delete or
/// reconcile), deleted once it is gone.
#[tokio::test(start_paused = true)]
async fn the_policy_goes_only_once_the_server_pod_has_stopped() {
    let (fake, executor) = FakeApi::executor_with(blobs(), config());
    let i = restored(None);
    let policy = format!("/apis/networking.k8s.io/v1/namespaces/{NS}/networkpolicies/{}", i.resource_name());
    executor.create_volume(&i, &Password::new(PASSWORD)).await.unwrap();
    executor.deploy_from_volume(&i).await.unwrap();
    let pod = core("pods", &format!("{}-0", i.resource_name()));
    let labels = json!({"app.kubernetes.io/managed-by": "toygres", "toygres.io/component": "postgres",
                        "toygres.io/instance": i.id.to_string()});
    let stopping = json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": format!("{}-0", i.resource_name()),
                          "namespace": NS, "labels": labels, "deletionTimestamp": "2026-12-05T09:00:00Z"}});
    fake.put(&pod, stopping.clone());
    let start = tokio::time::Instant::now();
    executor.delete_instance(&i).await.unwrap();
    assert!(start.elapsed() >= toygres_k8s::instance::SERVER_STOP_WAIT);
    assert!(fake.get(&policy).is_some(), "the policy went while the server pod was still running");

    let gone = fake.clone();
    tokio::spawn(async move {
        tokio::time::sleep(std::time::Duration::from_secs(20)).await;
        gone.remove(&pod);
    });
    let start = tokio::time::Instant::now();
    executor.delete_instance(&i).await.unwrap();
    assert!(start.elapsed() >= std::time::Duration::from_secs(20));
    assert!(fake.get(&policy).is_none());
}

/// The YAML documents of `deploy/<file>`, placeholders left as they are.
fn deploy_docs(file: &str) -> Vec<Value> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy").join(file);
    let text = std::fs::read_to_string(path).unwrap();
    serde_yaml::Deserializer::from_str(&text).map(|d| Value::deserialize(d).unwrap()).collect()
}

#[test]
fn the_job_policies_select_the_job_pods_and_keep_them_from_the_metadata_endpoint() {
    let config = config();
    let docs = deploy_docs("30-network-policies.yaml");
    let policy = |name: &str| -> NetworkPolicy {
        let doc = docs.iter().find(|d| d["metadata"]["name"] == name).unwrap_or_else(|| panic!("no {name}"));
        serde_json::from_value(doc.clone()).unwrap()
    };
    let i = restored(None);
    let server = server_labels(&config, &i);
    for (name, pod, reaches_instances) in [
        ("toygres-backup-jobs", backup_pod_labels(&config), true),
        ("toygres-restore-jobs", restore_pod_labels(&config, &i), false),
    ] {
        let spec = policy(name).spec.unwrap();
        let selector = spec.pod_selector.clone().unwrap().match_labels.unwrap();
        assert!(selects(&selector, &pod), "{name} selects its pods");
        assert!(!selects(&selector, &server), "{name} selects no server");
        assert_eq!(spec.policy_types, Some(vec!["Ingress".to_string(), "Egress".to_string()]));
        assert_eq!(spec.ingress, Some(vec![]), "{name}: nothing connects to a job");
        let egress = spec.egress.unwrap();
        let mut ports = BTreeMap::new();
        for rule in &egress {
            let to = rule.to.clone().unwrap();
            assert!(!to.is_empty(), "{name}: an empty `to` allows every destination");
            for port in rule.ports.clone().unwrap() {
                let port = match port.port.unwrap() {
                    k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p) => p,
                    other => panic!("{other:?}"),
                };
                ports.entry(port).or_insert_with(Vec::new).extend(to.clone());
            }
        }
        let expected: Vec<i32> = if reaches_instances { vec![53, 443, 5432] } else { vec![53, 443] };
        assert_eq!(ports.keys().copied().collect::<Vec<_>>(), expected, "{name}");
        for peer in &ports[&53] {
            assert_eq!(peer_labels(peer), labels(&[("k8s-app", "kube-dns")]), "{name}: DNS is kube-dns only");
        }
        for peer in &ports[&443] {
            let block = peer.ip_block.clone().unwrap();
            if block.cidr == "0.0.0.0/0" {
                // Not the metadata or host endpoints, nor any in-cluster HTTPS endpoint (pods, Services).
                let except = block.except.unwrap();
                for excepted in ["169.254.169.254/32", "168.63.129.16/32", "${POD_CIDR}", "${SERVICE_CIDR}"] {
                    assert!(except.contains(&excepted.to_string()), "{name}: {excepted} not excepted: {except:?}");
                }
            } else {
                assert_eq!(block.cidr, "::/0");
            }
        }
        if reaches_instances {
            let to = &ports[&5432];
            assert!(to.iter().all(|p| selects(&peer_labels(p), &server)));
            assert!(to.iter().all(|p| p.ip_block.is_none() && p.namespace_selector.is_none()));
        }
    }
}

/// Every placeholder of `deploy/30-network-policies.yaml` is one the install guide fills (its
/// `envsubst` list), so none is applied as it is.
#[test]
fn the_install_guide_fills_the_job_policies_placeholders() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let policies = std::fs::read_to_string(root.join("deploy/30-network-policies.yaml")).unwrap();
    let guide = std::fs::read_to_string(root.join("docs/azure-aks-install.md")).unwrap();
    let envsubst = guide.lines().find(|l| l.trim_start().starts_with("envsubst '")).expect("the guide's envsubst");
    let placeholders: Vec<&str> = policies.split("${").skip(1).map(|rest| rest.split('}').next().unwrap()).collect();
    assert!(placeholders.contains(&"POD_CIDR") && placeholders.contains(&"SERVICE_CIDR"), "{placeholders:?}");
    for name in placeholders {
        assert!(envsubst.contains(&format!("${name} ")) || envsubst.contains(&format!("${name}'")), "{name}");
        assert!(guide.contains(&format!("{name}=")), "the guide sets {name}");
    }
}
