package statefile

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
)

// TestNoDataValuesRoundTrip: a no-data alert's value is NaN (and a
// division by zero gives Inf), which JSON has no number for; one such
// alert used to make every save fail. They are kept, with the values and
// segments the alert's templates show.
func TestNoDataValuesRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.json")
	rec := engine.AlertRecord{Rule: "Silent", Fingerprint: "f", Segment: model.Labels{"host": "a"}, State: "firing",
		ActiveAt: now, Value: math.NaN(),
		Values:   map[string]float64{`max("hb")`: math.NaN(), `sum("x")`: math.Inf(1), `count("x")`: 3},
		Segments: []model.SegmentValue{{Labels: model.Labels{"host": "a"}, Value: math.Inf(-1)}, {Labels: model.Labels{"host": "b"}, Value: 0.5}},
	}
	if err := Save(p, State{SavedAt: now, Alerts: []engine.AlertRecord{rec}}); err != nil {
		t.Fatal(err)
	}
	st, err := Load(p, now)
	if err != nil || len(st.Alerts) != 1 {
		t.Fatalf("Load: %v, %d alerts", err, len(st.Alerts))
	}
	got := st.Alerts[0]
	if !math.IsNaN(got.Value) || !math.IsNaN(got.Values[`max("hb")`]) || !math.IsInf(got.Values[`sum("x")`], 1) || got.Values[`count("x")`] != 3 {
		t.Errorf("values %v %v, want NaN and NaN, +Inf, 3", got.Value, got.Values)
	}
	if len(got.Segments) != 2 || !math.IsInf(got.Segments[0].Value, -1) || got.Segments[1].Labels["host"] != "b" || got.Segments[1].Value != 0.5 {
		t.Errorf("segments %+v", got.Segments)
	}
}
