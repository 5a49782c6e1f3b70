//! `VirtualService` and `DestinationRule`: the fields the rules read, each with its line.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::check::retry::{MeshRetries, RetryOn};

use super::finding::{Kind, Location, Resource};
use super::host::istio_fqdn;
use super::yaml::{self, Node, Reader};
use super::CheckError;

/// A value and the line it is on.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Field<T> {
    pub(crate) value: T,
    pub(crate) line: usize,
}

/// What a resource has in common: who it is and which file it is in.
#[derive(Debug, Clone)]
pub(crate) struct Meta {
    pub(crate) resource: Resource,
    pub(crate) file: PathBuf,
}

impl Meta {
    pub(crate) fn at(&self, line: usize) -> Location {
        Location::new(&self.file, line)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct VirtualService {
    pub(crate) meta: Meta,
    /// `spec.hosts`, fully qualified.
    pub(crate) hosts: Vec<String>,
    /// Whether sidecars use it: `spec.gateways` unset or naming `mesh`.
    pub(crate) for_sidecars: bool,
    pub(crate) http: Vec<HttpRoute>,
}

#[derive(Debug, Clone)]
pub(crate) struct HttpRoute {
    pub(crate) index: usize,
    pub(crate) line: usize,
    pub(crate) matches: Vec<MatchRequest>,
    /// `route[].destination.host`, fully qualified; empty for redirects, direct responses
    /// and delegation, which send nothing upstream from this route.
    pub(crate) destinations: Vec<String>,
    pub(crate) timeout: Option<Field<Duration>>,
    pub(crate) retries: Option<Retries>,
}

/// `retries`, as written.
#[derive(Debug, Clone)]
pub(crate) struct Retries {
    pub(crate) line: usize,
    pub(crate) attempts: Option<Field<u32>>,
    pub(crate) per_try_timeout: Option<Field<Duration>>,
    pub(crate) retry_on: Option<Field<RetryOn>>,
    pub(crate) backoff: Option<Field<Duration>>,
}

impl HttpRoute {
    pub(crate) fn path(&self) -> String {
        format!("spec.http[{}]", self.index)
    }

    /// What the sidecar does for this route, Istio's defaults filled in.
    pub(crate) fn mesh_retries(&self) -> MeshRetries {
        let mut mesh = match &self.retries {
            None => MeshRetries::istio_default(),
            Some(r) => {
                let attempts = r.attempts.as_ref().map_or(0, |a| a.value);
                let mut mesh = MeshRetries::new(attempts);
                if let Some(p) = r.per_try_timeout.as_ref().filter(|p| !p.value.is_zero()) {
                    mesh = mesh.with_per_try_timeout(p.value);
                }
                if let Some(on) = &r.retry_on {
                    mesh = mesh.with_retry_on(on.value.clone());
                }
                if let Some(b) = &r.backoff {
                    mesh = mesh.with_backoff_base(b.value);
                }
                mesh
            }
        };
        // `timeout: 0s` turns the route timeout off, like leaving it unset.
        if let Some(t) = self.timeout.as_ref().filter(|t| !t.value.is_zero()) {
            mesh = mesh.with_route_timeout(t.value);
        }
        mesh
    }

    /// The line of the retries block, or of the route when there is none.
    pub(crate) fn retries_line(&self) -> usize {
        self.retries.as_ref().map_or(self.line, |r| r.line)
    }
}

#[derive(Debug, Clone)]
pub(crate) struct MatchRequest {
    pub(crate) method: Option<StringMatch>,
    pub(crate) uri: Option<StringMatch>,
    pub(crate) ignore_uri_case: bool,
    /// Conditions on something a client-settings call does not describe (headers, port,
    /// source labels, …): the checker cannot tell whether they hold.
    pub(crate) other_conditions: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
}

impl StringMatch {
    /// `Some(true)`/`Some(false)` when the match can be decided for `value`; `None` for a
    /// regex, which the checker does not evaluate.
    pub(crate) fn test(&self, value: &str, ignore_case: bool) -> Option<bool> {
        let fold = |s: &str| {
            if ignore_case {
                s.to_ascii_lowercase()
            } else {
                s.to_owned()
            }
        };
        match self {
            StringMatch::Exact(e) => Some(fold(value) == fold(e)),
            StringMatch::Prefix(p) => Some(fold(value).starts_with(&fold(p))),
            StringMatch::Regex(_) => None,
        }
    }

    /// Whether this method match can select `method`. A regex is taken to select the
    /// methods it names literally (`POST|PUT` selects POST).
    pub(crate) fn may_select_method(&self, method: &str) -> bool {
        match self {
            StringMatch::Regex(r) => r.contains(method),
            m => m.test(method, false) == Some(true),
        }
    }
}

impl std::fmt::Display for StringMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StringMatch::Exact(v) => write!(f, "exact: {v}"),
            StringMatch::Prefix(v) => write!(f, "prefix: {v}"),
            StringMatch::Regex(v) => write!(f, "regex: {v}"),
        }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct DestinationRule {
    pub(crate) meta: Meta,
    /// `spec.host`, fully qualified.
    pub(crate) host: String,
    pub(crate) outlier_detections: Vec<OutlierDetection>,
}

/// One `outlierDetection` block, wherever it sits in the rule.
#[derive(Debug, Clone)]
pub(crate) struct OutlierDetection {
    /// `spec.trafficPolicy.outlierDetection`, `spec.subsets[1].trafficPolicy.outlierDetection`, …
    pub(crate) path: String,
    pub(crate) consecutive_5xx: Option<Field<u32>>,
    pub(crate) consecutive_gateway: Option<Field<u32>>,
    pub(crate) split_external_local_origin_errors: bool,
    pub(crate) consecutive_local_origin: Option<Field<u32>>,
    pub(crate) max_ejection_percent: Option<Field<i64>>,
    pub(crate) min_health_percent: Option<Field<i64>>,
    pub(crate) base_ejection_time: Option<Duration>,
}

/// The Istio resources of one YAML file.
#[derive(Debug, Default)]
pub(crate) struct Resources {
    pub(crate) virtual_services: Vec<VirtualService>,
    pub(crate) destination_rules: Vec<DestinationRule>,
}

/// Reads every `VirtualService` and `DestinationRule` (apiVersion `networking.istio.io/*`)
/// in the documents of `text`, including the items of a `kind: List` (what
/// `kubectl get … -o yaml` prints); other kinds are skipped.
pub(crate) fn parse(file: &Path, text: &str) -> Result<Resources, CheckError> {
    let mut out = Resources::default();
    for doc in yaml::load(file, text)? {
        read_document(file, &doc, &mut out)?;
    }
    Ok(out)
}

fn read_document(file: &Path, doc: &Node<'_>, out: &mut Resources) -> Result<(), CheckError> {
    // Empty documents, and anything that is not a mapping, are no Istio resource.
    if !yaml::is_map(doc) {
        return Ok(());
    }
    let reader = Reader {
        file,
        resource: format!("document at line {}", yaml::line(doc)),
    };
    let (Some(kind), Some(api)) = (
        reader.get(doc, "", "kind")?,
        reader.get(doc, "", "apiVersion")?,
    ) else {
        return Ok(());
    };
    let (kind, api) = (reader.str(kind, "kind")?, reader.str(api, "apiVersion")?);
    if kind == "List" && api == "v1" {
        if let Some(items) = reader.get(doc, "", "items")? {
            for item in reader.seq(items, "items")? {
                read_document(file, item, out)?;
            }
        }
        return Ok(());
    }
    if !api.starts_with("networking.istio.io/") {
        return Ok(());
    }
    let kind = match kind {
        "VirtualService" => Kind::VirtualService,
        "DestinationRule" => Kind::DestinationRule,
        _ => return Ok(()),
    };
    let meta = read_meta(&reader, doc, kind, file)?;
    let reader = Reader {
        file,
        resource: meta.resource.to_string(),
    };
    let Some(spec) = reader.get(doc, "", "spec")? else {
        return Err(reader.error(doc, "spec", "missing"));
    };
    match kind {
        Kind::VirtualService => out
            .virtual_services
            .push(read_virtual_service(&reader, meta, spec)?),
        _ => out
            .destination_rules
            .push(read_destination_rule(&reader, meta, spec)?),
    }
    Ok(())
}

fn read_meta(
    reader: &Reader<'_>,
    doc: &Node<'_>,
    kind: Kind,
    file: &Path,
) -> Result<Meta, CheckError> {
    let Some(metadata) = reader.get(doc, "", "metadata")? else {
        return Err(reader.error(doc, "metadata.name", format!("a {kind} needs a name")));
    };
    let Some(name) = reader.get(metadata, "metadata", "name")? else {
        return Err(reader.error(metadata, "metadata.name", format!("a {kind} needs a name")));
    };
    let name = reader.str(name, "metadata.name")?;
    let namespace = match reader.get(metadata, "metadata", "namespace")? {
        Some(ns) => reader.str(ns, "metadata.namespace")?,
        None => "default",
    };
    Ok(Meta {
        resource: Resource::new(kind, namespace, name),
        file: file.to_path_buf(),
    })
}

fn strings<'a>(
    reader: &Reader<'_>,
    node: Option<&'a Node<'_>>,
    field: &str,
) -> Result<Vec<&'a str>, CheckError> {
    let Some(node) = node else {
        return Ok(Vec::new());
    };
    reader
        .seq(node, field)?
        .iter()
        .enumerate()
        .map(|(i, n)| reader.str(n, &format!("{field}[{i}]")))
        .collect()
}

fn field<T>(
    reader: &Reader<'_>,
    node: &Node<'_>,
    path: &str,
    key: &str,
    read: impl FnOnce(&Node<'_>, &str) -> Result<T, CheckError>,
) -> Result<Option<Field<T>>, CheckError> {
    let path = format!("{path}.{key}");
    match reader.get(node, &path, key)? {
        Some(n) => Ok(Some(Field {
            value: read(n, &path)?,
            line: yaml::line(n),
        })),
        None => Ok(None),
    }
}

fn read_virtual_service(
    reader: &Reader<'_>,
    meta: Meta,
    spec: &Node<'_>,
) -> Result<VirtualService, CheckError> {
    let ns = meta.resource.namespace.clone();
    let hosts = strings(reader, reader.get(spec, "spec", "hosts")?, "spec.hosts")?
        .into_iter()
        .map(|h| istio_fqdn(h, &ns))
        .collect();
    let gateways = strings(
        reader,
        reader.get(spec, "spec", "gateways")?,
        "spec.gateways",
    )?;
    let for_sidecars = gateways.is_empty() || gateways.contains(&"mesh");
    let mut http = Vec::new();
    if let Some(routes) = reader.get(spec, "spec", "http")? {
        for (index, route) in reader.seq(routes, "spec.http")?.iter().enumerate() {
            http.push(read_http_route(reader, &ns, index, route)?);
        }
    }
    Ok(VirtualService {
        meta,
        hosts,
        for_sidecars,
        http,
    })
}

fn read_http_route(
    reader: &Reader<'_>,
    ns: &str,
    index: usize,
    route: &Node<'_>,
) -> Result<HttpRoute, CheckError> {
    let path = format!("spec.http[{index}]");
    let mut matches = Vec::new();
    if let Some(list) = reader.get(route, &path, "match")? {
        for (i, m) in reader
            .seq(list, &format!("{path}.match"))?
            .iter()
            .enumerate()
        {
            matches.push(read_match(reader, &format!("{path}.match[{i}]"), m)?);
        }
    }
    let mut destinations = Vec::new();
    if let Some(list) = reader.get(route, &path, "route")? {
        for (i, r) in reader
            .seq(list, &format!("{path}.route"))?
            .iter()
            .enumerate()
        {
            let at = format!("{path}.route[{i}]");
            let Some(dest) = reader.get(r, &at, "destination")? else {
                return Err(reader.error(r, &format!("{at}.destination"), "missing"));
            };
            let Some(host) = reader.get(dest, &format!("{at}.destination"), "host")? else {
                return Err(reader.error(dest, &format!("{at}.destination.host"), "missing"));
            };
            let host = reader.str(host, &format!("{at}.destination.host"))?;
            destinations.push(istio_fqdn(host, ns));
        }
    }
    let timeout = field(reader, route, &path, "timeout", |n, p| {
        reader.duration(n, p)
    })?;
    let retries = match reader.get(route, &path, "retries")? {
        None => None,
        Some(r) => {
            let at = format!("{path}.retries");
            reader.map(r, &at)?;
            Some(Retries {
                line: yaml::line(r),
                attempts: field(reader, r, &at, "attempts", |n, p| reader.uint(n, p))?,
                per_try_timeout: field(reader, r, &at, "perTryTimeout", |n, p| {
                    reader.duration(n, p)
                })?,
                retry_on: field(reader, r, &at, "retryOn", |n, p| {
                    reader
                        .str(n, p)?
                        .parse::<RetryOn>()
                        .map_err(|e| reader.error(n, p, e.to_string()))
                })?,
                backoff: field(reader, r, &at, "backoff", |n, p| reader.duration(n, p))?,
            })
        }
    };
    Ok(HttpRoute {
        index,
        line: yaml::line(route),
        matches,
        destinations,
        timeout,
        retries,
    })
}

fn read_string_match(
    reader: &Reader<'_>,
    node: &Node<'_>,
    path: &str,
) -> Result<Option<StringMatch>, CheckError> {
    for (key, make) in [
        ("exact", StringMatch::Exact as fn(String) -> StringMatch),
        ("prefix", StringMatch::Prefix),
        ("regex", StringMatch::Regex),
    ] {
        if let Some(v) = reader.get(node, path, key)? {
            return Ok(Some(make(
                reader.str(v, &format!("{path}.{key}"))?.to_owned(),
            )));
        }
    }
    Ok(None)
}

fn read_match(
    reader: &Reader<'_>,
    path: &str,
    node: &Node<'_>,
) -> Result<MatchRequest, CheckError> {
    let mut m = MatchRequest {
        method: None,
        uri: None,
        ignore_uri_case: false,
        other_conditions: false,
    };
    for key in reader.keys(node, path)? {
        let Some(value) = reader.get(node, path, key)? else {
            continue;
        };
        let at = format!("{path}.{key}");
        match key {
            "name" => {}
            "method" => m.method = read_string_match(reader, value, &at)?,
            "uri" => m.uri = read_string_match(reader, value, &at)?,
            "ignoreUriCase" => m.ignore_uri_case = reader.bool(value, &at)?,
            _ => m.other_conditions = true,
        }
    }
    Ok(m)
}

fn read_destination_rule(
    reader: &Reader<'_>,
    meta: Meta,
    spec: &Node<'_>,
) -> Result<DestinationRule, CheckError> {
    let Some(host) = reader.get(spec, "spec", "host")? else {
        return Err(reader.error(spec, "spec.host", "missing"));
    };
    let host = istio_fqdn(reader.str(host, "spec.host")?, &meta.resource.namespace);
    let mut outlier_detections = Vec::new();
    let mut policies = vec![(
        "spec.trafficPolicy".to_owned(),
        reader.get(spec, "spec", "trafficPolicy")?,
    )];
    if let Some(subsets) = reader.get(spec, "spec", "subsets")? {
        for (i, subset) in reader.seq(subsets, "spec.subsets")?.iter().enumerate() {
            let at = format!("spec.subsets[{i}]");
            policies.push((
                format!("{at}.trafficPolicy"),
                reader.get(subset, &at, "trafficPolicy")?,
            ));
        }
    }
    for (path, policy) in policies {
        let Some(policy) = policy else { continue };
        if let Some(od) = reader.get(policy, &path, "outlierDetection")? {
            outlier_detections.push(read_outlier(
                reader,
                format!("{path}.outlierDetection"),
                od,
            )?);
        }
        if let Some(ports) = reader.get(policy, &path, "portLevelSettings")? {
            let list_path = format!("{path}.portLevelSettings");
            for (i, port) in reader.seq(ports, &list_path)?.iter().enumerate() {
                let at = format!("{list_path}[{i}]");
                if let Some(od) = reader.get(port, &at, "outlierDetection")? {
                    outlier_detections.push(read_outlier(
                        reader,
                        format!("{at}.outlierDetection"),
                        od,
                    )?);
                }
            }
        }
    }
    Ok(DestinationRule {
        meta,
        host,
        outlier_detections,
    })
}

fn read_outlier(
    reader: &Reader<'_>,
    path: String,
    node: &Node<'_>,
) -> Result<OutlierDetection, CheckError> {
    let uint = |n: &Node<'_>, p: &str| reader.uint(n, p);
    let int = |n: &Node<'_>, p: &str| reader.int(n, p);
    Ok(OutlierDetection {
        consecutive_5xx: field(reader, node, &path, "consecutive5xxErrors", uint)?,
        consecutive_gateway: field(reader, node, &path, "consecutiveGatewayErrors", uint)?,
        split_external_local_origin_errors: field(
            reader,
            node,
            &path,
            "splitExternalLocalOriginErrors",
            |n, p| reader.bool(n, p),
        )?
        .is_some_and(|f| f.value),
        consecutive_local_origin: field(
            reader,
            node,
            &path,
            "consecutiveLocalOriginFailures",
            uint,
        )?,
        max_ejection_percent: field(reader, node, &path, "maxEjectionPercent", int)?,
        min_health_percent: field(reader, node, &path, "minHealthPercent", int)?,
        base_ejection_time: field(reader, node, &path, "baseEjectionTime", |n, p| {
            reader.duration(n, p)
        })?
        .map(|f| f.value),
        path,
    })
}
