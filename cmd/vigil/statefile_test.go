package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A state file that exists but cannot be read (here a directory stands in
// its place: tests run as root, for whom permissions do not fail) stops
// the start with an error that says so; it is not set aside as corrupt,
// and nothing is written over it.
func TestUnreadableStateFileRefusesStart(t *testing.T) {
	h := newHarness(t, upRule)
	h.d.Stop()
	p := filepath.Join(h.dir, "state.json")
	os.Remove(p)
	if err := os.MkdirAll(filepath.Join(p, "keep"), 0o755); err != nil {
		t.Fatal(err)
	}
	d, err := newDaemon(daemonOptions{ConfigPath: h.cfgPath, Listener: nil, LookupEnv: func(string) (string, bool) { return "", false }})
	if err == nil {
		d.Stop()
		t.Fatal("started with an unreadable state file")
	}
	contains(t, "start error", err.Error(), "cannot read state file", p)
	if st, err := os.Stat(filepath.Join(p, "keep")); err != nil || !st.IsDir() {
		t.Errorf("unreadable state file touched: %v", err)
	}
	if m, _ := filepath.Glob(p + ".corrupt-*"); len(m) != 0 {
		t.Errorf("unreadable state file set aside as corrupt: %v", m)
	}
}

// One process owns a state file. A second `vigil run` on the same files
// stops before it restores or saves anything: on the port when it is the
// same, on the state file's lock when the port differs.
func TestSecondRunLeavesStateAlone(t *testing.T) {
	h := newHarness(t, upRule)
	h.tick(2)
	p := filepath.Join(h.dir, "state.json")
	if err := h.d.saveState(true); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	cfg, _ := os.ReadFile(h.cfgPath)
	for _, tc := range []struct{ name, addr, want string }{
		{"same port", h.d.Addr(), "http.address"},
		{"other port", "127.0.0.1:0", "in use by another process"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			second := filepath.Join(h.dir, "second.yaml")
			os.WriteFile(second, bytes.Replace(cfg, []byte("address: 127.0.0.1:0"), []byte("address: "+tc.addr), 1), 0o644)
			d, err := newDaemon(daemonOptions{ConfigPath: second, Logger: slog.New(slog.DiscardHandler),
				Now: func() time.Time { return h.now().Add(time.Hour) }, LookupEnv: func(string) (string, bool) { return "", false }})
			if err == nil { // what `vigil run` would do next
				if err = d.Start(); err == nil {
					t.Error("a second vigil on the same state file started")
				}
				d.Stop()
			} else {
				contains(t, "start error", err.Error(), tc.want)
			}
			if after, _ := os.ReadFile(p); !bytes.Equal(before, after) {
				t.Errorf("the running vigil's state file was rewritten:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// While the state file cannot be saved, /api/v1/status, the page and the
// VigilStateSaveFailed self-alert say so; a save that works again clears
// them and resolves the alert.
func TestStateSaveFailureShown(t *testing.T) {
	h := newHarness(t, upRule)
	h.tick(1) // MemberUp pending, saved
	p := filepath.Join(h.dir, "state.json")
	os.Remove(p)
	if err := os.Mkdir(p, 0o755); err != nil { // rename over it fails
		t.Fatal(err)
	}
	h.tick(6) // MemberUp fires: a change to save
	var st statusView
	_, body := h.get("/api/v1/status", "")
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.StateSave == nil || st.StateSave.Err == "" {
		t.Fatalf("status does not show the failed save: %s", body)
	}
	_, page := h.get("/", "")
	contains(t, "page", page, `id="state-save-error"`, "State file not saved")
	h.tick(2) // group_wait passes
	h.waitFor("the self-alert", func() bool { return strings.Contains(h.console.String(), "VigilStateSaveFailed") })

	os.Remove(p)
	h.tick(1)
	_, body = h.get("/api/v1/status", "")
	st = statusView{}
	if err := json.Unmarshal([]byte(body), &st); err != nil || st.StateSave != nil {
		t.Fatalf("status still shows a failed save after one worked: %s", body)
	}
	if _, page := h.get("/", ""); strings.Contains(page, "state-save-error") {
		t.Error("page still shows a failed save")
	}
	h.tick(2)
	h.waitFor("the self-alert resolved", func() bool {
		return strings.Contains(h.console.String(), "[RESOLVED:1] VigilStateSaveFailed")
	})
	if b, err := os.ReadFile(p); err != nil || !strings.Contains(string(b), `"state": "firing"`) {
		t.Errorf("state file after recovery: %s %v", b, err)
	}
}
