//! A checker of Pod Security "restricted" as the Kubernetes documentation defines it
//! (<https://kubernetes.io/docs/concepts/security/pod-security-standards/>: every Baseline control,
//! then the Restricted ones), plus the hardening toygres adds. It walks every pod template of a
//! manifest (Pod, Job, CronJob, StatefulSet, Deployment, ReplicaSet, DaemonSet) as JSON and returns
//! every violation with its path, so a test can assert there are none and show them all when not.
//!
//! Baseline: HostProcess, host namespaces, privileged, capabilities, hostPath volumes, host ports,
//! host probes / lifecycle hooks, AppArmor, SELinux, `/proc` mount type, seccomp (not
//! `Unconfined`), sysctls. Restricted: volume types, privilege escalation, running as non-root,
//! non-root user, seccomp (`RuntimeDefault`/`Localhost`, pod-level or on every container),
//! capabilities (drop `ALL`, add at most `NET_BIND_SERVICE`; this also covers Baseline's list).
//! Hardening: `automountServiceAccountToken: false`, `readOnlyRootFilesystem: true`, CPU request,
//! memory request equal to the memory limit, ephemeral-storage request and limit.
#![allow(dead_code)]

use serde_json::Value;

/// One broken rule: where, which rule, what was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Path of the offending field, e.g. `spec.template.spec.containers[0](dump).securityContext`.
    pub path: String,
    /// The rule, named as the documentation's control (lowercase) or the hardening rule.
    pub rule: &'static str,
    /// What was found.
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: [{}] {}", self.path, self.rule, self.detail)
    }
}

/// Every pod template of `doc` as (path prefix, pod metadata, pod spec).
pub fn pod_templates(doc: &Value) -> Vec<(String, &Value, &Value)> {
    let kind = doc["kind"].as_str().unwrap_or_default();
    let at = |prefix: &str, pointer: &str| -> Vec<(String, &Value, &Value)> {
        match doc.pointer(pointer) {
            Some(spec) if spec.is_object() => {
                let meta = doc.pointer(&pointer.replace("/spec", "/metadata")).unwrap_or(&Value::Null);
                vec![(prefix.to_string(), meta, spec)]
            }
            _ => vec![],
        }
    };
    match kind {
        "Pod" => vec![("spec".to_string(), &doc["metadata"], &doc["spec"])],
        "Job" | "StatefulSet" | "Deployment" | "ReplicaSet" | "DaemonSet" | "ReplicationController" => {
            at("spec.template.spec", "/spec/template/spec")
        }
        "CronJob" => at("spec.jobTemplate.spec.template.spec", "/spec/jobTemplate/spec/template/spec"),
        _ => vec![],
    }
}

/// Every violation in every pod template of `doc`, paths prefixed with `origin`.
pub fn check_manifest(origin: &str, doc: &Value) -> Vec<Violation> {
    pod_templates(doc)
        .into_iter()
        .flat_map(|(prefix, meta, spec)| check_pod(&format!("{origin}: {prefix}"), meta, spec))
        .collect()
}

const VOLUME_TYPES: [&str; 8] =
    ["configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected", "secret"];
const SYSCTLS: [&str; 10] = [
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];
const SELINUX_TYPES: [&str; 5] = ["", "container_t", "container_init_t", "container_kvm_t", "container_engine_t"];

/// Every violation of pod `spec` (with `metadata`), paths prefixed with `path`.
pub fn check_pod(path: &str, metadata: &Value, spec: &Value) -> Vec<Violation> {
    let mut out = Vec::new();
    let mut flag = |p: String, rule: &'static str, detail: String| out.push(Violation { path: p, rule, detail });
    let pod_sc = &spec["securityContext"];
    let psc = format!("{path}.securityContext");

    // Baseline, pod level.
    for ns in ["hostNetwork", "hostPID", "hostIPC"] {
        if spec[ns] == Value::Bool(true) {
            flag(format!("{path}.{ns}"), "host namespaces", "must be false or unset".into());
        }
    }
    if pod_sc["windowsOptions"]["hostProcess"] == Value::Bool(true) {
        flag(format!("{psc}.windowsOptions.hostProcess"), "hostprocess", "must be false or unset".into());
    }
    check_selinux(&psc, &pod_sc["seLinuxOptions"], &mut flag);
    check_apparmor(&psc, &pod_sc["appArmorProfile"], &mut flag);
    for (i, s) in pod_sc["sysctls"].as_array().into_iter().flatten().enumerate() {
        let name = s["name"].as_str().unwrap_or_default();
        if !SYSCTLS.contains(&name) {
            flag(format!("{psc}.sysctls[{i}]"), "sysctls", format!("{name:?} is not a safe sysctl"));
        }
    }
    for (key, value) in metadata["annotations"].as_object().into_iter().flatten() {
        let v = value.as_str().unwrap_or_default();
        if key.starts_with("container.apparmor.security.beta.kubernetes.io/")
            && v != "runtime/default"
            && !v.starts_with("localhost/")
        {
            flag(format!("{path}(metadata.annotations[{key}])"), "apparmor", format!("{v:?}"));
        }
    }
    for (i, volume) in spec["volumes"].as_array().into_iter().flatten().enumerate() {
        let vpath = format!("{path}.volumes[{i}]({})", volume["name"].as_str().unwrap_or("?"));
        if !volume["hostPath"].is_null() {
            flag(format!("{vpath}.hostPath"), "hostpath volumes", "hostPath volumes are forbidden".into());
        }
        let sources: Vec<&String> = volume.as_object().into_iter().flatten().map(|(k, _)| k).collect();
        for source in sources.into_iter().filter(|k| *k != "name") {
            if !VOLUME_TYPES.contains(&source.as_str()) && !volume[source].is_null() {
                flag(vpath.clone(), "volume types", format!("{source} volumes are not allowed"));
            }
        }
    }

    // Restricted, pod level.
    let pod_non_root = pod_sc["runAsNonRoot"] == Value::Bool(true);
    if pod_sc["runAsUser"] == 0 {
        flag(format!("{psc}.runAsUser"), "running as non-root user", "must not be 0".into());
    }
    let pod_seccomp = pod_sc["seccompProfile"]["type"].as_str();
    let pod_seccomp_ok = matches!(pod_seccomp, Some("RuntimeDefault" | "Localhost"));
    if let Some(t) = pod_seccomp.filter(|_| !pod_seccomp_ok) {
        flag(format!("{psc}.seccompProfile.type"), "seccomp", format!("{t:?} is not RuntimeDefault or Localhost"));
    }

    // Hardening, pod level.
    if spec["automountServiceAccountToken"] != Value::Bool(false) {
        flag(
            format!("{path}.automountServiceAccountToken"),
            "service-account token",
            "must be false: the jobs and servers never call the Kubernetes API; the control plane projects its token"
                .into(),
        );
    }

    for list in ["containers", "initContainers", "ephemeralContainers"] {
        for (i, c) in spec[list].as_array().into_iter().flatten().enumerate() {
            let cpath = format!("{path}.{list}[{i}]({})", c["name"].as_str().unwrap_or("?"));
            check_container(&cpath, c, pod_non_root, pod_seccomp_ok, list == "ephemeralContainers", &mut flag);
        }
    }
    out
}

type Flag<'a> = dyn FnMut(String, &'static str, String) + 'a;

fn check_selinux(path: &str, options: &Value, flag: &mut Flag) {
    let t = options["type"].as_str().unwrap_or_default();
    if !SELINUX_TYPES.contains(&t) {
        flag(format!("{path}.seLinuxOptions.type"), "selinux", format!("{t:?} is not allowed"));
    }
    for key in ["user", "role"] {
        if options[key].as_str().is_some_and(|v| !v.is_empty()) {
            flag(format!("{path}.seLinuxOptions.{key}"), "selinux", "must be unset".into());
        }
    }
}

fn check_apparmor(path: &str, profile: &Value, flag: &mut Flag) {
    if let Some(t) = profile["type"].as_str().filter(|t| !matches!(*t, "RuntimeDefault" | "Localhost")) {
        flag(format!("{path}.appArmorProfile.type"), "apparmor", format!("{t:?} is not RuntimeDefault or Localhost"));
    }
}

fn check_container(path: &str, c: &Value, pod_non_root: bool, pod_seccomp: bool, ephemeral: bool, flag: &mut Flag) {
    let sc = &c["securityContext"];
    let scp = format!("{path}.securityContext");
    // Baseline.
    if sc["privileged"] == Value::Bool(true) {
        flag(format!("{scp}.privileged"), "privileged containers", "must be false or unset".into());
    }
    if sc["windowsOptions"]["hostProcess"] == Value::Bool(true) {
        flag(format!("{scp}.windowsOptions.hostProcess"), "hostprocess", "must be false or unset".into());
    }
    for (i, port) in c["ports"].as_array().into_iter().flatten().enumerate() {
        if port["hostPort"].as_i64().is_some_and(|p| p != 0) {
            flag(format!("{path}.ports[{i}].hostPort"), "host ports", format!("{}", port["hostPort"]));
        }
    }
    for probe in ["livenessProbe", "readinessProbe", "startupProbe", "lifecycle.postStart", "lifecycle.preStop"] {
        let handler = probe.split('.').fold(c, |v, k| &v[k]);
        for kind in ["httpGet", "tcpSocket"] {
            if handler[kind]["host"].as_str().is_some_and(|h| !h.is_empty()) {
                flag(format!("{path}.{probe}.{kind}.host"), "host probes / lifecycle hooks", "must be unset".into());
            }
        }
    }
    check_apparmor(&scp, &sc["appArmorProfile"], flag);
    check_selinux(&scp, &sc["seLinuxOptions"], flag);
    if sc["procMount"].as_str().is_some_and(|m| m != "Default") {
        flag(format!("{scp}.procMount"), "/proc mount type", format!("{}", sc["procMount"]));
    }
    // Restricted.
    if sc["allowPrivilegeEscalation"] != Value::Bool(false) {
        flag(format!("{scp}.allowPrivilegeEscalation"), "privilege escalation", "must be false".into());
    }
    match sc["runAsNonRoot"].as_bool() {
        Some(false) => flag(format!("{scp}.runAsNonRoot"), "running as non-root", "must be true".into()),
        None if !pod_non_root => flag(
            format!("{scp}.runAsNonRoot"),
            "running as non-root",
            "must be true here or in the pod's securityContext".into(),
        ),
        _ => {}
    }
    if sc["runAsUser"] == 0 {
        flag(format!("{scp}.runAsUser"), "running as non-root user", "must not be 0".into());
    }
    match sc["seccompProfile"]["type"].as_str() {
        Some("RuntimeDefault" | "Localhost") => {}
        Some(t) => flag(format!("{scp}.seccompProfile.type"), "seccomp", format!("{t:?} is not allowed")),
        None if !pod_seccomp => {
            flag(format!("{scp}.seccompProfile.type"), "seccomp", "unset here and in the pod's securityContext".into())
        }
        None => {}
    }
    let caps = &sc["capabilities"];
    if !caps["drop"].as_array().into_iter().flatten().any(|d| d == "ALL") {
        flag(format!("{scp}.capabilities.drop"), "capabilities", "must include ALL".into());
    }
    for (i, cap) in caps["add"].as_array().into_iter().flatten().enumerate() {
        if cap != "NET_BIND_SERVICE" {
            flag(format!("{scp}.capabilities.add[{i}]"), "capabilities", format!("{cap} may not be added"));
        }
    }
    // Hardening (ephemeral containers take no resources).
    if sc["readOnlyRootFilesystem"] != Value::Bool(true) {
        flag(format!("{scp}.readOnlyRootFilesystem"), "read-only root filesystem", "must be true".into());
    }
    if ephemeral {
        return;
    }
    let (requests, limits) = (&c["resources"]["requests"], &c["resources"]["limits"]);
    let rp = format!("{path}.resources");
    for (what, value) in [
        ("requests.cpu", &requests["cpu"]),
        ("requests.memory", &requests["memory"]),
        ("limits.memory", &limits["memory"]),
        ("requests.ephemeral-storage", &requests["ephemeral-storage"]),
        ("limits.ephemeral-storage", &limits["ephemeral-storage"]),
    ] {
        if value.as_str().is_none_or(str::is_empty) {
            flag(format!("{rp}.{what}"), "resources", "must be set".into());
        }
    }
    if !requests["memory"].is_null() && !limits["memory"].is_null() && requests["memory"] != limits["memory"] {
        flag(
            format!("{rp}.limits.memory"),
            "resources",
            format!("{} differs from the request {}", limits["memory"], requests["memory"]),
        );
    }
}
