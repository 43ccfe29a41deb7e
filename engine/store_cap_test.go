package engine

import (
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// A series' points array is sized to its window, not to the next power of
// two: memory is what the rules need (BenchmarkMemory measures it).
func TestStoreSizesSeriesToWindow(t *testing.T) {
	s := NewStore(11 * time.Minute)
	for i := range 200 {
		s.Append(model.Sample{Metric: "m", Value: 1, Time: benchNow.Add(time.Duration(i) * 10 * time.Second)})
	}
	sr := s.list[0]
	if n, c := len(sr.pts), cap(sr.pts); n != 66 || c > 66+66/8 {
		t.Errorf("%d points held in room for %d; want 66 in at most %d", n, c, 66+66/8)
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
	pts := s.list[0].pts
	if len(pts) != len(kept) {
		t.Fatalf("%d points held, want %d (every sample within the retention)", len(pts), len(kept))
	}
	for i := range pts {
		if pts[i].t != kept[i] {
			t.Fatalf("point %d at %d, want %d", i, pts[i].t, kept[i])
		}
	}
}
