package main

import (
	"strings"
	"testing"
	"time"
)

// The daemon keeps a stopped series for the rules' longest reach (window
// + for + keep_firing_for) plus store.retention_slack, and a reload with
// a longer rule or a new slack moves it.
func TestSeriesRetentionFollowsRules(t *testing.T) {
	h := newHarness(t, upRule) // window 1m (the default), for 1m
	if got, want := h.d.store.SeriesRetention(), time.Minute+time.Minute+5*time.Minute; got != want {
		t.Fatalf("at start: series retention %v, want %v (1m window + 1m for + 5m default slack)", got, want)
	}
	long := strings.Replace(upRule, "for: 1m", "for: 1m\n        window: 30m\n        keep_firing_for: 10m", 1)
	h.write("vigil.yaml", baseConfig(sharedEtcd(t), "store:\n  retention_slack: 2m\n"))
	h.write("rules/etcd.yaml", long)
	want := 30*time.Minute + time.Minute + 10*time.Minute + 2*time.Minute
	h.waitFor("the reload", func() bool { return h.d.reload.Load().OK && h.d.store.SeriesRetention() == want })
	// Back to the short rule: series go sooner again.
	h.write("rules/etcd.yaml", upRule)
	want = time.Minute + time.Minute + 2*time.Minute
	h.waitFor("the second reload", func() bool { return h.d.store.SeriesRetention() == want })
}
