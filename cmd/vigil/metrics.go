package main

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	promcollectors "github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// metrics is the daemon's one set of self-metrics, on its private registry
// (importing etcd's server fills the default one with etcd_* families).
// The dispatcher (notifications per channel) and the scheduler (missed
// slots) register their own on the same registry.
type metrics struct {
	evalDuration   *prometheus.HistogramVec
	rulesLoaded    prometheus.Gauge
	reloadSuccess  prometheus.Gauge
	ruleFileOK     *prometheus.GaugeVec
	reloadTime     prometheus.Gauge
	reloads        *prometheus.CounterVec
	alerts         *prometheus.GaugeVec
	stateSaveFails prometheus.Counter
	recordFails    prometheus.Counter

	collDuration    *prometheus.HistogramVec // collector, target
	collLastSuccess *prometheus.GaugeVec     // collector, target
	collSamples     *prometheus.GaugeVec     // collector
	ruleFailures    *prometheus.CounterVec   // group, rule
	// ruleSeries are the (group, rule) pairs with a ruleFailures series,
	// so that a reload deletes those of removed rules.
	ruleSeries map[[2]string]bool
}

// newMetrics registers the daemon's metrics on reg. colls lists the
// running collectors and series counts the window store's series per
// collector, both read at scrape time.
func newMetrics(reg prometheus.Registerer, colls func() []collectors.Collector, series func() map[string]int) *metrics {
	m := &metrics{
		evalDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_rule_group_eval_duration_seconds",
			Help:    "Time to evaluate one rule group, per group.",
			Buckets: []float64{.0005, .001, .005, .01, .05, .1, .5, 1, 5},
		}, []string{"group"}),
		rulesLoaded: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_rules_loaded", Help: "Rules in the rule set being evaluated.",
		}),
		reloadSuccess: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_reload_success", Help: "1 if the last rule/config reload loaded everything, 0 if the old config or some files' last good rules are kept.",
		}),
		ruleFileOK: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_rule_file_load_success",
			Help: "1 if the rule file's newest version is in use, 0 if it does not load (quarantined: its last good version, if any, is used).",
		}, []string{"file"}),
		reloadTime: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vigil_reload_last_success_timestamp_seconds", Help: "When rules were last applied (all files, or all but the quarantined ones).",
		}),
		reloads: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_reloads_total", Help: "Reload attempts that found changes, by result: success, partial (some rule files quarantined) or failure.",
		}, []string{"result"}),
		alerts: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_alerts", Help: "Alerts by state after the last evaluation.",
		}, []string{"state"}),
		stateSaveFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_state_save_failures_total", Help: "Failed writes of the state file.",
		}),
		recordFails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vigil_record_failures_total", Help: "Collections that could not be written to the recording (config record:).",
		}),
		collDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vigil_collector_duration_seconds",
			Help:    "Time one target's collection took, per collector and target (failed collections included).",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"collector", "target"}),
		collLastSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_collector_last_success_timestamp_seconds",
			Help: "Collection time of the target's last successful collection (no series before its first).",
		}, []string{"collector", "target"}),
		collSamples: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vigil_collector_samples",
			Help: "Samples the collector's last collection yielded, all targets, self-metrics excluded.",
		}, []string{"collector"}),
		ruleFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vigil_rule_evaluation_failures_total",
			Help: "Evaluations of the rule that failed (the rule is then unhealthy), per group and rule.",
		}, []string{"group", "rule"}),
		ruleSeries: map[[2]string]bool{},
	}
	reg.MustRegister(m.evalDuration, m.rulesLoaded, m.reloadSuccess, m.ruleFileOK, m.reloadTime, m.reloads, m.alerts,
		m.stateSaveFails, m.recordFails, m.collDuration, m.collLastSuccess, m.collSamples, m.ruleFailures,
		collectorStats{colls}, storeSeries(series),
		promcollectors.NewGoCollector(), promcollectors.NewProcessCollector(promcollectors.ProcessCollectorOpts{}),
		buildInfo())
	for _, s := range []model.AlertState{model.StatePending, model.StateFiring, model.StateResolved} {
		m.alerts.WithLabelValues(s.String()).Set(0)
	}
	m.reloads.WithLabelValues("success").Add(0)
	m.reloads.WithLabelValues("partial").Add(0)
	m.reloads.WithLabelValues("failure").Add(0)
	return m
}

// observeCollection records one collection of collector name at slot from
// the self-metrics among its samples: each target's duration, its last
// success, and the samples the targets yielded.
func (m *metrics) observeCollection(name string, samples []model.Sample, slot time.Time) {
	total := 0.0
	for _, s := range samples {
		switch s.Metric {
		case collectors.MetricDuration:
			m.collDuration.WithLabelValues(name, s.Labels[collectors.LabelTarget]).Observe(s.Value)
		case collectors.MetricUp:
			if s.Value == 1 {
				m.collLastSuccess.WithLabelValues(name, s.Labels[collectors.LabelTarget]).Set(float64(slot.UnixNano()) / 1e9)
			}
		case collectors.MetricSamples:
			total += s.Value
		}
	}
	m.collSamples.WithLabelValues(name).Set(total)
}

// forgetCollectors deletes the series of collectors and targets that old
// had and now has not, so that a removed target's last success does not
// look like a target that stopped working.
func (m *metrics) forgetCollectors(old, now []collectors.Collector) {
	keep := map[[2]string]bool{}
	for _, c := range now {
		keep[[2]string{c.Name(), ""}] = true
		if tc, ok := c.(*collectors.TargetCollector); ok {
			for _, t := range tc.Targets() {
				keep[[2]string{c.Name(), t}] = true
			}
		}
	}
	for _, c := range old {
		if !keep[[2]string{c.Name(), ""}] {
			m.collDuration.DeletePartialMatch(prometheus.Labels{"collector": c.Name()})
			m.collLastSuccess.DeletePartialMatch(prometheus.Labels{"collector": c.Name()})
			m.collSamples.DeleteLabelValues(c.Name())
			continue
		}
		if tc, ok := c.(*collectors.TargetCollector); ok {
			for _, t := range tc.Targets() {
				if !keep[[2]string{c.Name(), t}] {
					m.collDuration.DeleteLabelValues(c.Name(), t)
					m.collLastSuccess.DeleteLabelValues(c.Name(), t)
				}
			}
		}
	}
}

// setRules gives every rule of rs a failure counter (0 until it fails) and
// deletes the counters of rules that are gone.
func (m *metrics) setRules(rs *rules.RuleSet) {
	now := map[[2]string]bool{}
	for _, r := range rs.Rules() {
		k := [2]string{r.Group, r.Name}
		now[k] = true
		m.ruleFailures.WithLabelValues(k[0], k[1])
	}
	for k := range m.ruleSeries {
		if !now[k] {
			m.ruleFailures.DeleteLabelValues(k[0], k[1])
		}
	}
	m.ruleSeries = now
}

// ruleFailed counts a failed evaluation of r.
func (m *metrics) ruleFailed(r *rules.Rule) {
	m.ruleFailures.WithLabelValues(r.Group, r.Name).Inc()
}

// storeSeries is vigil_collector_series, read from the window store at
// scrape time.
type storeSeries func() map[string]int

var seriesDesc = prometheus.NewDesc("vigil_collector_series",
	"Series the window store holds per collector (self-metrics included; a series that stopped reporting counts until it expires).",
	[]string{"collector"}, nil)

func (s storeSeries) Describe(ch chan<- *prometheus.Desc) { ch <- seriesDesc }

func (s storeSeries) Collect(ch chan<- prometheus.Metric) {
	for c, n := range s() {
		ch <- prometheus.MustNewConstMetric(seriesDesc, prometheus.GaugeValue, float64(n), c)
	}
}

// collectorStats reads the collectors' own running totals at scrape time.
type collectorStats struct{ colls func() []collectors.Collector }

var (
	collectionsDesc = prometheus.NewDesc("vigil_collector_collections_total", "Collections run, per collector.", []string{"collector"}, nil)
	collErrorsDesc  = prometheus.NewDesc("vigil_collector_errors_total", "Failed target collections, per collector and target.", []string{"collector", "target"}, nil)
	sampleLimitDesc = prometheus.NewDesc("vigil_collector_exceeded_sample_limit_total", "Target collections failed by sample_limit, per collector.", []string{"collector"}, nil)
	labelLimitDesc  = prometheus.NewDesc("vigil_collector_exceeded_label_limit_total", "Target collections failed by label_limit, per collector.", []string{"collector"}, nil)
)

func (c collectorStats) Describe(ch chan<- *prometheus.Desc) {
	ch <- collectionsDesc
	ch <- collErrorsDesc
	ch <- sampleLimitDesc
	ch <- labelLimitDesc
}

func (c collectorStats) Collect(ch chan<- prometheus.Metric) {
	for _, cl := range c.colls() {
		tc, ok := cl.(*collectors.TargetCollector)
		if !ok {
			continue
		}
		st := tc.Stats()
		ch <- prometheus.MustNewConstMetric(collectionsDesc, prometheus.CounterValue, float64(st.Collections), tc.Name())
		ch <- prometheus.MustNewConstMetric(sampleLimitDesc, prometheus.CounterValue, float64(st.SampleLimitHits), tc.Name())
		ch <- prometheus.MustNewConstMetric(labelLimitDesc, prometheus.CounterValue, float64(st.LabelLimitHits), tc.Name())
		for target, n := range st.TargetErrs {
			ch <- prometheus.MustNewConstMetric(collErrorsDesc, prometheus.CounterValue, float64(n), tc.Name(), target)
		}
	}
}

// buildInfo is vigil_build_info, as prometheus_build_info: 1, with what
// `vigil --version` says as labels, so a dashboard can show which version
// runs where.
func buildInfo() prometheus.Collector {
	v, commit, goVersion := buildVersion()
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "vigil_build_info",
		Help:        "1, labelled with the version, commit and Go version this Vigil was built from.",
		ConstLabels: prometheus.Labels{"version": v, "revision": commit, "goversion": goVersion},
	})
	g.Set(1)
	return g
}
