//! The five rules. Each one's reasoning and sources are in the [module docs](super#the-rules);
//! the numbers come from [`crate::check::retry`].

use crate::check::retry::{MeshRetries, RetryPolicy, ISTIO_DEFAULT_RETRIES};

use super::duration::Show;
use super::finding::{Finding, Kind, Resource, Rule};
use super::host::{dns_candidates, is_in_cluster, match_specificity};
use super::istio::{DestinationRule, HttpRoute, OutlierDetection, VirtualService};
use super::settings::ClientCall;

/// Envoy's defaults for what Istio leaves unset in `outlierDetection`.
const ENVOY_DEFAULT_CONSECUTIVE_5XX: u32 = 5;
const ENVOY_DEFAULT_CONSECUTIVE_LOCAL_ORIGIN: u32 = 5;
const ISTIO_DEFAULT_BASE_EJECTION_TIME: &str = "30s";

/// Retry conditions a non-idempotent route can use without repeating work.
const SAFE_RETRY_ON: &str = "connect-failure,refused-stream,reset-before-request";

pub(crate) struct Input<'a> {
    pub(crate) virtual_services: &'a [VirtualService],
    pub(crate) destination_rules: &'a [DestinationRule],
    pub(crate) calls: &'a [ClientCall],
}

pub(crate) fn run(input: &Input<'_>) -> Vec<Finding> {
    let mut findings = Vec::new();
    for vs in input.virtual_services {
        for route in vs.http.iter().filter(|r| !r.destinations.is_empty()) {
            per_try_overrun(vs, route, &mut findings);
            non_idempotent_route(vs, route, &mut findings);
        }
    }
    for dr in input.destination_rules {
        for od in &dr.outlier_detections {
            outlier_ejects_all(dr, od, input.virtual_services, &mut findings);
        }
    }
    for call in input.calls {
        match virtual_service_for(call, input.virtual_services) {
            Some(vs) => {
                for route in routes_for(vs, call) {
                    call_on_route(call, vs, route, &mut findings);
                }
            }
            // Whether the sidecar retries calls to an external host depends on a
            // ServiceEntry and the protocol, which the inputs do not show.
            None if is_in_cluster(&call.host) => call_without_virtual_service(call, &mut findings),
            None => {}
        }
    }
    findings
}

fn latency(d: Option<std::time::Duration>) -> String {
    d.map_or_else(|| "unbounded".to_owned(), |d| Show(d).to_string())
}

/// "1 + retries.attempts 3", or where Istio's default 2 retries come from.
fn tries_source(route: &HttpRoute, mesh: &MeshRetries) -> String {
    match &route.retries {
        None => format!("1 + Istio's default {ISTIO_DEFAULT_RETRIES} retries, as retries is unset"),
        Some(_) => format!("1 + retries.attempts {}", mesh.retries()),
    }
}

/// Where `retryOn` is (or would be), and how its value came about.
fn retry_on_field(route: &HttpRoute, mesh: &MeshRetries) -> (String, usize, String) {
    let path = route.path();
    match &route.retries {
        None => (
            format!("{path}.retries"),
            route.line,
            format!("retries is unset, so Istio's default applies: {ISTIO_DEFAULT_RETRIES} retries on {}", mesh.retry_on()),
        ),
        Some(r) => match &r.retry_on {
            Some(on) => (format!("{path}.retries.retryOn"), on.line, format!("retryOn is {}", mesh.retry_on())),
            None => (
                format!("{path}.retries.retryOn"),
                r.line,
                format!("retryOn is unset, so Istio's default applies: {}", mesh.retry_on()),
            ),
        },
    }
}

fn per_try_overrun(vs: &VirtualService, route: &HttpRoute, out: &mut Vec<Finding>) {
    let mesh = route.mesh_retries();
    let Some(o) = mesh.per_try_overrun() else {
        return;
    };
    let Some(per_try) = route
        .retries
        .as_ref()
        .and_then(|r| r.per_try_timeout.as_ref())
    else {
        return;
    };
    let path = route.path();
    let consequence = if o.tries_that_can_start < o.tries {
        let never = o.tries - o.tries_that_can_start;
        format!(
            "when the upstream is slow only {} of the {} tries start before the route timeout ends the request; {} can never run",
            o.tries_that_can_start,
            o.tries,
            if never == 1 { "the last one".to_owned() } else { format!("the last {never}") }
        )
    } else {
        format!(
            "when the upstream is slow the last try gets only {} of its {}",
            Show(o.last_try_gets),
            Show(o.per_try)
        )
    };
    out.push(Finding {
        rule: Rule::PerTryTimeoutOverrun,
        resource: vs.meta.resource.clone(),
        field: format!("{path}.retries.perTryTimeout"),
        location: vs.meta.at(per_try.line),
        message: format!(
            "{} tries ({}) × perTryTimeout {} = {} exceeds the route timeout {} ({path}.timeout): {consequence}",
            o.tries,
            tries_source(route, &mesh),
            Show(o.per_try),
            Show(o.total),
            Show(o.route_timeout),
        ),
        client: None,
    });
}

/// The `match[].method` conditions of `route` that can select POST or PATCH.
fn non_idempotent_matches(route: &HttpRoute) -> Vec<String> {
    route
        .matches
        .iter()
        .enumerate()
        .filter_map(|(i, m)| {
            let method = m.method.as_ref()?;
            ["POST", "PATCH"]
                .iter()
                .any(|verb| method.may_select_method(verb))
                .then(|| format!("{}.match[{i}].method {method}", route.path()))
        })
        .collect()
}

fn non_idempotent_route(vs: &VirtualService, route: &HttpRoute, out: &mut Vec<Finding>) {
    let methods = non_idempotent_matches(route);
    if methods.is_empty() {
        return;
    }
    let mesh = route.mesh_retries();
    let risky = mesh.retry_on().unsafe_for_non_idempotent();
    if mesh.retries() == 0 || risky.is_empty() {
        return;
    }
    let (field, line, how) = retry_on_field(route, &mesh);
    out.push(Finding {
        rule: Rule::RetryNonIdempotent,
        resource: vs.meta.resource.clone(),
        field,
        location: vs.meta.at(line),
        message: format!(
            "the route takes non-idempotent requests ({}) and {how}; {} can fire after the upstream acted on the request, which a retry then repeats: retry only on {SAFE_RETRY_ON}, or set attempts: 0",
            methods.join(", "),
            risky.join(", "),
        ),
        client: None,
    });
}

fn outlier_ejects_all(
    dr: &DestinationRule,
    od: &OutlierDetection,
    vss: &[VirtualService],
    out: &mut Vec<Finding>,
) {
    let Some(max) = od.max_ejection_percent.as_ref().filter(|m| m.value >= 100) else {
        return;
    };
    if od.min_health_percent.as_ref().is_some_and(|m| m.value > 0) {
        return;
    }
    let mut triggers = Vec::new();
    match od.consecutive_5xx.as_ref().map(|f| f.value) {
        None => triggers.push(format!(
            "{ENVOY_DEFAULT_CONSECUTIVE_5XX} consecutive 5xx (the default)"
        )),
        Some(0) => {}
        Some(n) => triggers.push(format!("{n} consecutive 5xx")),
    }
    if let Some(n) = od
        .consecutive_gateway
        .as_ref()
        .map(|f| f.value)
        .filter(|n| *n > 0)
    {
        triggers.push(format!("{n} consecutive gateway errors"));
    }
    if od.split_external_local_origin_errors {
        match od.consecutive_local_origin.as_ref().map(|f| f.value) {
            None | Some(0) => triggers.push(format!(
                "{ENVOY_DEFAULT_CONSECUTIVE_LOCAL_ORIGIN} consecutive local-origin failures (the default)"
            )),
            Some(n) => triggers.push(format!("{n} consecutive local-origin failures")),
        }
    }
    if triggers.is_empty() {
        return;
    }
    let ejection_time = od.base_ejection_time.map_or_else(
        || format!("{ISTIO_DEFAULT_BASE_EJECTION_TIME} (the default)"),
        |d| Show(d).to_string(),
    );
    let min_health = match &od.min_health_percent {
        Some(m) => format!("minHealthPercent is {}", m.value),
        None => "minHealthPercent is unset (0)".to_owned(),
    };
    let routes: Vec<String> = vss
        .iter()
        .flat_map(|vs| {
            vs.http
                .iter()
                .filter(|r| r.destinations.iter().any(|d| d == &dr.host))
                .map(move |r| format!("{} {}", vs.meta.resource, r.path()))
        })
        .collect();
    let routed = if routes.is_empty() {
        String::new()
    } else {
        format!(" (routed to from {})", routes.join(", "))
    };
    out.push(Finding {
        rule: Rule::OutlierEjectsAllHosts,
        resource: dr.meta.resource.clone(),
        field: format!("{}.maxEjectionPercent", od.path),
        location: dr.meta.at(max.line),
        message: format!(
            "maxEjectionPercent {} lets outlier detection eject every host of {}{routed}, each after {}; {min_health}, so Envoy does not fall back to the ejected hosts and callers get 503 no healthy upstream for {ejection_time} and longer on each repeat: keep maxEjectionPercent below 100 or set minHealthPercent",
            max.value,
            dr.host,
            triggers.join(" or "),
        ),
        client: None,
    });
}

/// The `VirtualService` a call goes through: the first name in the pod's search list that
/// some sidecar-facing `VirtualService` host matches, then the most specific host (exact
/// before wildcard), then the first in input order.
fn virtual_service_for<'a>(
    call: &ClientCall,
    vss: &'a [VirtualService],
) -> Option<&'a VirtualService> {
    for name in dns_candidates(&call.host, &call.namespace) {
        let best = vss
            .iter()
            .filter(|vs| vs.for_sidecars)
            .filter_map(|vs| {
                let specificity = vs
                    .hosts
                    .iter()
                    .filter_map(|h| match_specificity(h, &name))
                    .max()?;
                Some((specificity, vs))
            })
            .fold(
                None,
                |best: Option<(usize, &VirtualService)>, (s, vs)| match best {
                    Some((b, _)) if b >= s => best,
                    _ => Some((s, vs)),
                },
            );
        if let Some((_, vs)) = best {
            return Some(vs);
        }
    }
    None
}

/// The routes a call can take, in order, up to the first that surely matches it. A condition
/// the call's settings do not describe (a header, a regex) may or may not hold, so the
/// route is kept and the search goes on.
fn routes_for<'a>(vs: &'a VirtualService, call: &ClientCall) -> Vec<&'a HttpRoute> {
    let mut routes = Vec::new();
    for route in &vs.http {
        let (possible, sure) = route_matches(route, call);
        if possible && !route.destinations.is_empty() {
            routes.push(route);
        }
        if sure {
            break;
        }
    }
    routes
}

fn route_matches(route: &HttpRoute, call: &ClientCall) -> (bool, bool) {
    if route.matches.is_empty() {
        return (true, true);
    }
    let (mut possible, mut sure) = (false, false);
    for m in &route.matches {
        let method = m.method.as_ref().map(|sm| {
            call.method
                .as_ref()
                .and_then(|(method, _)| sm.test(method, false))
        });
        let uri = m.uri.as_ref().map(|sm| {
            call.path
                .as_ref()
                .and_then(|p| sm.test(p, m.ignore_uri_case))
        });
        let conditions = [method, uri].into_iter().flatten();
        let known: Vec<Option<bool>> = conditions.collect();
        if known.contains(&Some(false)) {
            continue;
        }
        possible = true;
        if !m.other_conditions && known.iter().all(|c| *c == Some(true)) {
            sure = true;
        }
    }
    (possible, sure)
}

fn call_on_route(
    call: &ClientCall,
    vs: &VirtualService,
    route: &HttpRoute,
    out: &mut Vec<Finding>,
) {
    let mesh = route.mesh_retries();
    let code = &call.policy;
    let path = route.path();
    if let Some(a) = code.amplification(&mesh) {
        let line = route
            .retries
            .as_ref()
            .and_then(|r| r.attempts.as_ref())
            .map_or(route.retries_line(), |f| f.line);
        out.push(Finding {
            rule: Rule::StackedRetries,
            resource: vs.meta.resource.clone(),
            field: format!("{path}.retries.attempts"),
            location: vs.meta.at(line),
            message: stacked_message(
                call,
                a.code_attempts,
                a.mesh_tries,
                &tries_source(route, &mesh),
                a.requests,
                code,
                &mesh,
            ),
            client: Some(call.reference("retries", call.retries_line)),
        });
    }
    if let Some(conflict) = code.timeout_conflict(&mesh) {
        // The budget is the route timeout, or the tries' per-try timeouts when shorter.
        let (field, line, what) = if mesh.route_timeout() == Some(conflict.mesh_budget) {
            let line = route.timeout.as_ref().map_or(route.line, |t| t.line);
            (
                format!("{path}.timeout"),
                line,
                "the route timeout".to_owned(),
            )
        } else {
            let line = route
                .retries
                .as_ref()
                .and_then(|r| r.per_try_timeout.as_ref())
                .map_or(route.retries_line(), |p| p.line);
            let per_try = mesh
                .per_try_timeout()
                .map(Show)
                .map(|s| s.to_string())
                .unwrap_or_default();
            (
                format!("{path}.retries.perTryTimeout"),
                line,
                format!(
                    "{} tries × perTryTimeout {per_try} plus back-off",
                    mesh.tries()
                ),
            )
        };
        let client = call.timeout_reference();
        out.push(Finding {
            rule: Rule::CodeTimeoutNotAboveMesh,
            resource: vs.meta.resource.clone(),
            field,
            location: vs.meta.at(line),
            message: format!(
                "app call `{}` gives up after {} ({}), not above the {} the sidecar may take for it ({what}): the code cancels first, so the sidecar's retries and its own 504 never reach it; keep the code's timeout a little above {}",
                call.name,
                Show(conflict.code),
                client.field,
                Show(conflict.mesh_budget),
                Show(conflict.mesh_budget),
            ),
            client: Some(client),
        });
    }
    if let Some(marked) = call.non_idempotent() {
        let risky = mesh.retry_on().unsafe_for_non_idempotent();
        // A route that itself matches POST/PATCH is reported once, by the route rule.
        if mesh.retries() > 0 && !risky.is_empty() && non_idempotent_matches(route).is_empty() {
            let (field, line, how) = retry_on_field(route, &mesh);
            out.push(Finding {
                rule: Rule::RetryNonIdempotent,
                resource: vs.meta.resource.clone(),
                field,
                location: vs.meta.at(line),
                message: format!(
                    "app call `{}` is not idempotent ({}) and {how}; {} can fire after the upstream acted on the request, which a retry then repeats: retry only on {SAFE_RETRY_ON} for it, or set attempts: 0",
                    call.name,
                    marked.field,
                    risky.join(", "),
                ),
                client: Some(marked),
            });
        }
    }
}

fn stacked_message(
    call: &ClientCall,
    code_attempts: u32,
    mesh_tries: u32,
    source: &str,
    requests: u64,
    code: &RetryPolicy,
    mesh: &MeshRetries,
) -> String {
    format!(
        "app call `{}` makes {code_attempts} attempts and the sidecar tries each up to {mesh_tries} times ({source}): up to {requests} requests to {} per call, worst case {} (the mesh alone: {}); retry in one place",
        call.name,
        call.host,
        latency(code.worst_case_latency(mesh)),
        latency(mesh.worst_case_latency()),
    )
}

/// A call whose host no `VirtualService` among the inputs routes: Istio's default retry
/// policy applies to it.
fn call_without_virtual_service(call: &ClientCall, out: &mut Vec<Finding>) {
    let mesh = MeshRetries::istio_default();
    let code = &call.policy;
    let resource = Resource::new(Kind::ClientCall, &call.namespace, &call.name);
    let default = format!(
        "no VirtualService among the inputs routes {}, so Istio's default retry policy applies",
        call.host
    );
    if let Some(a) = code.amplification(&mesh) {
        let r = call.reference("retries", call.retries_line);
        out.push(Finding {
            rule: Rule::StackedRetries,
            resource: resource.clone(),
            field: r.field,
            location: r.location,
            message: format!(
                "{default}; {}",
                stacked_message(
                    call,
                    a.code_attempts,
                    a.mesh_tries,
                    &format!("1 + Istio's default {ISTIO_DEFAULT_RETRIES} retries"),
                    a.requests,
                    code,
                    &mesh
                )
            ),
            client: None,
        });
    }
    if let Some(marked) = call.non_idempotent() {
        out.push(Finding {
            rule: Rule::RetryNonIdempotent,
            resource,
            field: marked.field.clone(),
            location: marked.location.clone(),
            message: format!(
                "app call `{}` is not idempotent and {default}: {ISTIO_DEFAULT_RETRIES} retries on {}; {} can fire after the upstream acted on the request: add a VirtualService for {} that retries only on {SAFE_RETRY_ON}, or sets attempts: 0",
                call.name,
                mesh.retry_on(),
                mesh.retry_on().unsafe_for_non_idempotent().join(", "),
                call.host,
            ),
            client: None,
        });
    }
}
