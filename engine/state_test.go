package engine

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

func loadRules(t *testing.T, src string) *rules.RuleSet {
	t.Helper()
	set, err := rules.Parse([]string{"r.yaml"}, map[string][]byte{"r.yaml": []byte(src)})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

const restartRules = `groups:
  - name: g
    interval: 1m
    rules:
      - name: Down
        severity: high
        segment_by: [host]
        condition: max("up") == 0
        for: 10m
`

// A restart in the middle of a 10-minute `for` neither resets it nor loses
// a firing alert: the saved state, through JSON, carries on.
func TestExportImportKeepsTimersAcrossRestart(t *testing.T) {
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	feed := func(e *Engine, at time.Duration, host string, v float64) {
		e.Store().Append(model.Sample{Metric: "up", Labels: model.Labels{"host": host}, Value: v, Time: base.Add(at)})
	}
	set := loadRules(t, restartRules)
	e1 := New(NewStore(time.Hour))
	e1.SetRules(set)
	for i := range 12 {
		at := time.Duration(i) * time.Minute
		feed(e1, at, "a", 0) // down from the start: fires at 10m
		if i >= 6 {
			feed(e1, at, "b", 0) // down from 6m: pending at restart
		} else {
			feed(e1, at, "b", 1)
		}
		e1.Eval(context.Background(), base.Add(at))
	}
	saved, err := json.Marshal(e1.Export())
	if err != nil {
		t.Fatal(err)
	}

	var recs []AlertRecord
	if err := json.Unmarshal(saved, &recs); err != nil {
		t.Fatal(err)
	}
	e2 := New(NewStore(time.Hour))
	e2.SetRules(loadRules(t, restartRules))
	if restored, dropped := e2.Import(recs); restored != 2 || dropped != 0 {
		t.Fatalf("Import: restored %d, dropped %d; want 2, 0", restored, dropped)
	}
	state := func(host string) (model.AlertState, time.Time) {
		for _, a := range e2.Alerts() {
			if a.Segment["host"] == host {
				return a.State, a.FiredAt
			}
		}
		return model.StateInactive, time.Time{}
	}
	for i := 12; i <= 16; i++ {
		at := time.Duration(i) * time.Minute
		feed(e2, at, "a", 0)
		feed(e2, at, "b", 0)
		e2.Eval(context.Background(), base.Add(at))
		sa, firedA := state("a")
		if sa != model.StateFiring || !firedA.Equal(base.Add(10*time.Minute)) {
			t.Fatalf("at %s: host a is %s fired at %s; want firing since 10m", at, sa, firedA.Sub(base))
		}
		sb, firedB := state("b")
		want := model.StatePending
		if at >= 16*time.Minute { // pending since 6m: fires at 16m, as before the restart
			want = model.StateFiring
		}
		if sb != want {
			t.Fatalf("at %s: host b is %s, want %s (fired at %s)", at, sb, want, firedB.Sub(base))
		}
	}

	// Once evaluated, an engine's own state stands: importing the saved
	// records again would give host a a second firing alert.
	if restored, dropped := e2.Import(recs); restored != 0 || dropped != 2 {
		t.Fatalf("Import after evaluating: restored %d, dropped %d; want 0, 2", restored, dropped)
	}
	if n := len(e2.Alerts()); n != 2 {
		t.Fatalf("%d alerts after a late Import, want 2", n)
	}

	// A changed for still matches the alerts by rule name and segment:
	// the restart after an edit keeps them.
	e3 := New(NewStore(time.Hour))
	e3.SetRules(loadRules(t, strings.Replace(restartRules, "for: 10m", "for: 5m", 1)))
	if restored, dropped := e3.Import(recs); restored != 2 || dropped != 0 {
		t.Fatalf("Import into a rule with another for: restored %d, dropped %d; want 2, 0", restored, dropped)
	}
	// A changed segment_by makes other alerts: the old ones do not apply.
	e4 := New(NewStore(time.Hour))
	e4.SetRules(loadRules(t, strings.Replace(restartRules, "[host]", "[host, dc]", 1)))
	if restored, dropped := e4.Import(recs); restored != 0 || dropped != 2 {
		t.Fatalf("Import into a rule with another segment_by: restored %d, dropped %d; want 0, 2", restored, dropped)
	}
}
