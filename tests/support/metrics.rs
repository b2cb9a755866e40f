//! Reading samples out of a Prometheus exposition, shared by the engine and HTTP test support modules.

use prometheus_parse::{Sample, Scrape, Value};

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("valid Prometheus exposition")
}

/// Samples named `name` whose labels include every one of `labels`.
fn matching<'a>(
    scrape: &'a Scrape,
    name: &'a str,
    labels: &'a [(&str, &str)],
) -> impl Iterator<Item = &'a Sample> {
    scrape.samples.iter().filter(move |s| {
        s.metric == name && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
    })
}

fn number(name: &str, s: &Sample) -> f64 {
    match s.value {
        Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => v,
        ref other => panic!("{name} is not a number: {other:?}"),
    }
}

/// The value of one sample, by metric name and labels (each given label must match), from the exposition
/// text; fails the test when the sample is missing or not a number.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let scrape = parse(text);
    let found = matching(&scrape, name, labels).next();
    let found = found.unwrap_or_else(|| panic!("{name}{labels:?} not found"));
    number(name, found)
}

/// The sum of every sample named `name` whose labels include `labels` (a histogram's `_count` or a counter
/// over the label sets not given); 0 when there is none, as for a message never handled.
#[allow(dead_code)] // not every test crate sums
pub fn sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let scrape = parse(text);
    matching(&scrape, name, labels)
        .map(|s| number(name, s))
        .sum()
}

/// How many `message`s actors of type `actor` handled (`messages_handled_total`); 0 when none.
#[allow(dead_code)] // not every test crate counts messages
pub fn handled(text: &str, actor: &str, message: &str) -> f64 {
    sum(
        text,
        "agent_store_messages_handled_total",
        &[("actor", actor), ("message", message)],
    )
}
