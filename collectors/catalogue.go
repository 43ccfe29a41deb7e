package collectors

import (
	"sort"

	"github.com/vigil-alerts/vigil/collectors/etcd"
	"github.com/vigil-alerts/vigil/collectors/exec"
	"github.com/vigil-alerts/vigil/collectors/probe"
	"github.com/vigil-alerts/vigil/model"
)

// MetricDecl declares a metric a prometheus or exec target produces, so
// rules reading it can be checked (`metrics:` in a collector's config).
type MetricDecl struct {
	Name   string           `yaml:"name"`
	Kind   model.MetricKind `yaml:"kind"` // gauge (default) or counter
	Labels []string         `yaml:"labels"`
	Help   string           `yaml:"help"`
}

// HealthMetrics are emitted for every target of every collector.
var HealthMetrics = []model.MetricInfo{
	{Name: MetricUp, Kind: model.Gauge, Unit: "1/0", Doc: "1 when everything asked of the target was gathered this collection, else 0"},
	{Name: MetricErrors, Kind: model.Counter, Unit: "count", Doc: "failed collections of this target since Vigil started"},
	{Name: MetricDuration, Kind: model.Gauge, Unit: "seconds", Doc: "how long the target's collection took"},
	{Name: MetricSamples, Kind: model.Gauge, Unit: "count", Doc: "samples the target yielded (self-metrics excluded)"},
}

// StoreMetrics are the window store's size and bound, written after
// every collection with the collector's label.
var StoreMetrics = []model.MetricInfo{
	{Name: MetricStoreSeries, Kind: model.Gauge, Unit: "count", Doc: "series the window store holds, all collectors together"},
	{Name: MetricStoreMaxSeries, Kind: model.Gauge, Unit: "count", Doc: "`store.max_series`: beyond it new series are refused; 0 when there is no bound"},
}

// ProbeMetrics are what a probe target gives.
var ProbeMetrics = []model.MetricInfo{
	{Name: probe.MetricCanConnect, Kind: model.Gauge, Unit: "1/0", Doc: "TCP: the connection was established. HTTP: a response arrived (any status)"},
	{Name: probe.MetricLatency, Kind: model.Gauge, Unit: "seconds", Doc: "TCP: time to connect. HTTP: time to the response headers, new connection included. Absent when `can_connect` is 0"},
	{Name: probe.MetricStatusCode, Kind: model.Gauge, Unit: "HTTP status", Doc: "HTTP only; redirects are reported, not followed"},
}

// ProbeLabels are every probe sample's own labels.
var ProbeLabels = []string{probe.LabelProtocol, "probe.vantage_point"}

// ExecMetrics are what every exec target gives besides its output.
var ExecMetrics = []model.MetricInfo{
	{Name: exec.MetricExitCode, Kind: model.Gauge, Unit: "code", Doc: "the command's exit status; `-1` when killed (timeout, output limit) or not started"},
	{Name: exec.MetricDuration, Kind: model.Gauge, Unit: "seconds", Doc: "run time"},
	{Name: exec.MetricTruncated, Kind: model.Gauge, Unit: "1/0", Doc: "stdout passed `max_output_bytes` and was cut"},
}

// Catalogue is what a set of configured collectors can produce: the
// metrics rules may read and the labels they may name.
type Catalogue struct {
	Metrics map[string]model.MetricInfo
	// Labels holds every label name a sample can carry.
	Labels map[string]bool
	// Open names collectors whose metrics are not all known in advance
	// (a prometheus page, exec output) and were not declared: a metric
	// missing from the catalogue may come from them.
	Open []string
}

// NewCatalogue builds the catalogue of cfgs, plus the metrics and labels
// seen in samples (a recording: what targets really expose).
func NewCatalogue(cfgs []Config, seen []model.Sample) *Catalogue {
	c := &Catalogue{Metrics: map[string]model.MetricInfo{}, Labels: map[string]bool{LabelCollector: true, LabelTarget: true}}
	add := func(ms []model.MetricInfo, labels ...string) {
		for _, m := range ms {
			if old, ok := c.Metrics[m.Name]; ok {
				m.Labels = append(append([]string(nil), old.Labels...), m.Labels...)
			}
			c.Metrics[m.Name] = m
			for _, l := range append(m.Labels, labels...) {
				c.Labels[l] = true
			}
		}
	}
	if len(cfgs) > 0 {
		add(HealthMetrics)
		add(StoreMetrics)
	}
	for _, cfg := range cfgs {
		for _, t := range cfg.Targets {
			for k := range t.Tags {
				c.Labels[k] = true
			}
		}
		declared := make([]model.MetricInfo, 0, len(cfg.Metrics))
		for _, d := range cfg.Metrics {
			kind := d.Kind
			if kind == "" {
				kind = model.Gauge
			}
			declared = append(declared, model.MetricInfo{Name: d.Name, Kind: kind, Labels: d.Labels, Doc: d.Help})
		}
		add(declared)
		switch cfg.Type {
		case TypeEtcd:
			add(etcd.StatusMetrics, etcd.MemberLabels...)
			add(etcd.PageMetrics, etcd.MemberLabels...)
		case TypeProbe:
			add(ProbeMetrics, ProbeLabels...)
			if cfg.Probe != nil {
				for k := range cfg.Probe.VantageTags {
					c.Labels[k] = true
				}
			}
		case TypeExec:
			add(ExecMetrics)
			open := false
			for _, t := range cfg.Targets {
				if t.Format == exec.FormatValue && t.Metric != "" {
					add([]model.MetricInfo{{Name: t.Metric, Kind: model.Gauge, Doc: "the first field of `" + t.Name + "`'s output"}})
				} else {
					open = true
				}
			}
			if open && len(cfg.Metrics) == 0 {
				c.Open = append(c.Open, cfg.Name)
			}
		case TypePrometheus:
			if len(cfg.Metrics) == 0 {
				c.Open = append(c.Open, cfg.Name)
			}
		}
	}
	for _, s := range seen {
		if _, ok := c.Metrics[s.Metric]; !ok {
			c.Metrics[s.Metric] = model.MetricInfo{Name: s.Metric, Kind: model.Gauge, Doc: "seen in a recording"}
		}
		for k := range s.Labels {
			c.Labels[k] = true
		}
	}
	sort.Strings(c.Open)
	return c
}

// Names returns the catalogue's metric names, sorted.
func (c *Catalogue) Names() []string {
	out := make([]string, 0, len(c.Metrics))
	for n := range c.Metrics {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

// LabelNames returns the known label names, sorted.
func (c *Catalogue) LabelNames() []string {
	out := make([]string, 0, len(c.Labels))
	for n := range c.Labels {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}
