package collectors_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/collectors"
)

const limitsPage = `# TYPE read_me gauge
read_me{a="1"} 1
read_me{a="2"} 2
# TYPE wide gauge
wide{a="1",b="2",c="3",d="4"} 1
# TYPE unread counter
unread_total{x="1"} 5
unread_total{x="2"} 6
unread_total{x="3"} 7
`

func promCollector(t *testing.T, page, extra string) (*collectors.TargetCollector, string) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write([]byte(page))
	}))
	t.Cleanup(srv.Close)
	cs := build(t, load(t, "collectors:\n  - name: app\n    type: prometheus\n"+extra+"    targets:\n      - {name: t1, address: \""+srv.URL+"/metrics\"}\n"))
	return cs[0].(*collectors.TargetCollector), "t1"
}

// TestSelectKeepsWhatRulesRead checks that a selected collector yields
// only the metrics selected, plus its self-metrics, and everything again
// after Select(Everything()).
func TestSelectKeepsWhatRulesRead(t *testing.T) {
	c, target := promCollector(t, limitsPage, "")
	ctx := context.Background()
	out, err := c.Collect(ctx, time.Unix(100, 0))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := find(out, "unread_total", target); !ok {
		t.Fatal("unselected collector lacks unread_total")
	}
	c.Select(collectors.Only("read_me"))
	out, err = c.Collect(ctx, time.Unix(110, 0))
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]int{}
	for _, s := range out {
		names[s.Metric]++
	}
	if names["read_me"] != 2 || names["unread_total"] != 0 || names["wide"] != 0 {
		t.Fatalf("selected collection: %v", names)
	}
	for _, m := range []string{collectors.MetricUp, collectors.MetricErrors, collectors.MetricDuration, collectors.MetricSamples} {
		if names[m] != 1 {
			t.Errorf("self-metric %s: %d samples", m, names[m])
		}
	}
	if s, _ := find(out, collectors.MetricSamples, target); s.Value != 2 {
		t.Errorf("samples %v, want 2 (the selected ones)", s.Value)
	}
	c.Select(collectors.Everything())
	out, _ = c.Collect(ctx, time.Unix(120, 0))
	if _, ok := find(out, "unread_total", target); !ok {
		t.Fatal("Everything lacks unread_total")
	}
}

// TestLimitsFailTheWholeCollection checks Prometheus' sample_limit and
// label_limit: over either, the target yields none of its samples, is
// down, and the limit's counter moves; the selection is applied first.
func TestLimitsFailTheWholeCollection(t *testing.T) {
	ctx := context.Background()
	t.Run("sample_limit", func(t *testing.T) {
		c, target := promCollector(t, limitsPage, "    sample_limit: 5\n")
		out, err := c.Collect(ctx, time.Unix(100, 0))
		if !errors.Is(err, collectors.ErrSampleLimit) || !strings.Contains(err.Error(), "nothing of this collection is stored") {
			t.Fatalf("err %v", err)
		}
		for _, s := range out {
			if !strings.HasPrefix(s.Metric, "vigil.collector.") {
				t.Fatalf("a sample of a failed collection was kept: %v", s)
			}
		}
		if up, _ := find(out, collectors.MetricUp, target); up.Value != 0 {
			t.Errorf("up %v", up.Value)
		}
		if st := c.Stats(); st.SampleLimitHits != 1 || st.TargetErrs[target] != 1 {
			t.Errorf("stats %+v", st)
		}
		// 3 samples of the 6 selected: within the limit.
		c.Select(collectors.Only("read_me", "wide"))
		if _, err := c.Collect(ctx, time.Unix(110, 0)); err != nil {
			t.Fatalf("within the limit after selection: %v", err)
		}
	})
	t.Run("label_limit", func(t *testing.T) {
		// wide has 4 labels, plus collector and target: 6.
		c, target := promCollector(t, limitsPage, "    label_limit: 5\n")
		out, err := c.Collect(ctx, time.Unix(100, 0))
		if !errors.Is(err, collectors.ErrLabelLimit) || !strings.Contains(err.Error(), "metric: wide, number of labels: 6, limit: 5") {
			t.Fatalf("err %v", err)
		}
		if _, ok := find(out, "read_me", target); ok {
			t.Fatal("samples within the label limit were kept from a failed collection")
		}
		if st := c.Stats(); st.LabelLimitHits != 1 {
			t.Errorf("stats %+v", st)
		}
		c.Select(collectors.Only("read_me"))
		if _, err := c.Collect(ctx, time.Unix(110, 0)); err != nil {
			t.Fatalf("wide not read: %v", err)
		}
	})
	t.Run("negative", func(t *testing.T) {
		_, err := collectors.Build(load(t, "collectors:\n  - name: app\n    type: prometheus\n    sample_limit: -1\n    label_limit: -2\n    targets: [{address: \"http://127.0.0.1:1/metrics\"}]\n"), nil)
		if err == nil || !strings.Contains(err.Error(), "sample_limit must not be negative") || !strings.Contains(err.Error(), "label_limit must not be negative") {
			t.Fatalf("err %v", err)
		}
	})
}
