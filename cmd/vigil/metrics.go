package main

import (
	"github.com/prometheus/client_golang/prometheus"
	promcollectors "github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/model"
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
}

func newMetrics(reg prometheus.Registerer, colls func() []collectors.Collector) *metrics {
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
	}
	reg.MustRegister(m.evalDuration, m.rulesLoaded, m.reloadSuccess, m.ruleFileOK, m.reloadTime, m.reloads, m.alerts,
		m.stateSaveFails, collectorStats{colls},
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
