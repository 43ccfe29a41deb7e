package bench

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// feedMetricMajor appends the whole data set metric by metric, so that the
// series of one metric are created, and their points grow, next to each
// other in memory.
func (v *vigil) feedMetricMajor() {
	for k := range Samples {
		t := SampleTime(k)
		for m, name := range Metrics {
			v.buf = v.buf[:0]
			for h, ls := range v.labels {
				v.buf = append(v.buf, model.Sample{Metric: name, Labels: ls, Value: Value(h, m, k), Time: t})
			}
			v.eng.Store().Append(v.buf...)
		}
	}
	v.fed = Samples
}

// BenchmarkVigilFeedOrder is Vigil's evaluation of BenchmarkAlerts at
// 10,000 hosts, with the same samples appended in two orders: host by host,
// as collectors deliver them (what BenchmarkAlerts does), and metric by
// metric. Only the memory layout of the store differs; a gap between the two
// is time spent waiting for memory, and should close once the store keeps a
// metric's points together whatever the arrival order.
func BenchmarkVigilFeedOrder(b *testing.B) {
	const hosts = 10000
	for _, order := range []string{"host-major", "metric-major"} {
		b.Run(fmt.Sprintf("hosts=%d/%s", hosts, order), func(b *testing.B) {
			v := newVigil(b, hosts)
			if order == "host-major" {
				v.feed(Samples - 1)
			} else {
				v.feedMetricMajor()
			}
			ctx := context.Background()
			if err := v.eng.Eval(ctx, End); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			now := End
			for b.Loop() {
				now = now.Add(100 * time.Nanosecond)
				if err := v.eng.Eval(ctx, now); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(hosts*len(RuleNames)), "ns/host-rule")
		})
	}
}
