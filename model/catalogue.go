package model

// MetricKind says how a metric's values behave: a gauge goes up and down,
// a counter only grows (until its process restarts).
type MetricKind string

// Metric kinds.
const (
	Gauge   MetricKind = "gauge"
	Counter MetricKind = "counter"
)

// MetricInfo describes one metric a collector produces: the catalogue
// `vigil check --config` checks rules against, and docs/metrics.md lists.
type MetricInfo struct {
	Name string
	Kind MetricKind
	Unit string
	// Labels are the metric's own labels, beyond collector, target and the
	// target's tags.
	Labels []string
	// Doc says where the value comes from (Markdown, one line).
	Doc string
}
