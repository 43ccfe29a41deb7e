package replay

import (
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/recording"
	"github.com/vigil-alerts/vigil/rules"
)

// dayOfEtcd stretches a real recording of a 3-member cluster (20
// collections, one member down from the 6th: testdata, made by
// cmd/vigil's TestReplayAndDiffOnRecordedOutage) into a day at 15 s: the
// same 125 series, their recorded values cycled over 5,760 collections.
func dayOfEtcd(tb testing.TB) []model.Sample {
	rec, _, err := recording.Load("testdata/etcd-3-members.vrec.gz")
	if err != nil {
		tb.Fatal(err)
	}
	var steps [][]model.Sample
	for i, s := range rec {
		if i == 0 || !s.Time.Equal(rec[i-1].Time) {
			steps = append(steps, nil)
		}
		steps[len(steps)-1] = append(steps[len(steps)-1], s)
	}
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	const day = 24 * 60 * 4
	out := make([]model.Sample, 0, day*len(steps[0]))
	for k := range day {
		for _, s := range steps[k%len(steps)] {
			s.Time = t0.Add(time.Duration(k) * 15 * time.Second)
			out = append(out, s)
		}
	}
	return out
}

// BenchmarkReplayDay replays a day of a 3-member etcd cluster at 15 s
// resolution through the example rules (examples/rules): the cost of one
// side of `vigil diff`.
func BenchmarkReplayDay(b *testing.B) {
	samples := dayOfEtcd(b)
	rs, err := rules.Load("../examples/rules/etcd.yaml")
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	var tl *Timeline
	// CPU time besides wall time: on a shared machine wall time measures
	// the neighbours as much as the replay.
	cpu0 := cpuTime()
	for b.Loop() {
		if tl, err = Run(rs, samples); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric((cpuTime()-cpu0).Seconds()/float64(b.N), "cpu-s/op")
	b.ReportMetric(float64(len(samples)), "samples/day")
	b.ReportMetric(float64(tl.Evals), "evals/day")
}

// TestReplayDay checks the benchmark's day is what it claims and that its
// outages page.
func TestReplayDay(t *testing.T) {
	samples := dayOfEtcd(t)
	if n := len(samples); n < 5760*60 {
		t.Fatalf("%d samples, want a day of ~125 series", n)
	}
	rs, err := rules.Load("../examples/rules/etcd.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tl, err := Run(rs, samples)
	if err != nil {
		t.Fatal(err)
	}
	if len(tl.Errors) > 0 {
		t.Fatal(tl.Errors)
	}
	if len(tl.Events) == 0 {
		t.Fatal("a day with a member down every 5 minutes raised no alert")
	}
}
