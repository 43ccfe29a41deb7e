package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/model/textparse"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/collectors/etcd"
	"github.com/vigil-alerts/vigil/collectors/etcd/etcdtest"
	vprom "github.com/vigil-alerts/vigil/collectors/prom"
	"github.com/vigil-alerts/vigil/rules"
)

// exampleMetrics are the metrics examples/rules/etcd.yaml aggregates: what
// `vigil run` gives the collectors for those rules.
func exampleMetrics(tb testing.TB) []string {
	set, err := rules.Load("../examples/rules/etcd.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, r := range set.Rules() {
		for _, a := range r.Condition.Aggregates {
			out = append(out, a.Metric)
		}
	}
	return out
}

// etcdPage is a real etcd member's /metrics page (205 KB), captured from
// an embedded member by collectors/etcd's capture test.
func etcdPage(tb testing.TB) []byte {
	page, err := os.ReadFile("../collectors/etcd/testdata/metrics.txt")
	if err != nil {
		tb.Fatal(err)
	}
	return page
}

var textHeader = http.Header{"Content-Type": {"text/plain; version=0.0.4"}}

// textparseAll reads every sample of page as Prometheus' scrape loop does:
// every entry, and the labels and value of every series.
func textparseAll(page []byte) (int, error) {
	p := textparse.NewPromParser(page, labels.NewSymbolTable(), false)
	var lset labels.Labels
	n := 0
	for {
		e, err := p.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if e == textparse.EntrySeries {
			p.Series()
			p.Labels(&lset)
			n++
		}
	}
}

// BenchmarkParseEtcdPage parses the same real etcd page three ways in
// every iteration, so the ratios come from one run on one machine state:
// Vigil's collection path for the families the example rules need
// (filtered), Vigil's path for every sample (all), and Prometheus'
// textparse reading every sample. It reports each one's MB/s and the
// ratios to textparse.
func BenchmarkParseEtcdPage(b *testing.B) {
	page := etcdPage(b)
	fams := etcd.PageFamilies(exampleMetrics(b))
	if len(fams) == 0 {
		b.Fatal("the example rules read nothing from the page")
	}
	sel := vprom.NewSelection(fams)
	now := time.Unix(1700000000, 0)
	// The three must agree on what they read before they are timed.
	all, err := vprom.Read(bytes.NewReader(page), textHeader, nil, 0, now)
	if err != nil {
		b.Fatal(err)
	}
	n, err := textparseAll(page)
	if err != nil || n != len(all) {
		b.Fatalf("textparse read %d samples (%v), Vigil %d", n, err, len(all))
	}
	filtered, err := vprom.Read(bytes.NewReader(page), textHeader, sel, 0, now)
	if err != nil || len(filtered) == 0 {
		b.Fatalf("filtered: %d samples, %v", len(filtered), err)
	}
	var tFiltered, tAll, tText time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		if _, err := vprom.Read(bytes.NewReader(page), textHeader, sel, 0, now); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := vprom.Read(bytes.NewReader(page), textHeader, nil, 0, now); err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		if _, err := textparseAll(page); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		tFiltered += t1.Sub(t0)
		tAll += t2.Sub(t1)
		tText += t3.Sub(t2)
	}
	mbs := func(d time.Duration) float64 { return float64(len(page)) * float64(b.N) / d.Seconds() / 1e6 }
	b.ReportMetric(mbs(tFiltered), "vigil-filtered-MB/s")
	b.ReportMetric(mbs(tAll), "vigil-all-MB/s")
	b.ReportMetric(mbs(tText), "textparse-MB/s")
	b.ReportMetric(tText.Seconds()/tFiltered.Seconds(), "filtered-x-textparse")
	b.ReportMetric(tText.Seconds()/tAll.Seconds(), "all-x-textparse")
	b.ReportMetric(float64(len(filtered)), "filtered-samples")
	b.ReportMetric(float64(len(all)), "all-samples")
}

// cpuTime is the process' user plus system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCollectEtcdCluster is one collection of a 3-member embedded
// cluster by the etcd collector as `vigil run` builds it: Status over each
// member's gRPC client and its /metrics page, concurrently. The pages are
// served as captured from the members at start by a plain file server,
// so that the members' own work of rendering their metrics is not counted
// as Vigil's. cpu-ms/op is the process' CPU time per collection minus what
// the idle cluster burns in the same wall time (measured just before);
// raw-cpu-ms/op is without the subtraction.
func BenchmarkCollectEtcdCluster(b *testing.B) {
	cluster := etcdtest.StartCluster(b, 3)
	var targets []collectors.Target
	for _, m := range cluster.Members() {
		resp, err := http.Get(m.MetricsURL)
		if err != nil {
			b.Fatal(err)
		}
		page, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			b.Fatal(err)
		}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain; version=0.0.4")
			w.Write(page)
		}))
		b.Cleanup(srv.Close)
		targets = append(targets, collectors.Target{Name: m.Name, Address: m.ClientURL, MetricsURL: srv.URL + "/metrics"})
	}
	cs, err := collectors.Build([]collectors.Config{{Name: "etcd", Type: collectors.TypeEtcd,
		Interval: collectors.Duration(10 * time.Second), Timeout: collectors.Duration(5 * time.Second), Targets: targets}}, nil)
	if err != nil {
		b.Fatal(err)
	}
	tc := cs[0].(*collectors.TargetCollector)
	b.Cleanup(func() { tc.Close() })
	for _, mode := range []struct {
		name string
		sel  collectors.Selection
	}{
		{"example-rules", collectors.Only(exampleMetrics(b)...)},
		{"everything", collectors.Everything()},
	} {
		b.Run(mode.name, func(b *testing.B) {
			tc.Select(mode.sel)
			ctx := context.Background()
			now := time.Unix(1700000000, 0)
			collect := func() {
				now = now.Add(10 * time.Second)
				if _, err := tc.Collect(ctx, now); err != nil {
					b.Fatal(err)
				}
			}
			collect() // connected, rates primed
			idleStart, idleCPU := time.Now(), cpuTime()
			time.Sleep(500 * time.Millisecond)
			idleRate := float64(cpuTime()-idleCPU) / float64(time.Since(idleStart))
			start, cpu0 := time.Now(), cpuTime()
			for b.Loop() {
				collect()
			}
			wall, cpu := time.Since(start), cpuTime()-cpu0
			net := float64(cpu) - idleRate*float64(wall)
			b.ReportMetric(net/float64(b.N)/1e6, "cpu-ms/op")
			b.ReportMetric(float64(cpu)/float64(b.N)/1e6, "raw-cpu-ms/op")
			b.ReportMetric(idleRate*100, "idle-cpu-%")
		})
	}
}
