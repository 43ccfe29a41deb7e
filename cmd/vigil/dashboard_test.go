package main

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

// dashboardPath is the Grafana dashboard shipped for Vigil's own metrics.
const dashboardPath = "../../deploy/grafana/vigil.json"

// promqlKeywords are PromQL words that look like metric names but are not.
var promqlKeywords = map[string]bool{
	"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
	"bool": true, "and": true, "or": true, "unless": true, "offset": true, "atan2": true, "inf": true, "nan": true,
}

// metricNames scans a PromQL expression for the metric names it selects:
// identifiers outside label matchers ({...}), ranges ([...]) and strings
// that are not functions, aggregations (followed by "(", "by" or
// "without") or keywords, and not the label
// lists of by/without/on/ignoring/group_left/group_right. It is not a
// parser, but it errs on the side of reporting a name.
func metricNames(expr string) []string {
	var names []string
	isStart := func(c byte) bool { return c == '_' || c == ':' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }
	isPart := func(c byte) bool { return isStart(c) || c >= '0' && c <= '9' }
	skipTo := func(i int, close byte) int {
		for i < len(expr) && expr[i] != close {
			if expr[i] == '"' || expr[i] == '\'' || expr[i] == '`' {
				q := expr[i]
				for i++; i < len(expr) && expr[i] != q; i++ {
					if expr[i] == '\\' {
						i++
					}
				}
			}
			i++
		}
		return i
	}
	labelList := false // the next (...) lists labels
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case c == '{':
			i = skipTo(i+1, '}')
		case c == '[':
			i = skipTo(i+1, ']')
		case c == '"' || c == '\'' || c == '`':
			i = skipTo(i+1, c)
		case c == '(' && labelList:
			i = skipTo(i+1, ')')
			labelList = false
		case c >= '0' && c <= '9' || c == '.' || c == '$':
			for i+1 < len(expr) && (isPart(expr[i+1]) || expr[i+1] == '.') {
				i++
			}
		case isStart(c):
			j := i
			for j < len(expr) && isPart(expr[j]) {
				j++
			}
			word := expr[i:j]
			k := j
			for k < len(expr) && expr[k] == ' ' {
				k++
			}
			lower := strings.ToLower(word)
			next := expr[k:]
			grouping := func(w string) bool {
				return strings.HasPrefix(strings.ToLower(next), w) && (len(next) == len(w) || !isPart(next[len(w)]))
			}
			switch {
			case grouping("by") || grouping("without"): // an aggregation: sum by (x) (...)
			case lower == "by" || lower == "without" || lower == "on" || lower == "ignoring" ||
				lower == "group_left" || lower == "group_right":
				labelList = true
			case promqlKeywords[lower]:
			case k < len(expr) && expr[k] == '(':
			default:
				names = append(names, word)
			}
			i = j - 1
		}
	}
	return names
}

func TestMetricNamesScanner(t *testing.T) {
	for expr, want := range map[string][]string{
		`histogram_quantile(0.99, sum by (collector, le) (rate(vigil_collector_duration_seconds_bucket{job=~"$job"}[$__rate_interval])))`: {"vigil_collector_duration_seconds_bucket"},
		`time() - vigil_collector_last_success_timestamp_seconds{instance=~"a{b}"}`:                                                       {"vigil_collector_last_success_timestamp_seconds"},
		`sum without (target) (a_total) / on (x) group_left (y) b > bool 1e3 offset 5m unless c`:                                          {"a_total", "b", "c"},
		`up{job="x, y"} and  absent(go_goroutines[5m:1m])`:                                                                                {"up", "go_goroutines"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("%s: got %q, want %q", expr, got, want)
		}
	}
}

// dashboardQueries returns every PromQL query of the dashboard: each
// panel target's expr, and the metric selectors of the label_values()
// variables.
func dashboardQueries(t *testing.T, raw []byte) []string {
	var d struct {
		Templating struct {
			List []struct {
				Name, Type string
				Query      json.RawMessage
			}
		}
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatalf("%s: %v", dashboardPath, err)
	}
	var exprs []string
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if s, ok := x.(string); ok && k == "expr" {
					exprs = append(exprs, s)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	var all map[string]any
	json.Unmarshal(raw, &all)
	walk(all["panels"])
	labelValues := regexp.MustCompile(`^label_values\((.+),\s*[a-zA-Z_][a-zA-Z0-9_]*\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			json.Unmarshal(v.Query, &q.Query) // the older plain-string form
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Errorf("variable %s: query %q is not label_values(selector, label)", v.Name, q.Query)
			continue
		}
		exprs = append(exprs, m[1])
	}
	return exprs
}

// Every metric the Grafana dashboard's queries name is served by a running
// `vigil run` (histograms by their _bucket, _sum and _count series), and
// the dashboard has the panels an operator looks for.
func TestGrafanaDashboardMetricsExist(t *testing.T) {
	raw, err := os.ReadFile(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	exprs := dashboardQueries(t, raw)
	if len(exprs) < 10 {
		t.Fatalf("only %d queries in the dashboard", len(exprs))
	}

	// A daemon that has collected, evaluated and delivered, so that every
	// family has series.
	h := newHarness(t, strings.Replace(upRule, "for: 1m", "for: 0s", 1))
	h.tick(3)
	h.waitFor("a delivery", func() bool { return strings.Contains(h.console.String(), "MemberUp") })
	mfs := h.families()
	served := map[string]bool{}
	for name, mf := range mfs {
		served[name] = true
		if mf.GetType().String() == "HISTOGRAM" {
			served[name+"_bucket"], served[name+"_sum"], served[name+"_count"] = true, true, true
		}
	}
	named := map[string]bool{}
	for _, e := range exprs {
		names := metricNames(e)
		if len(names) == 0 {
			t.Errorf("query names no metric: %s", e)
		}
		for _, n := range names {
			named[n] = true
			if !served[n] {
				t.Errorf("query %q names %s, which /metrics does not serve", e, n)
			}
		}
	}
	var list []string
	for n := range named {
		list = append(list, n)
	}
	sort.Strings(list)
	t.Logf("metrics the dashboard reads: %s", strings.Join(list, " "))
	for _, want := range []string{"vigil_collector_duration_seconds_bucket", "vigil_collector_last_success_timestamp_seconds",
		"vigil_collector_samples", "vigil_collector_series", "vigil_rule_evaluation_failures_total", "vigil_alerts",
		"vigil_notifications_sent_total", "vigil_notifications_failed_total", "vigil_build_info"} {
		if !named[want] {
			t.Errorf("no panel reads %s", want)
		}
	}
}
