package engine

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/internal/testkit"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// BenchmarkMemory measures what a replica holds in steady state for the
// example rules: the window store (retention = longest window + 1 m, as
// `vigil run` sets it) fed every 10 s for 20 minutes, plus the engine's
// indexes, columns and alert states after evaluating. It reports heap
// bytes per series and per sample held; ns/op is the cost of building it
// and is not the point. series=1000000 takes about two minutes and 3 GB.
func BenchmarkMemory(b *testing.B) {
	set, err := rules.Load("../examples/rules/etcd.yaml")
	if err != nil {
		b.Fatal(err)
	}
	const interval = 10 * time.Second
	for _, n := range []int{10_000, 100_000, 1_000_000} {
		hosts := n / len(benchMetrics)
		b.Run(fmt.Sprintf("series=%d", n), func(b *testing.B) {
			labels := make([]model.Labels, hosts)
			for h := range labels {
				labels[h] = benchLabels(h)
			}
			var storeBytes, totalBytes, series, samples float64
			for range b.N {
				before := testkit.LiveHeap()
				store := NewStore(set.MaxWindow + time.Minute)
				eng := New(store)
				eng.SetRules(set)
				batch := make([]model.Sample, 0, len(benchMetrics))
				start := benchNow.Add(-20 * time.Minute)
				var k int
				for at := start; !at.After(benchNow); at = at.Add(interval) {
					for h := range hosts {
						batch = batch[:0]
						for m, name := range benchMetrics {
							batch = append(batch, model.Sample{Metric: name, Labels: labels[h], Value: benchValue(h, m, k), Time: at})
						}
						store.Append(batch...)
					}
					k++
				}
				afterStore := testkit.LiveHeap()
				if err := eng.Eval(context.Background(), benchNow); err != nil {
					b.Fatal(err)
				}
				afterEval := testkit.LiveHeap()
				n, s := store.Stats()
				series, samples = float64(n), float64(s)
				storeBytes = float64(afterStore - before)
				totalBytes = float64(afterEval - before)
				runtime.KeepAlive(eng)
			}
			b.ReportMetric(series, "series")
			b.ReportMetric(samples/series, "samples/series")
			b.ReportMetric(storeBytes/series, "store-B/series")
			b.ReportMetric(storeBytes/samples, "store-B/sample")
			b.ReportMetric(totalBytes/series, "total-B/series")
			b.ReportMetric(totalBytes/1e6, "total-MB")
		})
	}
}
