package engine

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// A series' values array is sized to its window, not to the next power of
// two: memory is what the rules need (BenchmarkMemory measures it).
func TestStoreSizesSeriesToWindow(t *testing.T) {
	s := NewStore(11 * time.Minute)
	for i := range 200 {
		s.Append(model.Sample{Metric: "m", Value: 1, Time: benchNow.Add(time.Duration(i) * 10 * time.Second)})
	}
	sr := s.list[0]
	if n, c := len(sr.vals), cap(sr.vals); n != 66 || c > 66+66/8 {
		t.Errorf("%d values held in room for %d; want 66 in at most %d", n, c, 66+66/8)
	}
}

// The series of one collection share one copy of their times, however
// the collection's samples are split across Append calls, when a series
// joins later, and a window after a late sample took one away: a time
// costs 8 bytes per collection, not per series.
func TestStoreSeriesOfACollectionShareTimes(t *testing.T) {
	s := NewStore(11 * time.Minute)
	const hosts = 50
	start := benchNow.Add(-30 * time.Minute)
	k := 0
	for at := start; !at.After(benchNow); at = at.Add(10 * time.Second) {
		n := hosts
		if at.Before(start.Add(10 * time.Minute)) {
			n = hosts / 2 // the other half joins 10 minutes in
		}
		for h := range n {
			s.Append(
				model.Sample{Metric: "a", Labels: model.Labels{"host": fmt.Sprint(h)}, Value: float64(k + h), Time: at},
				model.Sample{Metric: "b", Labels: model.Labels{"host": fmt.Sprint(h)}, Value: float64(k - h), Time: at},
			)
		}
		if k == 90 {
			// A late sample between two collections: host 3's a leaves
			// the shared times, and returns once the sample is trimmed.
			s.Append(model.Sample{Metric: "a", Labels: model.Labels{"host": "3"}, Value: -1, Time: at.Add(-5 * time.Second)})
		}
		k++
	}
	timelines := map[*timeline]int{}
	for _, sr := range s.list {
		timelines[sr.tl]++
		if n := len(sr.times()); n != 66 {
			t.Errorf("%s%v holds %d samples, want 66", sr.metric, sr.labels, n)
		}
	}
	if len(timelines) != 1 {
		t.Errorf("%d series on %d timelines, want all on one", len(s.list), len(timelines))
	}
	// What evaluation reads is each series' own samples.
	sr, _ := s.lookup("b", model.Labels{"host": "7"})
	i, j := window(sr.times(), benchNow.Add(-time.Minute).UnixNano(), benchNow.UnixNano())
	if want := []float64{float64(k - 6 - 7), float64(k - 5 - 7), float64(k - 4 - 7), float64(k - 3 - 7), float64(k - 2 - 7), float64(k - 1 - 7)}; !slices.Equal(sr.vals[i:j], want) {
		t.Errorf("b{host=7} over the last minute: %v, want %v", sr.vals[i:j], want)
	}
}

// When a series' spacing changes (a collector's interval shortened), the
// estimate is wrong and the array grows again, keeping every sample.
func TestStoreGrowsWhenSpacingShrinks(t *testing.T) {
	s := NewStore(10 * time.Minute)
	at := benchNow
	var want []int64
	for i := range 400 {
		step := time.Minute
		if i >= 20 {
			step = time.Second
		}
		at = at.Add(step)
		s.Append(model.Sample{Metric: "m", Value: float64(i), Time: at})
		want = append(want, at.UnixNano())
	}
	cutoff := at.Add(-10 * time.Minute).UnixNano()
	var kept []int64
	for _, t := range want {
		if t > cutoff {
			kept = append(kept, t)
		}
	}
	if ts := s.list[0].times(); !slices.Equal(ts, kept) {
		t.Fatalf("%d samples held, want %d (every sample within the retention)", len(ts), len(kept))
	}
}

// Series that share times and then part (a sample replaced, inserted out
// of order, a collection that only some series are in, series at their
// own times) each keep exactly their own samples: checked against a
// plain model of the store's rules over random appends and GCs.
func TestStoreSharedTimesKeepEachSeriesOwnSamples(t *testing.T) {
	t.Run("hashed", func(t *testing.T) { testStoreKeepsOwnSamples(t, nil) })
	// Series are found by a hash of their metric and labels: when two
	// series' hashes collide, both are still told apart.
	t.Run("colliding", func(t *testing.T) {
		testStoreKeepsOwnSamples(t, func(string, model.Labels) uint64 { return 42 })
	})
}

func testStoreKeepsOwnSamples(t *testing.T, hash func(string, model.Labels) uint64) {
	const retention = 2 * time.Minute
	type smp struct {
		t int64
		v float64
	}
	rng := rand.New(rand.NewPCG(1, 2))
	s := NewStore(retention)
	if hash != nil {
		s.hash = hash
	}
	s.SetSeriesRetention(3 * time.Minute)
	want := map[string][]smp{}
	last := map[string]int64{}
	trim := func(key string, cutoff int64) {
		w := want[key]
		i := 0
		for i < len(w) && w[i].t <= cutoff {
			i++
		}
		want[key] = w[i:]
	}
	at := benchNow
	maxShared := 0
	for step := range 3000 {
		at = at.Add(10 * time.Second)
		var batch []model.Sample
		for h := range 12 {
			if rng.IntN(10) == 0 {
				continue // this series misses this collection
			}
			if h == 9 && step%200 >= 100 {
				continue // this host stops for long enough to be forgotten
			}
			st := at
			switch {
			case h >= 10:
				st = at.Add(time.Duration(rng.IntN(10)) * time.Second) // series with their own times
			case rng.IntN(40) == 0:
				st = at.Add(-time.Duration(rng.IntN(60)) * time.Second) // late, maybe replacing
			}
			batch = append(batch, model.Sample{Metric: "m", Labels: model.Labels{"h": fmt.Sprint(h)}, Value: float64(rng.IntN(1000)), Time: st})
		}
		if step%7 == 0 && len(batch) > 1 {
			// A collection split across two Append calls.
			s.Append(batch[:len(batch)/2]...)
			s.Append(batch[len(batch)/2:]...)
		} else {
			s.Append(batch...)
		}
		for _, b := range batch {
			key, tt := b.Labels["h"], b.Time.UnixNano()
			if w := want[key]; len(w) > 0 {
				trim(key, max(w[len(w)-1].t, tt)-int64(retention))
			}
			w := want[key]
			i, found := slices.BinarySearchFunc(w, tt, func(x smp, t int64) int { return int(x.t - t) })
			if found {
				w[i].v = b.Value
			} else {
				want[key] = slices.Insert(w, i, smp{tt, b.Value})
			}
			last[key] = max(last[key], tt)
		}
		if step%5 == 0 {
			s.GC(at)
			for key := range want {
				trim(key, at.UnixNano()-int64(retention))
				if len(want[key]) == 0 && last[key] <= at.Add(-3*time.Minute).UnixNano() {
					delete(want, key)
				}
			}
		}
		shared := map[*timeline]int{}
		for _, sr := range s.list {
			shared[sr.tl]++
		}
		for _, n := range shared {
			maxShared = max(maxShared, n)
		}
		if len(s.list) != len(want) {
			t.Fatalf("step %d: %d series held, want %d", step, len(s.list), len(want))
		}
		for _, sr := range s.list {
			w, ts := want[sr.labels["h"]], sr.times()
			if len(ts) != len(w) || len(sr.vals) != len(w) {
				t.Fatalf("step %d: series %s holds %d samples, want %d", step, sr.labels["h"], len(sr.vals), len(w))
			}
			for i := range w {
				if ts[i] != w[i].t || sr.vals[i] != w[i].v {
					t.Fatalf("step %d: series %s sample %d is (%d, %v), want (%d, %v)", step, sr.labels["h"], i, ts[i], sr.vals[i], w[i].t, w[i].v)
				}
			}
		}
	}
	if maxShared < 8 {
		t.Errorf("at most %d series shared a timeline, want the hosts collected together to", maxShared)
	}
}

// A label set is shared while any series uses it and forgotten with its
// last series, so a churning target's label sets do not outlive it.
func TestStoreForgetsLabelSetsWithTheirSeries(t *testing.T) {
	s := NewStore(time.Minute)
	s.SetSeriesRetention(time.Minute)
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	a, b := model.Labels{"host": "a"}, model.Labels{"host": "b"}
	s.Append(model.Sample{Metric: "up", Labels: a, Value: 1, Time: t0},
		model.Sample{Metric: "load", Labels: a, Value: 1, Time: t0},
		model.Sample{Metric: "up", Labels: b, Value: 1, Time: t0})
	if len(s.labelSets) != 2 {
		t.Fatalf("%d label sets, want a's and b's", len(s.labelSets))
	}
	// Only a's up keeps reporting.
	for at := t0.Add(10 * time.Second); !at.After(t0.Add(5 * time.Minute)); at = at.Add(10 * time.Second) {
		s.Append(model.Sample{Metric: "up", Labels: a, Value: 1, Time: at})
		s.GC(at)
	}
	if len(s.labelSets) != 1 {
		t.Fatalf("%d label sets after b stopped, want a's only", len(s.labelSets))
	}
	for _, sh := range s.labelSets {
		if sh.ls["host"] != "a" || sh.refs != 1 {
			t.Fatalf("kept %v used by %d series, want a's used by its up", sh.ls, sh.refs)
		}
	}
	s.GC(t0.Add(time.Hour))
	if len(s.labelSets) != 0 {
		t.Fatalf("%d label sets with no series left", len(s.labelSets))
	}
}
