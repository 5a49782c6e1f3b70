//! Public endpoint mode (SPECS §9): a request from outside the mesh does not get to be the
//! parent of our trace.

use crate::propagation::format::{is_trace_context_header, name, BAGGAGE};
use crate::propagation::passthrough::X_REQUEST_ID;
use http::{HeaderMap, HeaderValue};
use opentelemetry::baggage::{Baggage, BaggageExt};
use opentelemetry::trace::{SpanContext, TraceContextExt};
use opentelemetry::Context;
use std::fmt;
use std::sync::Arc;

type Decide = Arc<dyn Fn(&http::request::Parts) -> bool + Send + Sync>;

/// How [`MeshServerLayer`](super::MeshServerLayer) treats the trace context a request
/// arrives with. Off by default: inside a mesh, the caller is the parent.
///
/// On a public endpoint (an ingress, or a workload reached from the internet), the incoming
/// context is not trusted, as go-contrib's `WithPublicEndpointFn` has it:
///
/// - the server span starts a **new trace**, with a **link** to the incoming context (so the
///   caller's trace can still be found from ours);
/// - incoming **sampling and debug decisions are ignored** (`sampled` flags, `x-b3-flags: 1`):
///   the local root sampler decides;
/// - incoming **baggage is dropped**, but the entries named by [`allow_baggage`](Self::allow_baggage);
/// - the incoming `x-ot-span-context` is dropped; `x-request-id` is kept, or replaced by a new
///   UUID v4 with [`regenerate_request_id`](Self::regenerate_request_id).
///
/// ```
/// use meshtrace::server::{MeshServerLayer, PublicEndpoint};
///
/// // An ingress that serves both the internet and other services of the mesh: requests
/// // that came through the internal gateway (say) keep their parent.
/// let layer = MeshServerLayer::new().public_endpoint(
///     PublicEndpoint::per_request(|req| !req.headers.contains_key("x-internal-gateway"))
///         .allow_baggage(["tenant"]),
/// );
/// ```
#[derive(Clone)]
pub struct PublicEndpoint {
    when: When,
    allowed_baggage: Arc<[String]>,
    regenerate_request_id: bool,
}

#[derive(Clone)]
enum When {
    Never,
    Always,
    PerRequest(Decide),
}

impl PublicEndpoint {
    /// Not a public endpoint: the caller's context is the parent (the default).
    pub fn off() -> Self {
        PublicEndpoint {
            when: When::Never,
            allowed_baggage: Arc::from([]),
            regenerate_request_id: false,
        }
    }

    /// Every request is from outside.
    pub fn on() -> Self {
        PublicEndpoint {
            when: When::Always,
            ..Self::off()
        }
    }

    /// `public` decides, per request, whether it is from outside.
    pub fn per_request(
        public: impl Fn(&http::request::Parts) -> bool + Send + Sync + 'static,
    ) -> Self {
        PublicEndpoint {
            when: When::PerRequest(Arc::new(public)),
            ..Self::off()
        }
    }

    /// Keep these baggage entries (by name) from outside; every other entry is dropped.
    pub fn allow_baggage<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.allowed_baggage = names.into_iter().map(Into::into).collect();
        self
    }

    /// Replace the incoming `x-request-id` with a new UUID v4 (kept by default). A request
    /// without one gets one either way when the layer's `generate_request_id` is on.
    pub fn regenerate_request_id(mut self, regenerate: bool) -> Self {
        self.regenerate_request_id = regenerate;
        self
    }

    /// Whether the decision needs the request's parts.
    pub(super) fn per_request_decision(&self) -> bool {
        matches!(self.when, When::PerRequest(_))
    }

    /// Whether a request with these parts (when a per-request decision needs them) is
    /// from outside.
    pub(super) fn applies(&self, parts: Option<&http::request::Parts>) -> bool {
        match &self.when {
            When::Never => false,
            When::Always => true,
            When::PerRequest(public) => parts.is_some_and(|p| public(p)),
        }
    }

    /// The headers to extract the new trace's context from: none of the incoming trace
    /// context, `x-ot-span-context` or baggage headers (baggage comes back, filtered, in
    /// [`Self::context`]), and `x-request-id` replaced if asked.
    pub(super) fn sanitized(&self, headers: &HeaderMap) -> HeaderMap {
        let mut out = HeaderMap::with_capacity(headers.len());
        for (name, value) in headers {
            let n = name.as_str();
            let drop = is_trace_context_header(n)
                || *name == BAGGAGE
                || n == name::X_OT_SPAN_CONTEXT
                || n.starts_with(name::UBERCTX_PREFIX)
                || n.starts_with(name::OT_BAGGAGE_PREFIX)
                || (self.regenerate_request_id && *name == X_REQUEST_ID);
            if !drop {
                out.append(name.clone(), value.clone());
            }
        }
        if self.regenerate_request_id {
            let id = uuid::Uuid::new_v4().hyphenated().to_string();
            if let Ok(value) = HeaderValue::from_str(&id) {
                out.insert(X_REQUEST_ID, value);
            }
        }
        out
    }

    /// `fresh` (extracted from the sanitized headers) with the allowed entries of the
    /// incoming baggage.
    pub(super) fn context(&self, fresh: Context, incoming: &Context) -> Context {
        if self.allowed_baggage.is_empty() {
            return fresh;
        }
        let kept: Baggage = incoming
            .baggage()
            .iter()
            .filter(|(k, _)| self.allowed_baggage.iter().any(|a| a == k.as_str()))
            .map(|(k, (v, m))| (k.clone(), (v.clone(), m.clone())))
            .collect();
        if kept.is_empty() {
            fresh
        } else {
            fresh.with_baggage(kept)
        }
    }

    /// The incoming span context, to link the new trace to (when valid).
    pub(super) fn link(incoming: &Context) -> Option<SpanContext> {
        let span = incoming.span();
        let sc = span.span_context();
        sc.is_valid().then(|| sc.clone())
    }
}

impl Default for PublicEndpoint {
    fn default() -> Self {
        Self::off()
    }
}

impl fmt::Debug for PublicEndpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let when = match self.when {
            When::Never => "off",
            When::Always => "on",
            When::PerRequest(_) => "per request",
        };
        f.debug_struct("PublicEndpoint")
            .field("when", &when)
            .field("allowed_baggage", &self.allowed_baggage)
            .field("regenerate_request_id", &self.regenerate_request_id)
            .finish()
    }
}
