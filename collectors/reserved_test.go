package collectors_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/engine"
)

// A page naming its series as Vigil's own (UTF-8 names are valid on a
// page) neither overwrites the target's health nor passes as Vigil's own
// series, which store.max_series never refuses.
func TestTargetCannotWriteVigilsSeries(t *testing.T) {
	var page strings.Builder
	page.WriteString("{\"vigil.collector.up\"} 1\n")
	for i := range 500 {
		fmt.Fprintf(&page, "{\"vigil.collector.samples\",pod=\"p%d\"} 1\n", i)
	}
	page.WriteString("{\"vigil.store.max_series\"} 1e9\n")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprint(w, page.String())
	}))
	defer srv.Close()
	cs := build(t, load(t, `collectors:
  - name: flood
    type: prometheus
    timeout: 5s
    targets: [{name: noisy, address: "`+srv.URL+`/metrics"}]`))
	defer cs[0].(*collectors.TargetCollector).Close()
	out, err := cs[0].Collect(context.Background(), time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if own := collectors.OwnSamples(out); own != 4 || len(out) != 4 {
		t.Fatalf("%d samples, %d of them Vigil's own: want the target's 4 health samples and none of the page's", len(out), own)
	}
	for _, s := range out {
		if s.Metric == collectors.MetricUp && s.Value != 1 {
			t.Errorf("vigil.collector.up = %v", s.Value)
		}
	}
	// As the daemon stores them.
	st := engine.NewStore(time.Hour)
	st.SetMaxSeries(10)
	st.AppendOwn(out[:collectors.OwnSamples(out)]...)
	st.Append(out[collectors.OwnSamples(out):]...)
	if held, _, _ := st.SeriesLimits(); held != 4 {
		t.Errorf("%d series held, want the 4 health series", held)
	}
}
