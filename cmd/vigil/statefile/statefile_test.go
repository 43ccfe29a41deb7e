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

// A state file that exists but cannot be read is reported as such and
// left in place, never set aside as corrupt.
func TestUnreadableIsLeftAlone(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "state.json")
	if err := os.Mkdir(p, 0o755); err != nil { // read(2) on it fails: EISDIR
		t.Fatal(err)
	}
	_, err := Load(p, now)
	var re *ReadError
	var ce *CorruptError
	if !errors.As(err, &re) || errors.As(err, &ce) {
		t.Fatalf("want a ReadError, got %T %v", err, err)
	}
	if st, serr := os.Stat(p); serr != nil || !st.IsDir() {
		t.Fatalf("unreadable state moved: %v", serr)
	}
	if m, _ := filepath.Glob(p + ".corrupt-*"); len(m) != 0 {
		t.Fatalf("set aside as corrupt: %v", m)
	}
}

// Only one process holds a state file's lock; it is free again once
// released.
func TestLockIsExclusive(t *testing.T) {
	p := filepath.Join(t.TempDir(), "state.json")
	l, err := Acquire(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Acquire(p); !errors.Is(err, ErrLocked) {
		t.Fatalf("second lock: %v, want ErrLocked", err)
	}
	if err := l.Release(); err != nil {
		t.Fatal(err)
	}
	l2, err := Acquire(p)
	if err != nil {
		t.Fatalf("lock after release: %v", err)
	}
	l2.Release()
	l2.Release()
}
