//! Reading one sample out of a Prometheus exposition, shared by the engine and HTTP test support modules.

/// The value of one sample, by metric name and labels (each given label must match), from the exposition
/// text; fails the test when the sample is missing or not a number.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("valid Prometheus exposition");
    let found = scrape
        .samples
        .iter()
        .find(|s| s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)));
    match found.map(|s| &s.value) {
        Some(prometheus_parse::Value::Counter(v))
        | Some(prometheus_parse::Value::Gauge(v))
        | Some(prometheus_parse::Value::Untyped(v)) => *v,
        other => panic!("{name}{labels:?} not found or not a number: {other:?}"),
    }
}
