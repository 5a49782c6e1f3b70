//! [`OutboundScope`]: where a client may send the request's internal data.

use std::fmt;
use std::sync::Arc;

/// Where a client layer may send the baggage and pass-through headers (`x-request-id`,
/// `x-ot-span-context`, …) of the request being handled, and what calls to other hosts get
/// (SPECS §9). Baggage is internal data: a user id put there for the mesh's services should
/// not reach a payment provider's API.
///
/// The default is [`OutboundScope::everywhere`]: everything to every host, as before. For a
/// service that calls outside the mesh, [`OutboundScope::mesh`] is the recommended setting:
/// in-cluster names get everything, other hosts the trace context only.
///
/// ```
/// use meshtrace::client::reqwest::MeshClientMiddleware;
/// use meshtrace::client::{Elsewhere, OutboundScope};
///
/// // In-cluster names get everything, other hosts only traceparent/B3.
/// let middleware = MeshClientMiddleware::new().outbound_scope(OutboundScope::mesh());
///
/// // Only these hosts get baggage and pass-through headers; the others get nothing at all.
/// let strict = MeshClientMiddleware::new().outbound_scope(
///     OutboundScope::hosts(["ratings", ".svc.cluster.local", "partner.example.com"])
///         .elsewhere(Elsewhere::Nothing),
/// );
/// ```
#[derive(Clone)]
pub struct OutboundScope {
    inside: Inside,
    elsewhere: Elsewhere,
}

#[derive(Clone)]
enum Inside {
    Everywhere,
    /// Hosts equal to one of `exact`, or ending with one of `suffixes` (each starting with
    /// a dot), or, if `single_label`, with no dot at all.
    Hosts {
        exact: Vec<String>,
        suffixes: Vec<String>,
        single_label: bool,
    },
    Predicate(Arc<dyn Fn(&str) -> bool + Send + Sync>),
}

/// What a call to a host outside the [`OutboundScope`] gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Elsewhere {
    /// The trace context only (`traceparent`, `tracestate`, B3, and the other trace formats
    /// configured): no baggage, no pass-through header. The default.
    #[default]
    TraceContext,
    /// No header of meshtrace's at all.
    Nothing,
}

/// What one call gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reach {
    Everything,
    TraceContext,
    Nothing,
}

impl OutboundScope {
    /// Every host gets everything (the default).
    pub fn everywhere() -> Self {
        OutboundScope {
            inside: Inside::Everywhere,
            elsewhere: Elsewhere::default(),
        }
    }

    /// Kubernetes' in-cluster names: single-label service names (`ratings`), and names
    /// under `.svc` or `.svc.cluster.local` (`ratings.bookinfo`, with its namespace, has a
    /// dot but no `.svc`: list such names with [`hosts`](Self::hosts)). IP addresses are
    /// not in it. Other hosts get the trace context only, unless [`elsewhere`](Self::elsewhere)
    /// says otherwise.
    pub fn mesh() -> Self {
        OutboundScope {
            inside: Inside::Hosts {
                exact: Vec::new(),
                suffixes: vec![".svc".into(), ".svc.cluster.local".into()],
                single_label: true,
            },
            elsewhere: Elsewhere::default(),
        }
    }

    /// These hosts: an entry starting with `.` is a suffix (`.svc.cluster.local`), any
    /// other an exact host name. Names are compared without regard to ASCII case.
    pub fn hosts<I, S>(hosts: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let (mut exact, mut suffixes) = (Vec::new(), Vec::new());
        for host in hosts {
            let host = host.as_ref().trim().to_ascii_lowercase();
            if host.starts_with('.') {
                suffixes.push(host);
            } else if !host.is_empty() {
                exact.push(host);
            }
        }
        OutboundScope {
            inside: Inside::Hosts {
                exact,
                suffixes,
                single_label: false,
            },
            elsewhere: Elsewhere::default(),
        }
    }

    /// The hosts for which `inside` returns true (it is given the host name, lowercase as
    /// URLs have it).
    pub fn predicate(inside: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        OutboundScope {
            inside: Inside::Predicate(Arc::new(inside)),
            elsewhere: Elsewhere::default(),
        }
    }

    /// What calls to hosts outside the scope get ([`Elsewhere::TraceContext`] by default).
    pub fn elsewhere(mut self, elsewhere: Elsewhere) -> Self {
        self.elsewhere = elsewhere;
        self
    }

    /// Whether `host` is inside the scope. A call whose host is unknown (an interceptor
    /// sees none) is inside only when the scope is [`everywhere`](Self::everywhere).
    pub fn contains(&self, host: Option<&str>) -> bool {
        match (&self.inside, host) {
            (Inside::Everywhere, _) => true,
            (_, None) => false,
            (
                Inside::Hosts {
                    exact,
                    suffixes,
                    single_label,
                },
                Some(host),
            ) => {
                let host = host.trim_end_matches('.');
                let lower;
                let host = if host.bytes().any(|b| b.is_ascii_uppercase()) {
                    lower = host.to_ascii_lowercase();
                    lower.as_str()
                } else {
                    host
                };
                (*single_label && !host.is_empty() && !host.contains(['.', ':', '[']))
                    || exact.iter().any(|e| e == host)
                    || suffixes.iter().any(|s| host.ends_with(s.as_str()))
            }
            (Inside::Predicate(inside), Some(host)) => inside(host),
        }
    }

    /// What a call to `host` gets.
    pub(crate) fn reach(&self, host: Option<&str>) -> Reach {
        if self.contains(host) {
            Reach::Everything
        } else {
            match self.elsewhere {
                Elsewhere::TraceContext => Reach::TraceContext,
                Elsewhere::Nothing => Reach::Nothing,
            }
        }
    }
}

impl Default for OutboundScope {
    fn default() -> Self {
        Self::everywhere()
    }
}

impl fmt::Debug for OutboundScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inside = match &self.inside {
            Inside::Everywhere => "everywhere".to_owned(),
            Inside::Hosts {
                exact,
                suffixes,
                single_label,
            } => format!(
                "hosts {exact:?}, suffixes {suffixes:?}, single-label names: {single_label}"
            ),
            Inside::Predicate(_) => "a predicate".to_owned(),
        };
        f.debug_struct("OutboundScope")
            .field("inside", &inside)
            .field("elsewhere", &self.elsewhere)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{Elsewhere, OutboundScope, Reach};

    #[test]
    fn mesh_names() {
        let mesh = OutboundScope::mesh();
        for inside in [
            "ratings",
            "ratings.default.svc.cluster.local",
            "ratings.default.svc",
            "Ratings",
            "ratings.default.svc.cluster.local.",
        ] {
            assert!(mesh.contains(Some(inside)), "{inside}");
        }
        for outside in [
            "api.stripe.com",
            "10.0.0.7",
            "[::1]",
            "svc.example.com",
            "evil.svc.cluster.local.example.com",
            "",
        ] {
            assert!(!mesh.contains(Some(outside)), "{outside}");
        }
        assert!(!mesh.contains(None));
        assert_eq!(mesh.reach(Some("api.stripe.com")), Reach::TraceContext);
        let strict = OutboundScope::mesh().elsewhere(Elsewhere::Nothing);
        assert_eq!(strict.reach(Some("api.stripe.com")), Reach::Nothing);
        assert_eq!(strict.reach(Some("ratings")), Reach::Everything);
    }

    #[test]
    fn hosts_and_predicates() {
        let scope = OutboundScope::hosts(["Partner.Example.com", ".corp.internal", " "]);
        assert!(scope.contains(Some("partner.example.com")));
        assert!(scope.contains(Some("db.corp.internal")));
        assert!(!scope.contains(Some("example.com")));
        assert!(
            !scope.contains(Some("ratings")),
            "no single-label rule for explicit hosts"
        );
        let scope = OutboundScope::predicate(|h| h.starts_with("inner-"));
        assert!(scope.contains(Some("inner-a")));
        assert!(!scope.contains(Some("outer")));
        assert!(OutboundScope::everywhere().contains(None));
        assert_eq!(
            OutboundScope::default().reach(Some("anything.example")),
            Reach::Everything
        );
    }
}
