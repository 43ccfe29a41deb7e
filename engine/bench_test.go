package engine

import (
	"context"
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// The benchmark data: hosts in clusters of three, ten metrics each, six
// samples 10 s apart in the last minute. A few hosts are unhealthy so that
// alerts go pending and firing as they would in a real fleet.
const (
	benchClusterSize = 3
	benchSamples     = 6
	benchStep        = 10 * time.Second
)

var benchMetrics = []string{
	"etcd.can_connect", "etcd.leader.latency", "etcd.txn.total",
	"etcd.self.send.bandwidthrate", "etcd.self.recv.bandwidthrate", "etcd.db_dir.size_bytes",
	"etcd.db.size_in_use", "etcd.db.quota", "etcd.proposals.pending", "etcd.has_leader",
}

var benchNow = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// benchValue is the value of host h's metric m at sample k.
func benchValue(h, m, k int) float64 {
	switch benchMetrics[m] {
	case "etcd.can_connect":
		if h%100 == 7 { // 1% of members down
			return 0
		}
		return 1
	case "etcd.leader.latency":
		if h%50 == 3 { // 2% slow
			return 0.25 + 0.01*float64(k)
		}
		return 0.01 + 0.001*float64(k%3)
	case "etcd.txn.total":
		rate := 40.0
		if (h/benchClusterSize)%20 == 1 { // 5% of clusters busy
			rate = 180
		}
		return float64(h*1000) + rate*10*float64(k)
	case "etcd.self.send.bandwidthrate", "etcd.self.recv.bandwidthrate":
		if h%100 == 7 {
			return 0
		}
		return 50 + float64(k)
	case "etcd.db_dir.size_bytes":
		return 1e9 + float64(h%10)*1e9 // 30% above 6e9
	case "etcd.db.size_in_use":
		return 1e9 + float64(h%5)*0.25e9
	case "etcd.db.quota":
		return 2e9
	default:
		return float64(k)
	}
}

func benchLabels(h int) model.Labels {
	return model.Labels{
		"agent.tag.role": "etcd",
		"cluster":        fmt.Sprintf("c%05d", h/benchClusterSize),
		"host.mac":       fmt.Sprintf("02:00:00:%02x:%02x:%02x", h>>16&0xff, h>>8&0xff, h&0xff),
		"host.hostName":  fmt.Sprintf("etcd-%05d", h),
	}
}

func benchEngine(b testing.TB, hosts int) (*Engine, *rules.RuleSet) {
	set, err := rules.Load("../examples/rules/etcd.yaml")
	if err != nil {
		b.Fatal(err)
	}
	store := NewStore(set.MaxWindow)
	eng := New(store)
	eng.SetRules(set)
	samples := make([]model.Sample, 0, len(benchMetrics)*benchSamples)
	for h := range hosts {
		ls := benchLabels(h)
		samples = samples[:0]
		for m, name := range benchMetrics {
			for k := range benchSamples {
				t := benchNow.Add(-time.Duration(benchSamples-1-k) * benchStep)
				samples = append(samples, model.Sample{Metric: name, Labels: ls, Value: benchValue(h, m, k), Time: t})
			}
		}
		store.Append(samples...)
	}
	return eng, set
}

// segmentRules counts (segment × rule) pairs one evaluation visits.
func segmentRules(e *Engine) int {
	n := 0
	for _, st := range e.RuleStatuses() {
		n += st.Segments
	}
	return n
}

// BenchmarkEvaluate is one full evaluation of the example rules: select,
// segment, aggregate, CEL and the state machine, in steady state.
func BenchmarkEvaluate(b *testing.B) {
	for _, hosts := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			eng, _ := benchEngine(b, hosts)
			ctx := context.Background()
			eng.Eval(ctx, benchNow) // build indexes: steady state from here
			pairs := segmentRules(eng)
			b.ReportAllocs()
			b.ResetTimer()
			// Each evaluation is at a new time, as scheduled ones are, so
			// nothing computed for the previous one can be reused. The
			// 100µs steps keep the same samples in every window.
			now := benchNow
			for b.Loop() {
				now = now.Add(100 * time.Microsecond)
				eng.Eval(ctx, now)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(pairs), "ns/segment-rule")
			b.ReportMetric(float64(pairs), "segment-rules")
		})
	}
}

// handLoop is the lower bound: the same answers from plain slices, in a
// loop written for exactly these rules. It returns how many (rule,
// segment) conditions hold, per rule.
type handData struct {
	hosts int
	ts    []int64   // [host][metric][sample]
	vs    []float64 // same layout
}

func newHandData(hosts int) *handData {
	d := &handData{hosts: hosts, ts: make([]int64, hosts*len(benchMetrics)*benchSamples), vs: make([]float64, hosts*len(benchMetrics)*benchSamples)}
	for h := range hosts {
		for m := range benchMetrics {
			for k := range benchSamples {
				i := (h*len(benchMetrics)+m)*benchSamples + k
				d.ts[i] = benchNow.Add(-time.Duration(benchSamples-1-k) * benchStep).UnixNano()
				d.vs[i] = benchValue(h, m, k)
			}
		}
	}
	return d
}

func (d *handData) window(h, m int, w time.Duration) ([]int64, []float64) {
	i := (h*len(benchMetrics) + m) * benchSamples
	ts, vs := d.ts[i:i+benchSamples], d.vs[i:i+benchSamples]
	start := benchNow.UnixNano() - int64(w)
	k := 0
	for k < len(ts) && ts[k] <= start {
		k++
	}
	return ts[k:], vs[k:]
}

func (d *handData) evaluate(holds map[string]int) {
	const (
		can, lat, txn, send, recv, dir, inuse, quota = 0, 1, 2, 3, 4, 5, 6, 7
	)
	fmax := func(vs []float64) float64 {
		m := math.Inf(-1)
		for _, v := range vs {
			m = max(m, v)
		}
		return m
	}
	favg := func(vs []float64) float64 {
		s := 0.0
		for _, v := range vs {
			s += v
		}
		return s / float64(len(vs))
	}
	fstd := func(vs []float64) float64 {
		mu := favg(vs)
		s := 0.0
		for _, v := range vs {
			s += (v - mu) * (v - mu)
		}
		return math.Sqrt(s / float64(len(vs)))
	}
	allDown := 0
	for c := 0; c*benchClusterSize < d.hosts; c++ {
		up, n, rateSum := 0.0, 0, 0.0
		down := 0
		for h := c * benchClusterSize; h < min(d.hosts, (c+1)*benchClusterSize); h++ {
			_, cv := d.window(h, can, time.Minute)
			if fmax(cv) == 0 {
				holds["EtcdMemberUnreachable"]++
				holds["EtcdMemberDown"]++
				down++
			}
			up += cv[len(cv)-1]
			n++
			_, lv := d.window(h, lat, time.Minute)
			if favg(lv) > 0.1 {
				holds["EtcdMemberLatencyHigh"]++
				holds["EtcdMemberLatencySpike"]++
			}
			_, lv5 := d.window(h, lat, 5*time.Minute)
			if fstd(lv5) > 0.05 {
				holds["EtcdLatencyUnstable"]++
			}
			tt, tv := d.window(h, txn, 5*time.Minute)
			inc := 0.0
			for k := 1; k < len(tv); k++ {
				if dv := tv[k] - tv[k-1]; dv >= 0 {
					inc += dv
				} else {
					inc += tv[k]
				}
			}
			rateSum += inc / (float64(tt[len(tt)-1]-tt[0]) / 1e9)
			_, sv := d.window(h, send, 2*time.Minute)
			_, rv := d.window(h, recv, 2*time.Minute)
			if fmax(sv) == 0 && fmax(rv) == 0 {
				holds["EtcdPeerTrafficStopped"]++
			}
			_, dv := d.window(h, dir, 10*time.Minute)
			if dv[len(dv)-1] > 6e9 {
				holds["EtcdDatabaseDirLarge"]++
			}
			_, iv := d.window(h, inuse, 10*time.Minute)
			_, qv := d.window(h, quota, 10*time.Minute)
			if iv[len(iv)-1]/qv[len(qv)-1] > 0.8 {
				holds["EtcdDatabaseNearQuota"]++
			}
		}
		allDown += down
		if up < (float64(n)+1)/2 {
			holds["EtcdQuorumLost"]++
		}
		if rateSum/float64(n) > 100 {
			holds["EtcdLoadHigh"]++
		}
	}
	if allDown == d.hosts {
		holds["EtcdServiceUnavailable"]++
	}
}

// BenchmarkHandWritten is the lower bound for BenchmarkEvaluate.
func BenchmarkHandWritten(b *testing.B) {
	for _, hosts := range []int{1000, 10000} {
		b.Run(fmt.Sprintf("hosts=%d", hosts), func(b *testing.B) {
			d := newHandData(hosts)
			holds := map[string]int{}
			eng, _ := benchEngine(b, hosts)
			eng.Eval(context.Background(), benchNow)
			pairs := segmentRules(eng)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				clear(holds)
				d.evaluate(holds)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(pairs), "ns/segment-rule")
		})
	}
}

// TestBenchmarkAgreesWithHandLoop makes sure both benchmarks compute the
// same alerts before anyone compares their speed.
func TestBenchmarkAgreesWithHandLoop(t *testing.T) {
	eng, set := benchEngine(t, 999)
	eng.Eval(context.Background(), benchNow)
	got := map[string]int{}
	for _, a := range eng.Alerts() {
		got[a.Rule]++
	}
	want := map[string]int{}
	newHandData(999).evaluate(want)
	for _, r := range set.Rules() {
		if got[r.Name] != want[r.Name] {
			t.Errorf("%s: engine has %d alerts, hand-written loop %d", r.Name, got[r.Name], want[r.Name])
		}
	}
	if got["EtcdMemberUnreachable"] == 0 || got["EtcdLoadHigh"] == 0 || got["EtcdQuorumLost"] != 0 {
		t.Errorf("benchmark data should make some alerts fire: %v", got)
	}
}
