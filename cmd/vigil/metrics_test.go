package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// /metrics carries the daemon's own families, the dispatcher's and the
// scheduler's, from a private registry (no etcd_* from the embedded server).
func TestMetricsFamilies(t *testing.T) {
	h := newHarness(t, strings.Replace(upRule, "for: 1m", "for: 0s", 1))
	h.tick(3)
	h.waitFor("a delivery", func() bool { return strings.Contains(h.console.String(), "MemberUp") })
	_, body := h.get("/metrics", "")
	contains(t, "/metrics", body,
		`vigil_rule_group_eval_duration_seconds_count{group="members"} 3`,
		"vigil_rules_loaded 1",
		"vigil_reload_success 1",
		"vigil_reload_last_success_timestamp_seconds",
		`vigil_collector_collections_total{collector="etcd"} 3`,
		`vigil_collector_errors_total{collector="etcd",target="m0"} 0`,
		`vigil_notifications_sent_total{channel="console"} 1`,
		`vigil_alerts{state="firing"} 1`,
		`vigil_scheduler_missed_slots_total{job="eval/members"} 0`,
		// The Go runtime's and the process' own, and which build runs.
		"go_goroutines ", "go_memstats_heap_alloc_bytes ", "process_resident_memory_bytes ",
		`vigil_build_info{goversion="`+runtime.Version()+`",revision="`,
	)
	if strings.Contains(body, "etcd_server_") {
		t.Error("etcd's server metrics leaked into Vigil's registry")
	}
}

// BenchmarkReloadLatency measures a rule file written to its new rules
// being in use: fsnotify event, debounce (20ms here, VIGIL_BENCH_DEBOUNCE
// to change it; 100ms by default), checksum, load, validate, compile and
// swap. The collector's target is unreachable: collection is not timed.
func BenchmarkReloadLatency(b *testing.B) {
	dir := b.TempDir()
	os.Mkdir(filepath.Join(dir, "rules"), 0o755)
	rule := func(i int) string { return strings.Replace(upRule, "MemberUp", fmt.Sprintf("Rule%d", i), 1) }
	os.WriteFile(filepath.Join(dir, "rules", "r.yaml"), []byte(rule(0)), 0o644)
	cfg := baseConfig("http://127.0.0.1:1", "")
	if d := os.Getenv("VIGIL_BENCH_DEBOUNCE"); d != "" {
		cfg = strings.Replace(baseConfig("http://127.0.0.1:1", ""), "debounce: 20ms", "debounce: "+d, 1)
	}
	os.WriteFile(filepath.Join(dir, "vigil.yaml"), []byte(cfg), 0o644)
	d, err := newDaemon(daemonOptions{ConfigPath: filepath.Join(dir, "vigil.yaml"), NoSchedule: true})
	if err != nil {
		b.Fatal(err)
	}
	if err := d.Start(); err != nil {
		b.Fatal(err)
	}
	defer d.Stop()
	has := func(name string) bool {
		rs := d.eng.Rules().Rules()
		return len(rs) == 1 && rs[0].Name == name
	}
	var worst time.Duration
	b.ResetTimer()
	for i := 1; i <= b.N; i++ {
		start := time.Now()
		os.WriteFile(filepath.Join(dir, "rules", "r.yaml"), []byte(rule(i)), 0o644)
		want := fmt.Sprintf("Rule%d", i)
		for !has(want) {
			if time.Since(start) > 10*time.Second {
				b.Fatalf("rule %s not active after 10s", want)
			}
			time.Sleep(200 * time.Microsecond)
		}
		worst = max(worst, time.Since(start))
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "worst-ms")
}
