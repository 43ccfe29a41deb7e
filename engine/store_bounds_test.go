package engine_test

import (
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
)

// A series that stops reporting is remembered for the series retention
// after its last sample, and forgotten after it, while a series that
// keeps reporting stays.
func TestSeriesRetentionFromLastSample(t *testing.T) {
	s := engine.NewStore(5 * time.Minute)
	s.SetSeriesRetention(20 * time.Minute)
	gone := model.Labels{"host": "gone"}
	stays := model.Labels{"host": "stays"}
	last := base.Add(3 * time.Minute)
	has := func(ls model.Labels) bool {
		return s.SeriesBy("host")[ls["host"]] > 0
	}
	for now := base; !now.After(base.Add(40 * time.Minute)); now = now.Add(10 * time.Second) {
		s.Append(model.Sample{Metric: "up", Labels: stays, Value: 1, Time: now})
		if !now.After(last) {
			s.Append(model.Sample{Metric: "up", Labels: gone, Value: 1, Time: now})
		}
		s.GC(now)
		switch since := now.Sub(last); {
		case since < 20*time.Minute && !has(gone):
			t.Fatalf("at last+%v: the stopped series is forgotten, want it kept for 20m", since)
		case since >= 20*time.Minute && has(gone):
			t.Fatalf("at last+%v: the stopped series is still held, want it gone 20m after its last sample", since)
		}
		if !has(stays) {
			t.Fatalf("at %v: the reporting series is gone", now.Sub(base))
		}
	}
}

// Over max_series, samples of new series are refused and counted, while
// the series already held keep updating; once some are forgotten, new
// ones fit again.
func TestMaxSeriesRefusesNewSeries(t *testing.T) {
	s := engine.NewStore(time.Minute)
	s.SetSeriesRetention(2 * time.Minute)
	s.SetMaxSeries(3)
	page := func(now time.Time, hosts ...string) {
		var smps []model.Sample
		for _, h := range hosts {
			smps = append(smps, model.Sample{Metric: "up", Labels: model.Labels{"host": h}, Value: float64(now.Unix()), Time: now})
		}
		s.Append(smps...)
	}
	page(base, "a", "b", "c", "d", "e")
	if held, limit, refused := s.SeriesLimits(); held != 3 || limit != 3 || refused != 2 {
		t.Fatalf("after 5 series under max 3: held %d, max %d, refused %d; want 3, 3, 2", held, limit, refused)
	}
	next := base.Add(10 * time.Second)
	page(next, "a", "b", "c", "d", "e")
	if _, _, refused := s.SeriesLimits(); refused != 4 {
		t.Errorf("refused %d after a second collection, want 4 (d and e again)", refused)
	}
	by := s.SeriesBy("host")
	for _, h := range []string{"a", "b", "c"} {
		if by[h] != 1 {
			t.Errorf("series %s not held: %v", h, by)
		}
	}
	if by["d"]+by["e"] != 0 {
		t.Errorf("refused series stored: %v", by)
	}
	if n := s.CountSamples("up"); n != 6 {
		t.Errorf("%d samples of up, want 6: a, b and c keep updating over the limit", n)
	}
	// a, b and c stop; once forgotten, d and e fit.
	later := base.Add(5 * time.Minute)
	s.GC(later)
	page(later, "d", "e")
	if held, _, refused := s.SeriesLimits(); held != 2 || refused != 4 {
		t.Errorf("after the old series were forgotten: held %d, refused %d; want 2, 4", held, refused)
	}
	// No bound: everything fits.
	s.SetMaxSeries(0)
	page(later, "f", "g", "h", "i")
	if held, _, _ := s.SeriesLimits(); held != 6 {
		t.Errorf("held %d with no bound, want 6", held)
	}
}
