//! Host names as Istio and a pod's resolver see them.

/// The Kubernetes cluster domain Istio assumes unless the mesh is configured otherwise.
pub(crate) const CLUSTER_DOMAIN: &str = "cluster.local";

/// A host written in an Istio resource, made fully qualified the way Istio does it
/// (`ResolveShortnameToFQDN`): a name without a dot is a service in the resource's own
/// namespace (`reviews` in `bookinfo` → `reviews.bookinfo.svc.cluster.local`); `*` and any
/// name with a dot are taken as written. Lowercased: DNS names are case-insensitive.
pub(crate) fn istio_fqdn(host: &str, namespace: &str) -> String {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    if host == "*" || host.contains('.') || host.contains(':') {
        host
    } else {
        format!("{host}.{namespace}.svc.{CLUSTER_DOMAIN}")
    }
}

/// The names a pod in `namespace` tries for `host`, in order: Kubernetes' resolver search
/// list (`<ns>.svc.cluster.local`, `svc.cluster.local`, `cluster.local`) before the name as
/// written, since pods use `ndots: 5`. A trailing dot means the name is already absolute.
pub(crate) fn dns_candidates(host: &str, namespace: &str) -> Vec<String> {
    let host = host.trim().to_ascii_lowercase();
    if let Some(absolute) = host.strip_suffix('.') {
        return vec![absolute.to_owned()];
    }
    let mut names = Vec::with_capacity(4);
    if host.matches('.').count() < 5 {
        names.push(format!("{host}.{namespace}.svc.{CLUSTER_DOMAIN}"));
        names.push(format!("{host}.svc.{CLUSTER_DOMAIN}"));
        names.push(format!("{host}.{CLUSTER_DOMAIN}"));
    }
    names.push(host);
    names
}

/// Whether an application's host names a Kubernetes service: `name`, `name.namespace`,
/// `name.namespace.svc` or `….svc.cluster.local`. Anything else is taken as external.
pub(crate) fn is_in_cluster(host: &str) -> bool {
    let host = host.trim().trim_end_matches('.').to_ascii_lowercase();
    host.matches('.').count() <= 1
        || host.ends_with(".svc")
        || host.ends_with(&format!(".svc.{CLUSTER_DOMAIN}"))
}

/// How well an Istio host (already through [`istio_fqdn`]) matches a name: `None` for no
/// match, higher for more specific (exact beats the longest wildcard suffix, which beats `*`).
pub(crate) fn match_specificity(pattern: &str, name: &str) -> Option<usize> {
    if pattern == name {
        return Some(usize::MAX);
    }
    if pattern == "*" {
        return Some(0);
    }
    let suffix = pattern.strip_prefix('*')?;
    (suffix.starts_with('.') && name.ends_with(suffix) && name.len() > suffix.len())
        .then_some(suffix.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn istio_expands_only_dotless_names() {
        assert_eq!(
            istio_fqdn("reviews", "bookinfo"),
            "reviews.bookinfo.svc.cluster.local"
        );
        assert_eq!(istio_fqdn("reviews.prod", "bookinfo"), "reviews.prod");
        assert_eq!(
            istio_fqdn("Ratings.Prod.svc.cluster.local.", "x"),
            "ratings.prod.svc.cluster.local"
        );
        assert_eq!(istio_fqdn("*", "x"), "*");
        assert_eq!(istio_fqdn("*.example.com", "x"), "*.example.com");
    }

    #[test]
    fn pods_try_the_search_list_first() {
        assert_eq!(
            dns_candidates("reviews.prod", "bookinfo"),
            [
                "reviews.prod.bookinfo.svc.cluster.local",
                "reviews.prod.svc.cluster.local",
                "reviews.prod.cluster.local",
                "reviews.prod"
            ]
        );
        assert_eq!(dns_candidates("api.example.com.", "x"), ["api.example.com"]);
    }

    #[test]
    fn in_cluster_names() {
        for host in [
            "reviews",
            "reviews.prod",
            "reviews.prod.svc",
            "reviews.prod.svc.cluster.local.",
        ] {
            assert!(is_in_cluster(host), "{host}");
        }
        for host in ["api.example.com", "10.0.0.1"] {
            assert!(!is_in_cluster(host), "{host}");
        }
    }

    #[test]
    fn wildcards_are_less_specific_than_exact_names() {
        assert_eq!(match_specificity("a.b.c", "a.b.c"), Some(usize::MAX));
        assert_eq!(match_specificity("*.b.c", "a.b.c"), Some(4));
        assert_eq!(match_specificity("*.b.c", "b.c"), None);
        assert_eq!(match_specificity("*", "a.b.c"), Some(0));
        assert_eq!(match_specificity("x.b.c", "a.b.c"), None);
    }
}
