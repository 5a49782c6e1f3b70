//! Mesh-aware calls: what the application must do so that it and the sidecar work together
//! (the seed write-up's lessons).
//!
//! - [`deadline`]: the request's deadline budget, read from `grpc-timeout` and
//!   `x-envoy-expected-rq-timeout-ms` and carried along like the trace, so that outgoing calls
//!   never outlive the request they serve.
//! - [`envoy`]: who answered a call, the upstream application or the Envoy sidecar.
//! - [`timeouts`]: code timeouts kept a little above the mesh route's.
//!
//! Retry arithmetic (code retries stacked on the mesh's) lives with the checker it serves,
//! in `meshtrace::check::retry` (feature `check`).

pub mod deadline;
pub mod envoy;
pub mod timeouts;
