package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	pmodel "github.com/prometheus/common/model"
)

// families parses the daemon's /metrics as Prometheus would.
func (h *harness) families() map[string]*dto.MetricFamily {
	h.t.Helper()
	code, body := h.get("/metrics", "")
	if code != http.StatusOK {
		h.t.Fatalf("/metrics: %d", code)
	}
	p := expfmt.NewTextParser(pmodel.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		h.t.Fatalf("/metrics does not parse: %v", err)
	}
	return mfs
}

// value is the value of family name's series with exactly labels (pairs),
// and whether it exists; a histogram gives its count.
func value(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
next:
	for _, m := range mf.GetMetric() {
		if len(m.GetLabel()) != len(want) {
			continue
		}
		for _, l := range m.GetLabel() {
			if want[l.GetName()] != l.GetValue() {
				continue next
			}
		}
		switch {
		case m.Gauge != nil:
			return m.GetGauge().GetValue(), true
		case m.Counter != nil:
			return m.GetCounter().GetValue(), true
		case m.Histogram != nil:
			return float64(m.GetHistogram().GetSampleCount()), true
		}
	}
	return 0, false
}

// brokenRule compiles but fails at every evaluation while the member is
// up: false || error is an error.
const brokenRule = `
  - name: broken
    interval: 10s
    rules:
      - name: Broken
        severity: low
        condition: max("etcd.can_connect") == 0 || labels["missing"] == "x"
  - name: app
    interval: 10s
    rules:
      - name: AppBusy
        severity: low
        condition: max("app_queue") > 100 && max("app_up") == 1 && max("app_requests_total") > 0
`

// The collection and evaluation metrics move as an operator watching
// /metrics would expect: a scrape target that goes down keeps its last
// success at the time it last worked while its duration histogram goes on
// counting; samples and series per collector; a rule whose evaluation
// fails counts each failure, a healthy one stays at 0.
func TestSelfMetricsMove(t *testing.T) {
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "app_requests_total 7\napp_up 1\napp_queue 3")
	}))
	defer page.Close()
	h := newHarness(t, upRule+brokenRule)
	h.d.Stop()
	h.write("vigil.yaml", strings.Replace(baseConfig(sharedEtcd(t), ""), "collectors:\n", `collectors:
  - name: app
    type: prometheus
    interval: 10s
    timeout: 2s
    targets: [{name: web, address: "`+page.URL+`/metrics"}]
`, 1))
	h.start()

	h.tick(3)
	mfs := h.families()
	lastOK := float64(h.now().Unix())
	check := func(mfs map[string]*dto.MetricFamily, want float64, name string, labels ...string) {
		t.Helper()
		if v, ok := value(mfs, name, labels...); !ok || v != want {
			t.Errorf("%s%v = %v (present %v), want %v", name, labels, v, ok, want)
		}
	}
	check(mfs, lastOK, "vigil_collector_last_success_timestamp_seconds", "collector", "app", "target", "web")
	check(mfs, lastOK, "vigil_collector_last_success_timestamp_seconds", "collector", "etcd", "target", "m0")
	check(mfs, 3, "vigil_collector_duration_seconds", "collector", "app", "target", "web")
	check(mfs, 3, "vigil_collector_samples", "collector", "app")
	// 3 scraped series, the 4 self-metrics of the one target and the
	// store's size and bound written with the collector's label.
	check(mfs, 9, "vigil_collector_series", "collector", "app")
	check(mfs, 3, "vigil_rule_evaluation_failures_total", "group", "broken", "rule", "Broken")
	check(mfs, 0, "vigil_rule_evaluation_failures_total", "group", "members", "rule", "MemberUp")
	// Only what rules read is collected: the etcd member gives can_connect.
	if v, _ := value(mfs, "vigil_collector_samples", "collector", "etcd"); v < 1 {
		t.Errorf("etcd collector samples %v", v)
	}

	page.Close() // the target goes down
	h.tick(4)
	mfs = h.families()
	check(mfs, lastOK, "vigil_collector_last_success_timestamp_seconds", "collector", "app", "target", "web")
	check(mfs, float64(h.now().Unix()), "vigil_collector_last_success_timestamp_seconds", "collector", "etcd", "target", "m0")
	check(mfs, 7, "vigil_collector_duration_seconds", "collector", "app", "target", "web")
	check(mfs, 0, "vigil_collector_samples", "collector", "app")
	check(mfs, 4, "vigil_collector_errors_total", "collector", "app", "target", "web")
	check(mfs, 7, "vigil_rule_evaluation_failures_total", "group", "broken", "rule", "Broken")
	check(mfs, 0, "vigil_rule_evaluation_failures_total", "group", "members", "rule", "MemberUp")

	// A reload that removes the collector and the rule removes their series.
	h.write("vigil.yaml", baseConfig(sharedEtcd(t), ""))
	h.write("rules/etcd.yaml", upRule)
	h.waitFor("the reload", func() bool { return !h.hasRule("Broken") && len(h.d.collectors()) == 1 })
	mfs = h.families()
	for _, name := range []string{"vigil_collector_last_success_timestamp_seconds", "vigil_collector_duration_seconds"} {
		if _, ok := value(mfs, name, "collector", "app", "target", "web"); ok {
			t.Errorf("%s of the removed collector still served", name)
		}
	}
	if _, ok := value(mfs, "vigil_rule_evaluation_failures_total", "group", "broken", "rule", "Broken"); ok {
		t.Error("failure counter of the removed rule still served")
	}
}
