// Package collectors turns external sources (etcd members, /metrics pages,
// TCP and HTTP probes, operator commands) into model.Samples for the rule
// engine. Each source lives in its own sub-package and knows how to scrape
// one target; this package owns what they share: configuration, building,
// running targets concurrently under a timeout, static tags, and the
// self-metrics that let rules alert on broken collection.
package collectors

import (
	"context"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// Collector gathers samples from one source. Collect returns when ctx is
// done and never blocks past its own timeout.
type Collector interface {
	Name() string
	Collect(ctx context.Context, now time.Time) ([]model.Sample, error)
}

// InventoryReporter is a Collector that also says what must exist, such as
// an etcd cluster's members: the daemon hands it to the engine's store
// after each collection, for rules that expect it (expect: inventory).
type InventoryReporter interface {
	Inventory() (model.Inventory, bool)
}

// Self-metric names, emitted once per target on every Collect.
const (
	// MetricUp is 1 when everything asked of the target was gathered, else 0.
	MetricUp = "vigil.collector.up"
	// MetricErrors counts the target's failed collections since start.
	MetricErrors = "vigil.collector.errors"
	// MetricDuration is how long the target's collection took, in seconds.
	MetricDuration = "vigil.collector.duration"
	// MetricSamples is how many samples the target yielded.
	MetricSamples = "vigil.collector.samples"
)

// OwnSamples is how many of a collection's samples, from the first, are
// its targets' self-metrics: Collect puts them first, and drops target
// samples named as them, so the daemon stores them where
// store.max_series cannot refuse them.
func OwnSamples(samples []model.Sample) int {
	n := 0
	for n < len(samples) && reserved(samples[n].Metric) {
		n++
	}
	return n
}

// reserved says whether metric is one only Vigil writes: a collector's
// health and the window store's size.
func reserved(metric string) bool {
	switch metric {
	case MetricUp, MetricErrors, MetricDuration, MetricSamples, MetricStoreSeries, MetricStoreMaxSeries:
		return true
	}
	return false
}

// Window store metrics, written by the daemon after each collection with
// the collector's label, so a rule can page before store.max_series
// refuses new series.
const (
	MetricStoreSeries    = "vigil.store.series"
	MetricStoreMaxSeries = "vigil.store.max_series"
)

// Labels every sample of a collector carries, besides the target's tags.
const (
	LabelCollector = "collector"
	LabelTarget    = "target"
)
