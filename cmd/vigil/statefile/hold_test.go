package statefile

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

const holdRules = `groups:
  - name: g
    interval: 1m
    rules:
      - name: CPUHigh
        severity: medium
        segment_by: [host]
        condition: last("cpu") > 80
        clear_when: last("cpu") < 70
      - name: LinkDown
        severity: low
        segment_by: [host]
        condition: max("up") == 0
        flapping: {changes: 3, window: 10m}
      - name: Silent
        severity: high
        segment_by: [host]
        condition: max("up") == 0
        for: 1m
        expect: {segments: [{host: c}]}
`

// TestRestartKeepsHoldsAndHysteresis: Vigil restarted (state saved to the
// file, a new engine, the file loaded) in the middle of a flapping hold,
// of a hysteresis band and of a missing member carries on as if it had
// not been: the flapping alert stays held and is released 10 minutes
// after its last change before the restart, the CPU alert stays firing
// at 75% (below its threshold, above its clear_when) and the missing
// member's alert keeps firing since it first fired.
func TestRestartKeepsHoldsAndHysteresis(t *testing.T) {
	set, err := rules.Parse([]string{"r.yaml"}, map[string][]byte{"r.yaml": []byte(holdRules)})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	cpu := []float64{90, 75, 75, 75, 75, 75, 75, 75, 75, 60}
	up := []float64{0, 1, 0, 1, 0, 1}
	step := func(eng *engine.Engine, m int) {
		c, u := 60.0, 1.0
		if m < len(cpu) {
			c = cpu[m]
		}
		if m < len(up) {
			u = up[m]
		}
		eng.Store().Append(
			model.Sample{Metric: "cpu", Labels: model.Labels{"host": "a"}, Value: c, Time: at(m)},
			model.Sample{Metric: "up", Labels: model.Labels{"host": "b"}, Value: u, Time: at(m)})
		if err := eng.Eval(context.Background(), at(m)); err != nil {
			t.Fatal(err)
		}
	}
	find := func(eng *engine.Engine, rule string) *model.Alert {
		for _, a := range eng.Alerts() {
			if a.Rule == rule {
				return &a
			}
		}
		return nil
	}
	held := func(eng *engine.Engine, m int) {
		t.Helper()
		a := find(eng, "LinkDown")
		if a == nil || a.State != model.StateFiring || a.Labels[engine.LabelFlapping] != "true" {
			t.Fatalf("at %dm: LinkDown %+v, want firing, held as flapping", m, a)
		}
	}

	eng := engine.New(engine.NewStore(time.Hour))
	eng.SetRules(set)
	for m := range 6 {
		step(eng, m)
	}
	held(eng, 5)
	p := filepath.Join(t.TempDir(), "state.json")
	if err := Save(p, State{SavedAt: at(5), Alerts: eng.Export()}); err != nil {
		t.Fatal(err)
	}

	st, err := Load(p, at(6))
	if err != nil {
		t.Fatal(err)
	}
	eng = engine.New(engine.NewStore(time.Hour))
	eng.SetRules(set)
	if restored, dropped := eng.Import(st.Alerts); restored != 3 || dropped != 0 {
		t.Fatalf("restored %d, dropped %d alerts; want 3 and 0", restored, dropped)
	}
	for m := 6; m <= 16; m++ {
		step(eng, m)
		cpuAlert := find(eng, "CPUHigh")
		switch {
		case m < 9 && (cpuAlert == nil || cpuAlert.State != model.StateFiring):
			t.Errorf("at %dm (cpu %v): CPUHigh %+v, want firing until cpu < 70", m, cpu[m], cpuAlert)
		case m == 9 && (cpuAlert == nil || cpuAlert.State != model.StateResolved):
			t.Errorf("at 9m (cpu 60): CPUHigh %+v, want resolved", cpuAlert)
		}
		if m < 15 {
			held(eng, m)
		}
		if m == 15 {
			if a := find(eng, "LinkDown"); a == nil || a.State != model.StateResolved || a.Labels[engine.LabelFlapping] != "" {
				t.Errorf("at 15m, 10 minutes after the last change: LinkDown %+v, want released, resolved", a)
			}
		}
		if a := find(eng, "Silent"); a == nil || a.State != model.StateFiring || !a.FiredAt.Equal(at(2)) || a.Labels[engine.LabelMissing] != "true" {
			t.Errorf("at %dm: Silent %+v, want the missing alert firing since 2m", m, a)
		}
	}
}
