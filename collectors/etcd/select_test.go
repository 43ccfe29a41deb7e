package etcd

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/collectors/etcd/etcdtest"
	"github.com/vigil-alerts/vigil/collectors/prom"
	"github.com/vigil-alerts/vigil/model"
)

// pageMetrics lists every metric derived from the page.
func pageMetrics() []string {
	out := []string{"etcd.leader.latency", "etcd.leader.latency.stddev"}
	for _, v := range pageValues {
		out = append(out, v.metric)
	}
	for _, v := range pageRates {
		out = append(out, v.metric)
	}
	for _, v := range pageDurations {
		out = append(out, v.metric+".mean", v.metric+".p99")
	}
	return out
}

func derived(t *testing.T, text []byte, sel *prom.Selection, metric string) []string {
	t.Helper()
	p, err := parsePage(bytes.NewReader(text), sel)
	if err != nil {
		t.Fatal(err)
	}
	// A previous page of zeros, so every rate exists.
	prev := &page{values: map[string]float64{}, hists: map[string]hist{}}
	for k := range p.values {
		prev.values[k] = 0
	}
	var out []string
	for _, s := range derive(p, prev, 10) {
		if s.Metric == metric {
			out = append(out, fmt.Sprint(s.Metric, s.Labels, s.Value))
		}
	}
	slices.Sort(out)
	return out
}

// TestPageFamiliesDeriveTheSameMetrics checks that parsing the captured
// page for one metric's families gives that metric exactly as a parse of
// every family does: histograms keep their buckets, rates their counters.
func TestPageFamiliesDeriveTheSameMetrics(t *testing.T) {
	pg, err := os.ReadFile("testdata/metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range pageMetrics() {
		fams := PageFamilies([]string{m})
		if len(fams) != 1 {
			t.Fatalf("%s: families %v", m, fams)
		}
		want := derived(t, pg, nil, m)
		got := derived(t, pg, prom.NewSelection(fams), m)
		if len(want) == 0 && m != "etcd.network.peer_sent_failures" { // not on this page
			t.Errorf("%s: nothing derived from the full page", m)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s from %v:\n got %v\nwant %v", m, fams, got, want)
		}
	}
	if f := PageFamilies([]string{"etcd.can_connect", "etcd.db.size"}); len(f) != 0 {
		t.Errorf("Status metrics need page families %v", f)
	}
	if f := PageFamilies([]string{"etcd.db.quota"}); !slices.Equal(f, []string{quotaFamily}) {
		t.Errorf("quota needs %v", f)
	}
}

// statusOnly is what a member yields without its page.
func statusOnly(ss []model.Sample) bool {
	for _, s := range ss {
		for _, m := range pageMetrics() {
			if s.Metric == m {
				return false
			}
		}
	}
	return true
}

// TestPageFetchedOnlyWhenRead checks that a member's page is not even
// fetched when no metric read comes from it, and is again once one does.
func TestPageFetchedOnlyWhenRead(t *testing.T) {
	text, err := os.ReadFile("testdata/metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write(text)
	}))
	defer srv.Close()
	c := etcdtest.StartCluster(t, 1)
	s := newScraper(t, c, func(cfg *Config) { cfg.Members[0].MetricsURL = srv.URL + "/metrics" })
	now := time.Unix(1000, 0)

	s.SetMetrics(false, []string{"etcd.can_connect", "etcd.has_leader_not_a_metric"})
	out, _, err := scrape(s, 0, now)
	if err != nil {
		t.Fatal(err)
	}
	if hits.Load() != 0 || !statusOnly(out) || value(t, out, "etcd.can_connect") != 1 {
		t.Fatalf("page fetched %d times for Status metrics only; samples %v", hits.Load(), out)
	}
	s.SetMetrics(false, []string{"etcd.disk.wal_fsync.p99"})
	out, _, err = scrape(s, 0, now.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if hits.Load() != 1 {
		t.Fatalf("page fetched %d times", hits.Load())
	}
	value(t, out, "etcd.disk.wal_fsync.p99")
	for _, smp := range out {
		if smp.Metric == "etcd.has_leader" {
			t.Fatalf("has_leader parsed although not read")
		}
	}
	s.SetMetrics(true, nil)
	out, _, _ = scrape(s, 0, now.Add(2*time.Second))
	value(t, out, "etcd.has_leader")
}
