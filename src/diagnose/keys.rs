//! Which Kubernetes resource a key belongs to, from the apiserver's `/registry/...` layout.
//!
//! Layout: core resources `/registry/<resource>/<namespace>/<name>` (namespaced) or
//! `/registry/<resource>/<name>` (cluster-scoped); grouped ones `/registry/<group>/<resource>/...`
//! where a segment with a dot is a group (reported as `<group>/<resource>`). Legacy spellings:
//! `minions` are nodes, `services/specs` services and `services/endpoints` endpoints. Keys
//! outside `/registry/` are grouped by their first path segment.

/// A key's resource and object identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

pub const REGISTRY: &str = "/registry/";

pub fn classify(key: &str) -> KeyInfo {
    let Some(rest) = key.strip_prefix(REGISTRY) else {
        let first = match key.strip_prefix('/') {
            Some(k) => format!("/{}", k.split('/').next().unwrap_or("")),
            None => key.split('/').next().unwrap_or("").to_string(),
        };
        return KeyInfo {
            resource: first,
            namespace: None,
            name: None,
        };
    };
    let segments: Vec<&str> = rest.split('/').collect();
    let (resource, object): (String, &[&str]) = match segments.as_slice() {
        [group, resource, object @ ..] if group.contains('.') => {
            (format!("{group}/{resource}"), object)
        }
        ["minions", object @ ..] => ("nodes".to_string(), object),
        ["services", "specs", object @ ..] => ("services".to_string(), object),
        ["services", "endpoints", object @ ..] => ("endpoints".to_string(), object),
        [resource, object @ ..] => (resource.to_string(), object),
        [] => (String::new(), &[]),
    };
    let (namespace, name) = match object {
        [] => (None, None),
        [name] => (None, Some(name.to_string())),
        [namespace, name @ ..] => (Some(namespace.to_string()), Some(name.join("/"))),
    };
    KeyInfo {
        resource,
        namespace,
        name,
    }
}

/// The vCluster setting that most likely syncs objects of `resource` between the virtual and
/// the host cluster (vCluster ≥ 0.20 `sync.*` values), for the sync-loop warning.
pub fn vcluster_sync_hint(resource: &str) -> String {
    if let Some((group, plural)) = resource.split_once('/') {
        if group.ends_with(".k8s.io") && group != "apiextensions.k8s.io" {
            return match plural {
                "ingresses" => "sync.toHost.ingresses".into(),
                "networkpolicies" => "sync.toHost.networkPolicies".into(),
                "endpointslices" => "sync.toHost.endpointSlices".into(),
                "storageclasses" => {
                    "sync.toHost.storageClasses / sync.fromHost.storageClasses".into()
                }
                "priorityclasses" => {
                    "sync.toHost.priorityClasses / sync.fromHost.priorityClasses".into()
                }
                "leases" => "not synced by vCluster: a controller renewing leases too often".into(),
                _ => format!("the vCluster sync setting for {plural}"),
            };
        }
        if group == "apiextensions.k8s.io" {
            return "CRD definitions: sync.toHost.customResources / sync.fromHost.customResources entries".into();
        }
        return format!(
            "the custom resource entry \"{plural}.{group}\" under sync.toHost.customResources or \
             sync.fromHost.customResources (a field the host side rewrites makes it sync back and forth)"
        );
    }
    match resource {
        "pods" => "sync.toHost.pods".into(),
        "secrets" => "sync.toHost.secrets / sync.fromHost.secrets".into(),
        "configmaps" => "sync.toHost.configMaps / sync.fromHost.configMaps".into(),
        "services" => "sync.toHost.services".into(),
        "endpoints" => "sync.toHost.endpoints".into(),
        "persistentvolumeclaims" => "sync.toHost.persistentVolumeClaims".into(),
        "persistentvolumes" => "sync.toHost.persistentVolumes".into(),
        "serviceaccounts" => "sync.toHost.serviceAccounts".into(),
        "nodes" => "sync.fromHost.nodes".into(),
        "events" => "sync.fromHost.events".into(),
        "namespaces" => "sync.toHost.namespaces".into(),
        other => format!("the vCluster sync setting for {other}, if it is synced"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(key: &str) -> (String, Option<String>, Option<String>) {
        let k = classify(key);
        (k.resource, k.namespace, k.name)
    }

    #[test]
    fn core_namespaced_and_cluster_scoped() {
        assert_eq!(
            r("/registry/configmaps/default/cm-1"),
            (
                "configmaps".into(),
                Some("default".into()),
                Some("cm-1".into())
            )
        );
        assert_eq!(
            r("/registry/namespaces/kube-system"),
            ("namespaces".into(), None, Some("kube-system".into()))
        );
    }

    #[test]
    fn grouped_resources() {
        // Built-in groups are stored without their group: /registry/deployments/<ns>/<name>.
        assert_eq!(r("/registry/deployments/ns/web").0, "deployments");
        assert_eq!(
            r("/registry/example.com/widgets/ns/w1"),
            (
                "example.com/widgets".into(),
                Some("ns".into()),
                Some("w1".into())
            )
        );
        assert_eq!(
            r("/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com").0,
            "apiextensions.k8s.io/customresourcedefinitions"
        );
        assert_eq!(
            r("/registry/apiextensions.k8s.io/customresourcedefinitions/widgets.example.com")
                .2
                .as_deref(),
            Some("widgets.example.com")
        );
    }

    #[test]
    fn legacy_spellings() {
        assert_eq!(
            r("/registry/minions/node-1"),
            ("nodes".into(), None, Some("node-1".into()))
        );
        assert_eq!(
            r("/registry/services/specs/default/kubernetes").0,
            "services"
        );
        assert_eq!(
            r("/registry/services/endpoints/default/kubernetes"),
            (
                "endpoints".into(),
                Some("default".into()),
                Some("kubernetes".into())
            )
        );
    }

    #[test]
    fn non_kubernetes_keys_by_first_segment() {
        assert_eq!(r("compact_rev_key").0, "compact_rev_key");
        assert_eq!(r("/other/app/key").0, "/other");
        assert_eq!(r("").0, "");
        assert_eq!(r("/registry/").0, "");
    }

    #[test]
    fn hints_name_vcluster_settings() {
        assert!(vcluster_sync_hint("example.com/widgets").contains("widgets.example.com"));
        assert!(vcluster_sync_hint("configmaps").contains("configMaps"));
        assert!(vcluster_sync_hint("networking.k8s.io/ingresses").contains("ingresses"));
    }
}
