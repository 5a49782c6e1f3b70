//! Request metrics read back: a meter provider of the test's own over the SDK's in-memory
//! exporter, and the data points of one histogram with their attributes as strings.

use opentelemetry::metrics::{Meter, MeterProvider as _};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, MetricData};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use std::collections::BTreeMap;

/// One data point of a histogram: its attributes (values as strings), count and bounds.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub attrs: BTreeMap<String, String>,
    pub count: u64,
    pub sum: f64,
    pub bounds: Vec<f64>,
}

impl Point {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.get(key).map(String::as_str)
    }
}

/// What a histogram carried in the last export: its unit and points.
#[derive(Debug, Clone, Default)]
pub struct Histogram {
    pub unit: String,
    pub description: String,
    pub points: Vec<Point>,
}

impl Histogram {
    /// The points whose attributes include every `(key, value)` of `with`.
    pub fn matching(&self, with: &[(&str, &str)]) -> Vec<&Point> {
        self.points
            .iter()
            .filter(|p| with.iter().all(|(k, v)| p.attr(k) == Some(v)))
            .collect()
    }

    /// The number of requests the points matching `with` counted.
    pub fn count(&self, with: &[(&str, &str)]) -> u64 {
        self.matching(with).iter().map(|p| p.count).sum()
    }

    /// The one point whose attributes are exactly `attrs`; panics (showing every point)
    /// when there is none.
    pub fn exactly(&self, attrs: &[(&str, &str)]) -> &Point {
        let want: BTreeMap<String, String> = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.points
            .iter()
            .find(|p| p.attrs == want)
            .unwrap_or_else(|| panic!("no point with exactly {want:?} among {:#?}", self.points))
    }
}

/// A meter provider whose metrics go to an in-memory exporter when flushed.
pub struct Meters {
    pub provider: SdkMeterProvider,
    pub exporter: InMemoryMetricExporter,
}

impl Default for Meters {
    fn default() -> Self {
        Self::new()
    }
}

impl Meters {
    pub fn new() -> Meters {
        let exporter = InMemoryMetricExporter::default();
        let provider = SdkMeterProvider::builder()
            .with_reader(PeriodicReader::builder(exporter.clone()).build())
            .build();
        Meters { provider, exporter }
    }

    /// A meter of the provider, for a layer's `.meter(..)`.
    pub fn meter(&self) -> Meter {
        self.provider.meter("meshtrace")
    }

    /// Flushes (on the blocking pool: the reader blocks), then reads histogram `name` as the
    /// last export had it (cumulative: every request since the start).
    pub async fn histogram(&self, name: &str) -> Histogram {
        let provider = self.provider.clone();
        tokio::task::spawn_blocking(move || provider.force_flush())
            .await
            .expect("flush task")
            .expect("flush");
        self.read(name)
    }

    /// Histogram `name` as the last export had it, without flushing.
    pub fn read(&self, name: &str) -> Histogram {
        let exports = self.exporter.get_finished_metrics().expect("metrics");
        let mut found = Histogram::default();
        for export in &exports {
            for scope in export.scope_metrics() {
                for metric in scope.metrics().filter(|m| m.name() == name) {
                    let AggregatedMetrics::F64(MetricData::Histogram(h)) = metric.data() else {
                        panic!("{name} is not an f64 histogram: {:?}", metric.data());
                    };
                    found = Histogram {
                        unit: metric.unit().to_owned(),
                        description: metric.description().to_owned(),
                        points: h
                            .data_points()
                            .map(|p| Point {
                                attrs: p
                                    .attributes()
                                    .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                                    .collect(),
                                count: p.count(),
                                sum: p.sum(),
                                bounds: p.bounds().collect(),
                            })
                            .collect(),
                    };
                }
            }
        }
        found
    }
}
