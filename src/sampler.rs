//! A parent-based sampler that understands B3's debug and deferred decisions.

use crate::propagation::b3::SamplingState;
use crate::propagation::MeshContextExt;
use opentelemetry::trace::{Link, SpanKind, TraceContextExt, TraceId, TraceState};
use opentelemetry::{Context, KeyValue};
use opentelemetry_sdk::trace::{Sampler, SamplingDecision, SamplingResult, ShouldSample};

/// Parent-based sampling that keeps B3's meaning.
///
/// Like `Sampler::ParentBased(root)`, with three differences a mesh needs:
/// - a remote parent whose B3 decision was *deferred* (ids sent without a sampling state) is
///   decided by `root`, not read as "not sampled";
/// - a remote parent sent as B3 *debug* is always sampled;
/// - a request that carried only a B3 decision (`b3: 0|1|d`, `x-b3-sampled` alone) starts a
///   new trace with that decision.
///
/// ```
/// use meshtrace::MeshSampler;
/// use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
/// let provider = SdkTracerProvider::builder()
///     .with_sampler(MeshSampler::new(Sampler::TraceIdRatioBased(0.1)))
///     .build();
/// # drop(provider);
/// ```
#[derive(Debug, Clone)]
pub struct MeshSampler {
    root: Box<dyn ShouldSample>,
}

impl MeshSampler {
    /// A mesh-aware parent-based sampler that decides new and deferred traces with `root`.
    pub fn new(root: impl ShouldSample + 'static) -> Self {
        MeshSampler {
            root: Box::new(root),
        }
    }
}

impl Default for MeshSampler {
    /// Decides new and deferred traces with `AlwaysOn`, like the SDK's default sampler.
    fn default() -> Self {
        Self::new(Sampler::AlwaysOn)
    }
}

fn decided(sample: bool, trace_state: TraceState) -> SamplingResult {
    SamplingResult {
        decision: if sample {
            SamplingDecision::RecordAndSample
        } else {
            SamplingDecision::Drop
        },
        attributes: Vec::new(),
        trace_state,
    }
}

impl ShouldSample for MeshSampler {
    fn should_sample(
        &self,
        parent_context: Option<&Context>,
        trace_id: TraceId,
        name: &str,
        span_kind: &SpanKind,
        attributes: &[KeyValue],
        links: &[Link],
    ) -> SamplingResult {
        let root = || {
            self.root
                .should_sample(parent_context, trace_id, name, span_kind, attributes, links)
        };
        let Some(cx) = parent_context else {
            return root();
        };
        let mesh = cx.mesh();
        let span = cx.span();
        let parent = span.span_context();
        if parent.is_valid() {
            let incoming = mesh
                .and_then(|m| m.remote())
                .filter(|r| parent.is_remote() && r.span_id == parent.span_id());
            return match incoming.map(|r| r.sampling) {
                Some(SamplingState::Deferred) => {
                    let mut result = root();
                    result.trace_state = parent.trace_state().clone();
                    result
                }
                Some(SamplingState::Debug) => decided(true, parent.trace_state().clone()),
                _ => decided(parent.is_sampled(), parent.trace_state().clone()),
            };
        }
        match mesh
            .and_then(|m| m.sampling())
            .and_then(SamplingState::is_sampled)
        {
            Some(sample) => decided(sample, TraceState::NONE),
            None => root(),
        }
    }
}
