package main

import (
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/config"
	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// applyStoreBounds sets the window store's bounds from the rules and the
// config's store: section, at start and at every reload (the samples'
// retention is the engine's SetRules').
func (d *daemon) applyStoreBounds(rs *rules.RuleSet, cfg *config.Config) {
	d.store.SetSeriesRetention(engine.SeriesRetentionFor(rs, time.Duration(cfg.Store.RetentionSlack)))
	d.store.SetMaxSeries(cfg.Store.MaxSeries)
}

// appendStoreSize writes the store's size and bound, as they are before
// this collection is stored, as samples of the collector, so a rule can
// page before max_series refuses new series (examples/rules/vigil.yaml).
// Each collector has its own series: two collectors never write one
// series at the same time.
func (d *daemon) appendStoreSize(collector string, slot time.Time) {
	held, limit, _ := d.store.SeriesLimits()
	ls := model.Labels{collectors.LabelCollector: collector}
	d.store.AppendOwn(
		model.Sample{Metric: collectors.MetricStoreSeries, Labels: ls, Value: float64(held), Time: slot},
		model.Sample{Metric: collectors.MetricStoreMaxSeries, Labels: ls, Value: float64(limit), Time: slot})
}

// refusedWarning is when the max_series warning was last logged, and the
// refused count it reported.
type refusedWarning struct {
	mu     sync.Mutex
	at     time.Time
	logged uint64
}

// warnRefused logs, at most once a minute, that samples of new series
// were refused since the last warning: a flood of new series would
// otherwise flood the log too.
func (d *daemon) warnRefused(collector string) {
	held, limit, refused := d.store.SeriesLimits()
	w := &d.refusedWarn
	w.mu.Lock()
	defer w.mu.Unlock()
	if refused == w.logged {
		return
	}
	now := d.o.Now()
	if !w.at.IsZero() && now.Sub(w.at) < time.Minute {
		return
	}
	d.log.Warn("window store full: samples of new series refused (store.max_series)",
		"refused", refused-w.logged, "series", held, "max_series", limit, "collector", collector)
	w.at, w.logged = now, refused
}

// storeStats are the window store's size and bound, read at scrape time.
type storeStats struct{ s *engine.Store }

var (
	storeSeriesDesc = prometheus.NewDesc("vigil_store_series",
		"Series the window store holds, all collectors (a series that stopped reporting counts until it is forgotten).", nil, nil)
	storeMaxDesc = prometheus.NewDesc("vigil_store_max_series",
		"The store's bound on series (store.max_series); 0: none.", nil, nil)
	storeRefusedDesc = prometheus.NewDesc("vigil_store_series_refused_total",
		"Samples refused because they would start a series beyond store.max_series (a series refused at every collection counts every time).", nil, nil)
)

func (s storeStats) Describe(ch chan<- *prometheus.Desc) {
	ch <- storeSeriesDesc
	ch <- storeMaxDesc
	ch <- storeRefusedDesc
}

func (s storeStats) Collect(ch chan<- prometheus.Metric) {
	held, limit, refused := s.s.SeriesLimits()
	ch <- prometheus.MustNewConstMetric(storeSeriesDesc, prometheus.GaugeValue, float64(held))
	ch <- prometheus.MustNewConstMetric(storeMaxDesc, prometheus.GaugeValue, float64(limit))
	ch <- prometheus.MustNewConstMetric(storeRefusedDesc, prometheus.CounterValue, float64(refused))
}
