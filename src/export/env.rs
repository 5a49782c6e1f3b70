//! OpenTelemetry's environment variables (the [table](crate::export) of the module docs),
//! read into a [`TelemetryBuilder`].

use super::builder::{DEFAULT_METRIC_INTERVAL, DEFAULT_TIMEOUT};
use super::{
    BatchSettings, InitError, LogFormat, MetricsExporter, OtlpConfig, Protocol, RootSampler,
    SamplerConfig, SpanExtras, TelemetryBuilder,
};
use crate::propagation::env::{PropagatorList, PropagatorsError};
use std::time::Duration;
use tracing_subscriber::filter::EnvFilter;

/// An environment variable's value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvError {
    /// Not `true` or `false`.
    #[error("expected `true` or `false`")]
    NotABool,
    /// An OTLP protocol this crate does not speak.
    #[error("unsupported protocol (use `grpc` or `http/protobuf`)")]
    Protocol,
    /// An exporter (`OTEL_TRACES_EXPORTER`, `OTEL_LOGS_EXPORTER`) other than `otlp` or `none`.
    #[error("unsupported exporter (use `otlp` or `none`)")]
    Exporter,
    /// A metrics exporter other than `otlp`, `prometheus` (with the `prometheus` feature) or
    /// `none`.
    #[error("unsupported metrics exporter (use `otlp`, `none`, or `prometheus` with meshtrace's `prometheus` feature)")]
    MetricsExporter,
    /// A list of header names with an entry that is not one.
    #[error("{0:?} is not a header name (expected comma-separated header names)")]
    HeaderName(String),
    /// Not a TCP port number.
    #[error("expected a port number (0 to 65535)")]
    Port,
    /// Not an `http://` or `https://` URL with a host.
    #[error("not an http(s) URL with a host")]
    Url,
    /// A `key=value` list entry without `=` or with an empty key.
    #[error("expected comma-separated `key=value` pairs, got the entry {0:?}")]
    KeyValue(String),
    /// A sampler name this crate does not know.
    #[error("unknown sampler (use always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio)")]
    Sampler,
    /// A sampling ratio outside `[0, 1]`.
    #[error("expected a number from 0 to 1")]
    Ratio,
    /// Not a whole number of milliseconds.
    #[error("expected a whole number of milliseconds")]
    Millis,
    /// Not a whole number above zero.
    #[error("expected a whole number above zero")]
    Positive,
    /// `OTEL_PROPAGATORS` names something unknown.
    #[error(transparent)]
    Propagators(#[from] PropagatorsError),
    /// A `MESHTRACE_SPAN_EXTRAS` entry this crate does not know.
    #[error("unknown span extra {0:?} (use code_location, threads, busy_idle, all or none)")]
    SpanExtra(String),
    /// A `MESHTRACE_LOG_FORMAT` other than `text` or `json`.
    #[error("unknown log format (use `text` or `json`)")]
    LogFormat,
    /// `RUST_LOG` is not a valid filter.
    #[error("not a valid filter: {0}")]
    Filter(String),
}

impl TelemetryBuilder {
    /// Configured from the process environment (see the [module](crate::export) table).
    pub fn from_env() -> Result<Self, InitError> {
        Self::from_env_source(|var| std::env::var(var).ok())
    }

    /// Configured from `get`, which returns a variable's value: for tests and for
    /// configuration that comes from somewhere other than the process environment.
    /// An empty value counts as unset, as the OpenTelemetry specification says.
    ///
    /// opentelemetry-otlp still merges `OTEL_EXPORTER_OTLP_HEADERS` and the compression
    /// variables from the process environment into the exporter it builds, and the SDK reads
    /// `OTEL_BSP_EXPORT_TIMEOUT` and `OTEL_BSP_MAX_CONCURRENT_EXPORTS` from there.
    pub fn from_env_source(get: impl Fn(&str) -> Option<String>) -> Result<Self, InitError> {
        let get = |var: &str| get(var).filter(|v| !v.trim().is_empty());
        let mut b = Self::new();
        let bad = |var: &'static str, value: &str, error: EnvError| InitError::Env {
            var,
            value: value.to_owned(),
            error,
        };

        if let Some(v) = get("OTEL_SDK_DISABLED") {
            b.disabled = match v.trim().to_ascii_lowercase().as_str() {
                "true" => true,
                "false" => false,
                _ => return Err(bad("OTEL_SDK_DISABLED", &v, EnvError::NotABool)),
            };
        }
        b.service_name = get("OTEL_SERVICE_NAME").map(|v| v.trim().to_owned());
        if let Some(v) = get("OTEL_RESOURCE_ATTRIBUTES") {
            b.resource_attributes =
                parse_key_values(&v).map_err(|e| bad("OTEL_RESOURCE_ATTRIBUTES", &v, e))?;
        }
        if let Some(v) = get("OTEL_PROPAGATORS") {
            let list: PropagatorList = v
                .parse()
                .map_err(|e: PropagatorsError| bad("OTEL_PROPAGATORS", &v, e.into()))?;
            b.propagator = list
                .into_builder()
                .build()
                .expect("the default pass-through names are valid");
        }
        if let Some(v) = get("RUST_LOG") {
            EnvFilter::try_new(&v)
                .map_err(|e| bad("RUST_LOG", &v, EnvError::Filter(e.to_string())))?;
            b.log_filter = v;
        }
        if let Some(v) = get("MESHTRACE_LOG_FORMAT") {
            b.log_format = match v.trim().to_ascii_lowercase().as_str() {
                "text" => LogFormat::Text,
                "json" => LogFormat::Json,
                _ => return Err(bad("MESHTRACE_LOG_FORMAT", &v, EnvError::LogFormat)),
            };
        }
        if let Some(v) = get("MESHTRACE_SPAN_EXTRAS") {
            b.span_extras =
                span_extras_from(&v).map_err(|e| bad("MESHTRACE_SPAN_EXTRAS", &v, e))?;
        }
        // The layers read these themselves, leaving out what is not a header name; here a
        // typo is an error, so that a deployment learns of it at start.
        for var in [
            crate::header_list::SERVER_REQUEST,
            crate::header_list::SERVER_RESPONSE,
            crate::header_list::CLIENT_REQUEST,
            crate::header_list::CLIENT_RESPONSE,
        ] {
            if let Some(v) = get(var) {
                crate::header_list::parse(&v).map_err(|e| bad(var, &v, EnvError::HeaderName(e)))?;
            }
        }
        b.sampler = sampler_from(&get)?;
        b.otlp = otlp_from(&get, &TRACES)?;
        b.otlp_logs = otlp_from(&get, &LOGS)?;
        (b.metrics, b.metric_interval) = metrics_from(&get)?;
        b.batch = batch_from(&get)?;
        Ok(b)
    }
}

/// `MESHTRACE_SPAN_EXTRAS`: a comma-separated list of `code_location`, `threads`,
/// `busy_idle`, `all` and `none`, added up in order (`none` clears what came before).
fn span_extras_from(v: &str) -> Result<SpanExtras, EnvError> {
    let mut extras = SpanExtras::NONE;
    for entry in v.split(',').map(str::trim).filter(|e| !e.is_empty()) {
        match entry.to_ascii_lowercase().as_str() {
            "code_location" => extras.code_location = true,
            "threads" => extras.threads = true,
            "busy_idle" => extras.busy_idle = true,
            "all" => extras = SpanExtras::ALL,
            "none" => extras = SpanExtras::NONE,
            _ => return Err(EnvError::SpanExtra(entry.to_owned())),
        }
    }
    Ok(extras)
}

fn sampler_from(get: &impl Fn(&str) -> Option<String>) -> Result<SamplerConfig, InitError> {
    const VAR: &str = "OTEL_TRACES_SAMPLER";
    const ARG: &str = "OTEL_TRACES_SAMPLER_ARG";
    let ratio = || -> Result<f64, InitError> {
        match get(ARG) {
            None => Ok(1.0),
            Some(v) => match v.trim().parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(InitError::Env {
                    var: ARG,
                    value: v,
                    error: EnvError::Ratio,
                }),
            },
        }
    };
    let Some(v) = get(VAR) else {
        return Ok(SamplerConfig::ParentBased(RootSampler::AlwaysOn));
    };
    Ok(match v.trim().to_ascii_lowercase().as_str() {
        "always_on" => SamplerConfig::AlwaysOn,
        "always_off" => SamplerConfig::AlwaysOff,
        "traceidratio" => SamplerConfig::TraceIdRatio(ratio()?),
        "parentbased_always_on" => SamplerConfig::ParentBased(RootSampler::AlwaysOn),
        "parentbased_always_off" => SamplerConfig::ParentBased(RootSampler::AlwaysOff),
        "parentbased_traceidratio" => {
            SamplerConfig::ParentBased(RootSampler::TraceIdRatio(ratio()?))
        }
        _ => {
            return Err(InitError::Env {
                var: VAR,
                value: v,
                error: EnvError::Sampler,
            })
        }
    })
}

fn batch_from(get: &impl Fn(&str) -> Option<String>) -> Result<BatchSettings, InitError> {
    let positive = |var: &'static str| -> Result<Option<u64>, InitError> {
        match get(var) {
            None => Ok(None),
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if n > 0 => Ok(Some(n)),
                _ => Err(InitError::Env {
                    var,
                    value: v,
                    error: EnvError::Positive,
                }),
            },
        }
    };
    let mut batch = BatchSettings::default();
    if let Some(n) = positive("OTEL_BSP_MAX_QUEUE_SIZE")? {
        batch.max_queue_size = usize::try_from(n).unwrap_or(usize::MAX);
    }
    if let Some(ms) = positive("OTEL_BSP_SCHEDULE_DELAY")? {
        batch.scheduled_delay = Duration::from_millis(ms);
    }
    if let Some(n) = positive("OTEL_BSP_MAX_EXPORT_BATCH_SIZE")? {
        batch.max_export_batch_size = usize::try_from(n).unwrap_or(usize::MAX);
    }
    Ok(batch)
}

/// One OTLP signal's variables: its exporter switch, its own `OTEL_EXPORTER_OTLP_<SIGNAL>_*`
/// (each winning over the general one) and the path appended to the general HTTP endpoint.
struct Signal {
    exporter: &'static str,
    /// Whether the signal is exported when its exporter variable is unset.
    on_by_default: bool,
    protocol: &'static str,
    endpoint: &'static str,
    headers: &'static str,
    timeout: &'static str,
    path: &'static str,
}

const TRACES: Signal = Signal {
    exporter: "OTEL_TRACES_EXPORTER",
    on_by_default: true,
    protocol: "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    endpoint: "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    headers: "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
    path: "/v1/traces",
};

/// Off unless asked for, unlike the specification's default: the lines already go to
/// standard output, where a cluster's log agent collects them, and a deployment that set
/// `OTEL_EXPORTER_OTLP_ENDPOINT` for its traces should not start shipping every line twice,
/// to a collector that may have no logs pipeline.
const LOGS: Signal = Signal {
    exporter: "OTEL_LOGS_EXPORTER",
    on_by_default: false,
    protocol: "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL",
    endpoint: "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT",
    headers: "OTEL_EXPORTER_OTLP_LOGS_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT",
    path: "/v1/logs",
};

/// Off unless asked for, unlike the specification's `otlp`: a mesh's trace backend (Jaeger,
/// Zipkin) takes no metrics, and exporting to it unasked fails every interval. Its exporter
/// variable also takes `prometheus` ([`metrics_from`]).
const METRICS: Signal = Signal {
    exporter: "OTEL_METRICS_EXPORTER",
    on_by_default: false,
    protocol: "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
    endpoint: "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
    headers: "OTEL_EXPORTER_OTLP_METRICS_HEADERS",
    timeout: "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT",
    path: "/v1/metrics",
};

/// Where `signal` is exported to, or `None` when it is not.
fn otlp_from(
    get: &impl Fn(&str) -> Option<String>,
    signal: &Signal,
) -> Result<Option<OtlpConfig>, InitError> {
    match get(signal.exporter) {
        None if !signal.on_by_default => return Ok(None),
        None => {}
        Some(v) => match v.trim().to_ascii_lowercase().as_str() {
            "otlp" => {}
            "none" => return Ok(None),
            _ => {
                return Err(InitError::Env {
                    var: signal.exporter,
                    value: v,
                    error: EnvError::Exporter,
                })
            }
        },
    }
    otlp_for(get, signal).map(Some)
}

/// `OTEL_METRICS_EXPORTER` (`otlp`, `prometheus` with the `prometheus` feature, or `none`),
/// its exporter's variables, and `OTEL_METRIC_EXPORT_INTERVAL`.
fn metrics_from(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<(Option<MetricsExporter>, Duration), InitError> {
    let var = METRICS.exporter;
    let interval = match get("OTEL_METRIC_EXPORT_INTERVAL") {
        None => DEFAULT_METRIC_INTERVAL,
        Some(v) => match v.trim().parse::<u64>() {
            Ok(ms) if ms > 0 => Duration::from_millis(ms),
            _ => {
                return Err(InitError::Env {
                    var: "OTEL_METRIC_EXPORT_INTERVAL",
                    value: v,
                    error: EnvError::Positive,
                })
            }
        },
    };
    // Off unless asked for (see `METRICS`).
    let exporter = match get(var).map(|v| (v.trim().to_ascii_lowercase(), v)) {
        None => None,
        Some((name, v)) => match name.as_str() {
            "otlp" => Some(MetricsExporter::Otlp(otlp_for(get, &METRICS)?)),
            "none" => None,
            #[cfg(feature = "prometheus")]
            "prometheus" => Some(MetricsExporter::Prometheus(prometheus_from(get)?)),
            _ => {
                return Err(InitError::Env {
                    var,
                    value: v,
                    error: EnvError::MetricsExporter,
                })
            }
        },
    };
    Ok((exporter, interval))
}

/// `OTEL_EXPORTER_PROMETHEUS_HOST` and `_PORT`: where the scrape endpoint listens
/// (`localhost:9464` by default, where Istio's metrics merging finds it).
#[cfg(feature = "prometheus")]
fn prometheus_from(
    get: &impl Fn(&str) -> Option<String>,
) -> Result<super::PrometheusConfig, InitError> {
    let mut config = super::PrometheusConfig::default();
    if let Some(v) = get("OTEL_EXPORTER_PROMETHEUS_HOST") {
        config.host = v.trim().to_owned();
    }
    if let Some(v) = get("OTEL_EXPORTER_PROMETHEUS_PORT") {
        config.port = v.trim().parse::<u16>().map_err(|_| InitError::Env {
            var: "OTEL_EXPORTER_PROMETHEUS_PORT",
            value: v.clone(),
            error: EnvError::Port,
        })?;
    }
    Ok(config)
}

/// One signal's OTLP exporter settings; the signal's own variable wins over the general one.
fn otlp_for(
    get: &impl Fn(&str) -> Option<String>,
    signal: &Signal,
) -> Result<OtlpConfig, InitError> {
    let bad =
        |var: &'static str, value: String, error: EnvError| InitError::Env { var, value, error };
    let pick = |own: &'static str, general: &'static str| {
        get(own)
            .map(|v| (own, v))
            .or_else(|| get(general).map(|v| (general, v)))
    };
    let protocol = match pick(signal.protocol, "OTEL_EXPORTER_OTLP_PROTOCOL") {
        None => Protocol::HttpProtobuf,
        Some((var, v)) => match v.trim() {
            "grpc" => Protocol::Grpc,
            "http/protobuf" => Protocol::HttpProtobuf,
            _ => return Err(bad(var, v, EnvError::Protocol)),
        },
    };
    let endpoint = if let Some(v) = get(signal.endpoint) {
        check_url(&v).map_err(|e| bad(signal.endpoint, v.clone(), e))?;
        v.trim().to_owned()
    } else if let Some(v) = get("OTEL_EXPORTER_OTLP_ENDPOINT") {
        check_url(&v).map_err(|e| bad("OTEL_EXPORTER_OTLP_ENDPOINT", v.clone(), e))?;
        match protocol {
            Protocol::Grpc => v.trim().to_owned(),
            // The general endpoint is a base URL; the signal's path is appended (OTLP spec).
            Protocol::HttpProtobuf => {
                format!("{}{}", v.trim().trim_end_matches('/'), signal.path)
            }
        }
    } else {
        match protocol {
            Protocol::Grpc => "http://localhost:4317".into(),
            Protocol::HttpProtobuf => format!("http://localhost:4318{}", signal.path),
        }
    };
    let headers = match pick(signal.headers, "OTEL_EXPORTER_OTLP_HEADERS") {
        None => Vec::new(),
        Some((var, v)) => parse_key_values(&v).map_err(|e| bad(var, v.clone(), e))?,
    };
    let timeout = match pick(signal.timeout, "OTEL_EXPORTER_OTLP_TIMEOUT") {
        None => DEFAULT_TIMEOUT,
        Some((var, v)) => Duration::from_millis(
            v.trim()
                .parse::<u64>()
                .map_err(|_| bad(var, v.clone(), EnvError::Millis))?,
        ),
    };
    Ok(OtlpConfig {
        protocol,
        endpoint,
        headers,
        timeout,
    })
}

fn check_url(v: &str) -> Result<(), EnvError> {
    let uri: http::Uri = v.trim().parse().map_err(|_| EnvError::Url)?;
    match (uri.scheme_str(), uri.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(()),
        _ => Err(EnvError::Url),
    }
}

/// `k=v,k2=v2` as OpenTelemetry's resource-attribute and header variables use it: entries
/// trimmed, values percent-decoded, empty entries skipped.
fn parse_key_values(v: &str) -> Result<Vec<(String, String)>, EnvError> {
    let mut out = Vec::new();
    for entry in v.split(',') {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        match entry.split_once('=') {
            Some((k, val)) if !k.trim().is_empty() => {
                out.push((
                    k.trim().to_owned(),
                    crate::propagation::percent::decode(val.trim()),
                ));
            }
            _ => return Err(EnvError::KeyValue(entry.to_owned())),
        }
    }
    Ok(out)
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// `get` over fixed pairs.
    pub(in crate::export) fn env<'a>(
        vars: &'a [(&'a str, &'a str)],
    ) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn err(vars: &[(&str, &str)]) -> (String, String, EnvError) {
        match TelemetryBuilder::from_env_source(env(vars)) {
            Err(InitError::Env { var, value, error }) => (var.to_owned(), value, error),
            other => panic!("expected an env error for {vars:?}, got {other:?}"),
        }
    }

    #[test]
    fn defaults() {
        let b = TelemetryBuilder::from_env_source(env(&[])).unwrap();
        assert_eq!(
            b.otlp_config().unwrap(),
            &OtlpConfig {
                protocol: Protocol::HttpProtobuf,
                endpoint: "http://localhost:4318/v1/traces".into(),
                headers: vec![],
                timeout: Duration::from_secs(10),
            }
        );
        assert_eq!(
            b.sampler_config(),
            SamplerConfig::ParentBased(RootSampler::AlwaysOn)
        );
        assert!(!b.disabled);
    }

    #[test]
    fn endpoints_protocols_headers_timeouts() {
        let b = TelemetryBuilder::from_env_source(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger:4318/"),
            (
                "OTEL_EXPORTER_OTLP_HEADERS",
                "api-key=s%3Dcret, x-tenant = blue ,",
            ),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2500"),
        ]))
        .unwrap();
        let o = b.otlp_config().unwrap();
        assert_eq!(o.endpoint, "http://jaeger:4318/v1/traces");
        assert_eq!(
            o.headers,
            [
                ("api-key".into(), "s=cret".into()),
                ("x-tenant".into(), "blue".into())
            ]
        );
        assert_eq!(o.timeout, Duration::from_millis(2500));

        let b = TelemetryBuilder::from_env_source(env(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "100"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "not used"),
        ]))
        .unwrap();
        let o = b.otlp_config().unwrap();
        assert_eq!(
            (o.protocol, o.endpoint.as_str()),
            (Protocol::Grpc, "http://collector:4317")
        );
        assert_eq!(o.timeout, Duration::from_millis(100));

        // The traces endpoint is used as given.
        let b = TelemetryBuilder::from_env_source(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://ignored:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "https://otlp.example.com/custom/path",
            ),
        ]))
        .unwrap();
        assert_eq!(
            b.otlp_config().unwrap().endpoint,
            "https://otlp.example.com/custom/path"
        );

        let b =
            TelemetryBuilder::from_env_source(env(&[("OTEL_TRACES_EXPORTER", "none")])).unwrap();
        assert_eq!(b.otlp_config(), None);
    }

    #[test]
    fn metrics_variables() {
        let b = TelemetryBuilder::from_env_source(env(&[])).unwrap();
        assert_eq!(b.metrics_config(), (None, Duration::from_secs(60)));
        let b =
            TelemetryBuilder::from_env_source(env(&[("OTEL_METRICS_EXPORTER", "otlp")])).unwrap();
        assert_eq!(
            b.metrics_config().0,
            Some(&MetricsExporter::Otlp(OtlpConfig::new(
                Protocol::HttpProtobuf,
                "http://localhost:4318/v1/metrics"
            )))
        );
        // The general variables serve both signals, each with its own path; the metrics'
        // own variables win.
        let b = TelemetryBuilder::from_env_source(env(&[
            ("OTEL_METRICS_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=1"),
            ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "api-key=2"),
            ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "700"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "1500"),
        ]))
        .unwrap();
        assert_eq!(
            b.otlp_config().unwrap().endpoint,
            "http://collector:4318/v1/traces"
        );
        let (Some(MetricsExporter::Otlp(m)), interval) = b.metrics_config() else {
            panic!("otlp metrics expected");
        };
        assert_eq!(m.endpoint, "http://collector:4318/v1/metrics");
        assert_eq!(m.headers, [("api-key".into(), "2".into())]);
        assert_eq!(m.timeout, Duration::from_millis(700));
        assert_eq!(interval, Duration::from_millis(1500));
        let b = TelemetryBuilder::from_env_source(env(&[
            ("OTEL_METRICS_EXPORTER", "OTLP"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "http://metrics:4317"),
        ]))
        .unwrap();
        let (Some(MetricsExporter::Otlp(m)), _) = b.metrics_config() else {
            panic!("otlp metrics expected");
        };
        assert_eq!(
            (m.protocol, m.endpoint.as_str()),
            (Protocol::Grpc, "http://metrics:4317")
        );
        assert_eq!(b.otlp_config().unwrap().protocol, Protocol::HttpProtobuf);
        let b =
            TelemetryBuilder::from_env_source(env(&[("OTEL_METRICS_EXPORTER", " None ")])).unwrap();
        assert_eq!(b.metrics_config().0, None);
        #[cfg(feature = "prometheus")]
        {
            let b = TelemetryBuilder::from_env_source(env(&[
                ("OTEL_METRICS_EXPORTER", "prometheus"),
                ("OTEL_EXPORTER_PROMETHEUS_PORT", "9090"),
            ]))
            .unwrap();
            let Some(MetricsExporter::Prometheus(p)) = b.metrics_config().0 else {
                panic!("prometheus expected");
            };
            assert_eq!((p.host.as_str(), p.port), ("localhost", 9090));
            let (var, _, e) = err(&[
                ("OTEL_METRICS_EXPORTER", "prometheus"),
                ("OTEL_EXPORTER_PROMETHEUS_PORT", "70000"),
            ]);
            assert_eq!(
                (var.as_str(), e),
                ("OTEL_EXPORTER_PROMETHEUS_PORT", EnvError::Port)
            );
        }
    }

    #[test]
    fn samplers() {
        for (name, arg, want) in [
            ("always_on", None, SamplerConfig::AlwaysOn),
            ("ALWAYS_OFF", None, SamplerConfig::AlwaysOff),
            (
                "traceidratio",
                Some("0.25"),
                SamplerConfig::TraceIdRatio(0.25),
            ),
            ("traceidratio", None, SamplerConfig::TraceIdRatio(1.0)),
            (
                "parentbased_always_off",
                None,
                SamplerConfig::ParentBased(RootSampler::AlwaysOff),
            ),
            (
                "parentbased_traceidratio",
                Some("0"),
                SamplerConfig::ParentBased(RootSampler::TraceIdRatio(0.0)),
            ),
        ] {
            let mut vars = vec![("OTEL_TRACES_SAMPLER", name)];
            if let Some(arg) = arg {
                vars.push(("OTEL_TRACES_SAMPLER_ARG", arg));
            }
            let b = TelemetryBuilder::from_env_source(env(&vars)).unwrap();
            assert_eq!(b.sampler_config(), want, "{name} {arg:?}");
        }
    }

    #[test]
    fn span_extras() {
        let extras = |v: &str| {
            TelemetryBuilder::from_env_source(env(&[("MESHTRACE_SPAN_EXTRAS", v)]))
                .unwrap()
                .span_extras_config()
        };
        assert_eq!(
            TelemetryBuilder::from_env_source(env(&[]))
                .unwrap()
                .span_extras_config(),
            SpanExtras::NONE
        );
        assert_eq!(extras("all"), SpanExtras::ALL);
        assert_eq!(extras("all, none"), SpanExtras::NONE);
        assert_eq!(
            extras(" Threads ,busy_idle,"),
            SpanExtras {
                threads: true,
                busy_idle: true,
                ..SpanExtras::NONE
            }
        );
        assert!(extras("code_location").code_location);
    }

    #[test]
    fn logs_are_exported_only_when_asked_for() {
        let logs = |vars: &[(&str, &str)]| {
            TelemetryBuilder::from_env_source(env(vars))
                .unwrap()
                .otlp_logs_config()
                .cloned()
        };
        // A deployment configured for traces exports no logs until it says so.
        assert_eq!(
            logs(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]),
            None
        );
        assert_eq!(logs(&[("OTEL_LOGS_EXPORTER", "none")]), None);
        assert_eq!(
            logs(&[("OTEL_LOGS_EXPORTER", "otlp")]),
            Some(OtlpConfig::new(
                Protocol::HttpProtobuf,
                "http://localhost:4318/v1/logs"
            ))
        );
        // The general variables, with the logs path appended to the base URL.
        let general = logs(&[
            ("OTEL_LOGS_EXPORTER", "OTLP"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "700"),
        ])
        .unwrap();
        assert_eq!(general.endpoint, "http://collector:4318/v1/logs");
        assert_eq!(general.headers, [("api-key".into(), "a".into())]);
        assert_eq!(general.timeout, Duration::from_millis(700));
        // The logs variables win, and leave the traces alone.
        let vars = [
            ("OTEL_LOGS_EXPORTER", "otlp"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "http://logs:4317"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a"),
            ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "api-key=b"),
            ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "300"),
        ];
        let own = logs(&vars).unwrap();
        assert_eq!(
            (own.protocol, own.endpoint.as_str()),
            (Protocol::Grpc, "http://logs:4317")
        );
        assert_eq!(own.headers, [("api-key".into(), "b".into())]);
        assert_eq!(own.timeout, Duration::from_millis(300));
        let b = TelemetryBuilder::from_env_source(env(&vars)).unwrap();
        let traces = b.otlp_config().unwrap();
        assert_eq!(
            (traces.protocol, traces.endpoint.as_str()),
            (Protocol::HttpProtobuf, "http://collector:4318/v1/traces")
        );
        assert_eq!(traces.headers, [("api-key".into(), "a".into())]);
        assert_eq!(traces.timeout, Duration::from_secs(10));
    }

    #[test]
    fn log_formats() {
        let format = |vars: &[(&str, &str)]| {
            TelemetryBuilder::from_env_source(env(vars))
                .unwrap()
                .log_format_config()
        };
        assert_eq!(format(&[]), LogFormat::Text);
        assert_eq!(
            format(&[("MESHTRACE_LOG_FORMAT", " JSON ")]),
            LogFormat::Json
        );
        assert_eq!(format(&[("MESHTRACE_LOG_FORMAT", "text")]), LogFormat::Text);
    }

    type Vars<'a> = &'a [(&'a str, &'a str)];

    #[test]
    fn every_bad_value_names_its_variable() {
        #[rustfmt::skip]
        let cases: &[(Vars, &str, EnvError)] = &[
            (&[("OTEL_SDK_DISABLED", "yes")], "OTEL_SDK_DISABLED", EnvError::NotABool),
            (&[("MESHTRACE_SPAN_EXTRAS", "threads,location")], "MESHTRACE_SPAN_EXTRAS", EnvError::SpanExtra("location".into())),
            (&[("MESHTRACE_LOG_FORMAT", "logfmt")], "MESHTRACE_LOG_FORMAT", EnvError::LogFormat),
            (&[("OTEL_RESOURCE_ATTRIBUTES", "team=a,oops")], "OTEL_RESOURCE_ATTRIBUTES", EnvError::KeyValue("oops".into())),
            (&[("OTEL_RESOURCE_ATTRIBUTES", "=x")], "OTEL_RESOURCE_ATTRIBUTES", EnvError::KeyValue("=x".into())),
            (&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")], "OTEL_EXPORTER_OTLP_PROTOCOL", EnvError::Protocol),
            (&[("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "udp")], "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", EnvError::Protocol),
            (&[("OTEL_EXPORTER_OTLP_ENDPOINT", "jaeger:4317")], "OTEL_EXPORTER_OTLP_ENDPOINT", EnvError::Url),
            (&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://x/")], "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", EnvError::Url),
            (&[("OTEL_EXPORTER_OTLP_HEADERS", "novalue")], "OTEL_EXPORTER_OTLP_HEADERS", EnvError::KeyValue("novalue".into())),
            (&[("OTEL_EXPORTER_OTLP_TIMEOUT", "10s")], "OTEL_EXPORTER_OTLP_TIMEOUT", EnvError::Millis),
            (&[("OTEL_TRACES_SAMPLER", "jaeger_remote")], "OTEL_TRACES_SAMPLER", EnvError::Sampler),
            (&[("OTEL_TRACES_SAMPLER", "traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "1.5")], "OTEL_TRACES_SAMPLER_ARG", EnvError::Ratio),
            (&[("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"), ("OTEL_TRACES_SAMPLER_ARG", "half")], "OTEL_TRACES_SAMPLER_ARG", EnvError::Ratio),
            (&[("OTEL_TRACES_EXPORTER", "zipkin")], "OTEL_TRACES_EXPORTER", EnvError::Exporter),
            (&[("OTEL_INSTRUMENTATION_HTTP_SERVER_CAPTURE_REQUEST_HEADERS", "x-tenant, bad name")], "OTEL_INSTRUMENTATION_HTTP_SERVER_CAPTURE_REQUEST_HEADERS", EnvError::HeaderName("bad name".into())),
            (&[("OTEL_INSTRUMENTATION_HTTP_SERVER_CAPTURE_RESPONSE_HEADERS", "a:b")], "OTEL_INSTRUMENTATION_HTTP_SERVER_CAPTURE_RESPONSE_HEADERS", EnvError::HeaderName("a:b".into())),
            (&[("OTEL_INSTRUMENTATION_HTTP_CLIENT_CAPTURE_REQUEST_HEADERS", "é")], "OTEL_INSTRUMENTATION_HTTP_CLIENT_CAPTURE_REQUEST_HEADERS", EnvError::HeaderName("é".into())),
            (&[("OTEL_INSTRUMENTATION_HTTP_CLIENT_CAPTURE_RESPONSE_HEADERS", "x y")], "OTEL_INSTRUMENTATION_HTTP_CLIENT_CAPTURE_RESPONSE_HEADERS", EnvError::HeaderName("x y".into())),
            (&[("OTEL_METRICS_EXPORTER", "statsd")], "OTEL_METRICS_EXPORTER", EnvError::MetricsExporter),
            (&[("OTEL_METRIC_EXPORT_INTERVAL", "0")], "OTEL_METRIC_EXPORT_INTERVAL", EnvError::Positive),
            (&[("OTEL_METRIC_EXPORT_INTERVAL", "1m")], "OTEL_METRIC_EXPORT_INTERVAL", EnvError::Positive),
            (&[("OTEL_METRICS_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "http/json")], "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", EnvError::Protocol),
            (&[("OTEL_METRICS_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "collector:4318")], "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", EnvError::Url),
            (&[("OTEL_METRICS_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_METRICS_HEADERS", "k")], "OTEL_EXPORTER_OTLP_METRICS_HEADERS", EnvError::KeyValue("k".into())),
            (&[("OTEL_METRICS_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", "-5")], "OTEL_EXPORTER_OTLP_METRICS_TIMEOUT", EnvError::Millis),
            // The traces are fine; the general endpoint is checked for the metrics too.
            (&[("OTEL_METRICS_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://jaeger:4318/v1/traces"), ("OTEL_EXPORTER_OTLP_ENDPOINT", "jaeger")], "OTEL_EXPORTER_OTLP_ENDPOINT", EnvError::Url),
            (&[("OTEL_LOGS_EXPORTER", "console")], "OTEL_LOGS_EXPORTER", EnvError::Exporter),
            (&[("OTEL_LOGS_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", "http/json")], "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL", EnvError::Protocol),
            (&[("OTEL_LOGS_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "collector:4318")], "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", EnvError::Url),
            (&[("OTEL_LOGS_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_LOGS_HEADERS", "k=v,novalue")], "OTEL_EXPORTER_OTLP_LOGS_HEADERS", EnvError::KeyValue("novalue".into())),
            (&[("OTEL_LOGS_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", "1m")], "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT", EnvError::Millis),
            (&[("OTEL_LOGS_EXPORTER", "otlp"), ("OTEL_EXPORTER_OTLP_TIMEOUT", "-5")], "OTEL_EXPORTER_OTLP_TIMEOUT", EnvError::Millis),
            (&[("OTEL_BSP_MAX_QUEUE_SIZE", "0")], "OTEL_BSP_MAX_QUEUE_SIZE", EnvError::Positive),
            (&[("OTEL_BSP_SCHEDULE_DELAY", "5s")], "OTEL_BSP_SCHEDULE_DELAY", EnvError::Positive),
            (&[("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "-1")], "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", EnvError::Positive),
        ];
        for (vars, var, error) in cases {
            let (got_var, value, got) = err(vars);
            assert_eq!((got_var.as_str(), &got), (*var, error), "{vars:?}");
            let message = InitError::Env {
                var: "X",
                value: value.clone(),
                error: got,
            }
            .to_string();
            assert!(message.contains(&format!("{value:?}")), "{message}");
        }
        let (var, _, e) = err(&[("OTEL_PROPAGATORS", "tracecontext,xrays")]);
        assert_eq!(var, "OTEL_PROPAGATORS");
        assert!(matches!(e, EnvError::Propagators(_)));
        let (var, _, e) = err(&[("RUST_LOG", "info,[[[")]);
        assert_eq!(var, "RUST_LOG");
        assert!(matches!(e, EnvError::Filter(_)));
    }

    #[test]
    fn resource_attributes_are_percent_decoded() {
        assert_eq!(
            parse_key_values("deployment.environment=prod,team=pay%2Cments, k = v ").unwrap(),
            [
                ("deployment.environment".into(), "prod".into()),
                ("team".into(), "pay,ments".into()),
                ("k".into(), "v".into()),
            ]
        );
    }
}
