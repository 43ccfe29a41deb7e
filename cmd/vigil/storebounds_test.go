package main

import (
	"os"
	"slices"
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

// Over store.max_series the daemon refuses new series, keeps updating the
// ones it holds, counts the refusals on /metrics and warns at most once a
// minute; its own series (health, the store's size) are never refused.
func TestMaxSeriesRefusesAndWarns(t *testing.T) {
	h := newHarness(t, upRule)
	h.write("vigil.yaml", baseConfig(sharedEtcd(t), "store:\n  max_series: 2\n"))
	if err := h.d.Reload("test"); err != nil {
		t.Fatal(err)
	}
	h.tick(1)
	// Vigil's own series are never refused: the store's size (2) and the
	// target's health (4). They fill the bound, so nothing of the member.
	series, samples := h.d.store.Stats()
	if series != 6 || h.d.store.CountSamples("etcd.can_connect") != 0 {
		t.Fatalf("%d series held under max_series 2, %d of etcd.can_connect: want Vigil's own 6, none of the member's",
			series, h.d.store.CountSamples("etcd.can_connect"))
	}
	h.tick(2)
	if s2, n2 := h.d.store.Stats(); s2 != 6 || n2 <= samples {
		t.Errorf("after two more collections: %d series, %d samples (was %d): want 6 series, still updating", s2, n2, samples)
	}
	_, body := h.get("/metrics", "")
	contains(t, "/metrics", body, "vigil_store_series 6\n", "vigil_store_max_series 2\n", "vigil_store_series_refused_total ")
	if strings.Contains(body, "vigil_store_series_refused_total 0\n") {
		t.Error("no refusals counted")
	}
	warnings := func() int { return strings.Count(h.logs.String(), "samples of new series refused") }
	if n := warnings(); n != 1 {
		t.Errorf("%d warnings in 30s of refusals, want 1\n%s", n, h.logs.String())
	}
	h.tick(4) // 70s after the first warning
	if n := warnings(); n != 2 {
		t.Errorf("%d warnings after 70s of refusals, want 2", n)
	}
}

// The example self-alert pages when the store nears max_series: the
// store's size is written before each collection's samples, so the bound
// never refuses it.
func TestStoreNearlyFullPages(t *testing.T) {
	example, err := os.ReadFile("../../examples/rules/vigil.yaml")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, upRule)
	h.write("rules/vigil.yaml", strings.NewReplacer("for: 5m", "for: 0s", "notify: [oncall-slack]", "notify: [console]", "interval: 1m", "interval: 10s").Replace(string(example)))
	h.write("vigil.yaml", baseConfig(sharedEtcd(t), "store:\n  max_series: 3\n"))
	if err := h.d.Reload("test"); err != nil {
		t.Fatal(err)
	}
	h.tick(3)
	var got []string
	for _, a := range h.d.eng.Alerts() {
		got = append(got, a.Rule+" "+a.State.String())
	}
	if !slices.Contains(got, "VigilStoreNearlyFull firing") {
		t.Fatalf("alerts %v; want VigilStoreNearlyFull firing with the store at max_series 3", got)
	}
}

// A target added while the store is full still reports its health: a rule
// on vigil.collector.up sees it although none of its samples fit.
func TestHealthOfATargetAddedToAFullStore(t *testing.T) {
	h := newHarness(t, upRule)
	h.write("vigil.yaml", baseConfig(sharedEtcd(t), "store:\n  max_series: 2\n"))
	if err := h.d.Reload("test"); err != nil {
		t.Fatal(err)
	}
	h.tick(2)
	cfg := strings.Replace(baseConfig(sharedEtcd(t), "store:\n  max_series: 2\n"), "    targets:\n",
		"    targets:\n      - name: late\n        address: "+sharedEtcd(t)+"\n        tags: {host.mac: \"02:00:00:00:00:09\", agent.tag.role: etcd}\n", 1)
	h.write("vigil.yaml", cfg)
	if err := h.d.Reload("test"); err != nil {
		t.Fatal(err)
	}
	h.tick(1)
	if got := h.d.store.SeriesBy("target")["late"]; got != 4 {
		t.Fatalf("the late target has %d series, want its 4 health series (up, errors, duration, samples)", got)
	}
	if h.d.store.CountSamples("vigil.collector.up") < 3 {
		t.Errorf("%d samples of vigil.collector.up, want the late target's with the first one's", h.d.store.CountSamples("vigil.collector.up"))
	}
}
