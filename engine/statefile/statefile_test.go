package statefile

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/model"
)

var now = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func TestRoundTrip(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.json")
	st, err := Load(p, now)
	if err != nil || len(st.Alerts) != 0 {
		t.Fatalf("missing file: %v %v", st, err)
	}
	rec := engine.AlertRecord{Rule: "Down", StateKey: 7, Fingerprint: "abc", Segment: model.Labels{"host": "a"},
		State: "pending", ActiveAt: now.Add(-3 * time.Minute), Value: 0}
	if err := Save(p, State{SavedAt: now, Alerts: []engine.AlertRecord{rec}}); err != nil {
		t.Fatal(err)
	}
	got, err := Load(p, now)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Alerts) != 1 || got.Alerts[0].Rule != "Down" || !got.Alerts[0].ActiveAt.Equal(rec.ActiveAt) {
		t.Fatalf("got %+v", got)
	}
	ents, _ := os.ReadDir(filepath.Dir(p))
	if len(ents) != 1 {
		t.Fatalf("temporary files left: %v", ents)
	}
}

func TestCorruptIsSetAside(t *testing.T) {
	for name, content := range map[string]string{
		"truncated": `{"version": 1, "alerts": [{"rule": "Do`,
		"version":   `{"version": 99, "alerts": []}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			p := filepath.Join(dir, "state.json")
			os.WriteFile(p, []byte(content), 0o644)
			st, err := Load(p, now)
			var ce *CorruptError
			if !errors.As(err, &ce) || ce.MovedTo == "" {
				t.Fatalf("want a CorruptError with the new place, got %v", err)
			}
			if len(st.Alerts) != 0 {
				t.Fatal("alerts from a corrupt file")
			}
			if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
				t.Fatal("corrupt file still in place")
			}
			if b, _ := os.ReadFile(ce.MovedTo); string(b) != content {
				t.Fatal("moved file lost its content")
			}
			if err := Save(p, State{SavedAt: now}); err != nil {
				t.Fatal("save after corruption:", err)
			}
		})
	}
}
