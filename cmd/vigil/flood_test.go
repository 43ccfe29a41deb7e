package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/internal/testkit"
)

// Issue 14: a target exposing a million series, or new series at every
// scrape, must not take the daemon's memory with it. These tests run the
// daemon itself against httptest targets serving such pages, step its
// clock collection by collection, and read what an operator would read:
// the store's size, /metrics, the log, and the live heap after a GC.

// floodSeries is the number of series on the big page: the issue's
// million.
const floodSeries = 1_000_000

var (
	bigPageOnce sync.Once
	bigPage     []byte
)

// floodPage is a text page of floodSeries series of flood_series, each
// with two labels of distinct values (51 bytes a line, 49 MiB), then one
// app_up sample: a filter that stops early would miss it. Built once.
func floodPage() []byte {
	bigPageOnce.Do(func() {
		b := make([]byte, 0, floodSeries*54+200)
		b = append(b, "# HELP flood_series One series per item.\n# TYPE flood_series gauge\n"...)
		b = appendSeries(b, "flood_series{", 0, floodSeries)
		b = append(b, "# TYPE app_up gauge\napp_up 1\n"...)
		bigPage = b
	})
	return bigPage
}

// appendSeries appends n lines `<start>pod="p-<id>",path="/v1/<id>"} 1`
// with ids from first on, seven digits wide; start is the metric's name
// and "{", and any labels before pod.
func appendSeries(b []byte, start string, first, n int) []byte {
	var id [7]byte
	for i := first; i < first+n; i++ {
		v := i
		for j := len(id) - 1; j >= 0; j-- {
			id[j] = byte('0' + v%10)
			v /= 10
		}
		b = append(b, start...)
		b = append(b, `pod="p-`...)
		b = append(b, id[:]...)
		b = append(b, `",path="/v1/`...)
		b = append(b, id[:]...)
		b = append(b, "\"} 1\n"...)
	}
	return b
}

// servePage serves page() at every request, as a plain text page.
func servePage(t *testing.T, page func() []byte) string {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		w.Write(page())
	}))
	t.Cleanup(s.Close)
	return s.URL + "/metrics"
}

// smallPage is a healthy target beside the big one: three series of the
// metric the rules read.
func smallPage() []byte {
	return []byte("flood_series{pod=\"a\"} 1\nflood_series{pod=\"b\"} 2\nflood_series{pod=\"c\"} 3\napp_up 1\n")
}

// floodRules reads metric, and never fires: the tests are about what is
// collected, not alerted on.
func floodRules(metric string) string {
	return `groups:
  - name: flood
    interval: 1m
    rules:
      - name: FloodHigh
        severity: info
        condition: max("` + metric + `") > 1e12
`
}

// floodConfig is a daemon with one prometheus collector over targets
// (name: URL) and the given collector and store settings. max_body_bytes
// is raised so that the page reaches the filter: the default 32 MiB would
// refuse it whole, a bound of its own.
func floodConfig(collector, store string, targets ...string) string {
	var ts strings.Builder
	for i := 0; i+1 < len(targets); i += 2 {
		fmt.Fprintf(&ts, "      - {name: %s, address: %q}\n", targets[i], targets[i+1])
	}
	return `rule_dirs: [rules]
http:
  address: 127.0.0.1:0
state:
  path: state.json
reload:
  debounce: 20ms
store:
` + store + `
collectors:
  - name: flood
    type: prometheus
    interval: 1m
    timeout: 50s
` + collector + `
    prometheus: {max_body_bytes: 134217728}
    targets:
` + ts.String() + `notifiers:
  channels:
    - name: console
      console: {}
`
}

// newFloodHarness starts a daemon on cfg and rules whose clock moves by
// step at each tick.
func newFloodHarness(t *testing.T, cfg, rules string, step time.Duration) *harness {
	t.Helper()
	dir := t.TempDir()
	h := harnessIn(t, dir, webOptions{})
	h.step = step
	h.write("rules/flood.yaml", rules)
	h.write("vigil.yaml", cfg)
	h.start()
	return h
}

// peakRSS is the process' peak resident memory (VmHWM), for the log.
func peakRSS() string {
	b, _ := os.ReadFile("/proc/self/status")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			return strings.TrimSpace(v)
		}
	}
	return "unknown"
}

func mb(n uint64) string { return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + " MB" }

// timedTick ticks once and says how long the collection and evaluation
// took, and the CPU the process spent meanwhile (GC included), which a
// shared machine changes less.
func (h *harness) timedTick() string {
	var before, after syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	start := time.Now()
	h.tick(1)
	took := time.Since(start)
	syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	cpu := time.Duration(after.Utime.Nano() + after.Stime.Nano() - before.Utime.Nano() - before.Stime.Nano())
	return fmt.Sprintf("%v (CPU %v)", took, cpu.Round(time.Millisecond))
}

// allocated is the bytes the process has allocated so far: what a
// collection allocates bounds how far it can raise the heap, the peak
// that the live heap after a GC does not show.
func allocated() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

// floodTicks ticks n times and returns how long each took and the most
// any allocated.
func (h *harness) floodTicks(n int) (took []string, alloc uint64) {
	for range n {
		a := allocated()
		took = append(took, h.timedTick())
		alloc = max(alloc, allocated()-a)
	}
	return took, alloc
}

// A million series no rule reads are dropped line by line before parsing:
// the store never holds them, a collection allocates next to nothing, the
// live heap does not move, and the collection succeeds, as it should: the
// page is fine, Vigil just does not need it.
func TestMillionSeriesNoRuleReads(t *testing.T) {
	page := floodPage()
	url := servePage(t, floodPage)
	h := newFloodHarness(t, floodConfig("", "  max_series: 0", "big", url), floodRules("app_up"), time.Minute)
	before := testkit.LiveHeap()
	took, alloc := h.floodTicks(3)
	after := testkit.LiveHeap()
	t.Logf("page %s; live heap %s before, %s after 3 collections (%+d bytes); at most %s allocated by one; collection+evaluation %v",
		mb(uint64(len(page))), mb(before), mb(after), int64(after)-int64(before), mb(alloc), took)

	if n := h.storeSamples("flood_series"); n != 0 {
		t.Errorf("%d flood_series samples stored; no rule reads them", n)
	}
	if n := h.storeSamples("app_up"); n == 0 {
		t.Error("no app_up stored: the line after the million was not read")
	}
	series, _ := h.d.store.Stats()
	if series > 20 {
		t.Errorf("the store holds %d series; want the few the rule and self-metrics need", series)
	}
	mfs := h.families()
	if v, _ := value(mfs, "vigil_collector_errors_total", "collector", "flood", "target", "big"); v != 0 {
		t.Errorf("%v failed collections of a page that is fine", v)
	}
	if v, _ := value(mfs, "vigil_collector_samples", "collector", "flood"); v != 1 {
		t.Errorf("vigil_collector_samples %v, want 1 (app_up)", v)
	}
	if v, _ := value(mfs, "vigil_collector_last_success_timestamp_seconds", "collector", "flood", "target", "big"); v != float64(h.now().Unix()) {
		t.Errorf("last success %v, want the last collection's %d", v, h.now().Unix())
	}
	// Parsed and dropped, a million series allocate ~900 MB; stored, they
	// hold ~900 MB after GC. Filtering allocates its buffer and the HTTP
	// client's (0.1 MB); 8 MB is room for the rest of the daemon.
	if alloc > 8<<20 {
		t.Errorf("a collection of a page no rule reads allocated %s", mb(alloc))
	}
	if after > before+8<<20 {
		t.Errorf("live heap grew from %s to %s over 3 collections of a page no rule reads", mb(before), mb(after))
	}
}

// logLine is the first line of the daemon's log holding every one of subs.
func (h *harness) logLine(subs ...string) (string, bool) {
	for _, l := range strings.Split(h.logs.String(), "\n") {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all {
			return l, true
		}
	}
	return "", false
}

// A million series of a metric a rule reads, from a target with a
// sample_limit below that: each collection of the target fails whole
// with an error naming the target and the limit, counted on /metrics;
// nothing of its page is stored; the other target of the same collector
// goes on; and the scrape stops at the limit, so the heap does not move.
func TestMillionSeriesOverSampleLimit(t *testing.T) {
	floodPage()
	big, small := servePage(t, floodPage), servePage(t, smallPage)
	h := newFloodHarness(t, floodConfig("    sample_limit: 10000", "  max_series: 0", "big", big, "small", small),
		floodRules("flood_series"), 10*time.Second)
	before := testkit.LiveHeap()
	took, alloc := h.floodTicks(3)
	after := testkit.LiveHeap()
	t.Logf("live heap %s before, %s after 3 collections (%+d bytes); at most %s allocated by one; collection+evaluation %v",
		mb(before), mb(after), int64(after)-int64(before), mb(alloc), took)

	// The small target's 3 series at each of the 3 collections, and no more.
	if n := h.storeSamples("flood_series"); n != 9 {
		t.Errorf("%d flood_series samples stored, want 9 (3 series of the small target, 3 collections)", n)
	}
	if n := h.d.store.SeriesBy(collectors.LabelTarget)["big"]; n > 4 {
		t.Errorf("%d series of target big stored, want only its 4 vigil.collector.* series", n)
	}
	line, ok := h.logLine("level=WARN", "target collection failing", "target=big")
	if !ok {
		t.Fatalf("no warning that target big fails:\n%.2000s", h.logs.String())
	}
	contains(t, "the warning", line, "sample_limit exceeded", "10000", "nothing of this collection is stored")
	if _, ok := h.logLine("level=WARN", "target=small"); ok {
		t.Error("the small target is reported failing too")
	}
	mfs := h.families()
	check := func(name string, want float64, labels ...string) {
		t.Helper()
		if v, ok := value(mfs, name, labels...); !ok || v != want {
			t.Errorf("%s%v = %v (present %v), want %v", name, labels, v, ok, want)
		}
	}
	check("vigil_collector_exceeded_sample_limit_total", 3, "collector", "flood")
	check("vigil_collector_errors_total", 3, "collector", "flood", "target", "big")
	check("vigil_collector_errors_total", 0, "collector", "flood", "target", "small")
	check("vigil_collector_last_success_timestamp_seconds", float64(h.now().Unix()), "collector", "flood", "target", "small")
	if _, ok := value(mfs, "vigil_collector_last_success_timestamp_seconds", "collector", "flood", "target", "big"); ok {
		t.Error("target big has a last success")
	}
	// The scrape stops reading at the 10,001st sample: it parses 10,000,
	// a hundredth of the page (~6 MB allocated), and keeps none.
	if alloc > 32<<20 {
		t.Errorf("a collection refused by sample_limit allocated %s: the page was read past the limit", mb(alloc))
	}
	if after > before+8<<20 {
		t.Errorf("live heap grew from %s to %s over 3 refused collections", mb(before), mb(after))
	}
}

// A million series of a metric a rule reads and no sample_limit: the
// store keeps store.max_series of them and refuses the rest at every
// collection, says so on /metrics and in a warning, and the example
// self-alert VigilStoreNearlyFull fires. What stays in memory is bounded
// by max_series, not by the page.
func TestMillionSeriesOverMaxSeries(t *testing.T) {
	if raceEnabled {
		t.Skip("a million series parsed: minutes under the race detector")
	}
	floodPage()
	example, err := os.ReadFile("../../examples/rules/vigil.yaml")
	if err != nil {
		t.Fatal(err)
	}
	const maxSeries = 50_000
	// The second collection finds the target calm again: the store's size
	// is written before each collection, so the self-alert sees the flood
	// at the next one, and a second million would cost seconds more.
	var calm atomic.Bool
	page := func() []byte {
		if calm.Load() {
			return smallPage()
		}
		return floodPage()
	}
	h := newFloodHarness(t, floodConfig("", "  max_series: "+strconv.Itoa(maxSeries), "big", servePage(t, page)),
		floodRules("flood_series"), 10*time.Second)
	h.write("rules/vigil.yaml", strings.NewReplacer("for: 5m", "for: 0s", "notify: [oncall-slack]", "").Replace(string(example)))
	if err := h.d.Reload("test"); err != nil {
		t.Fatal(err)
	}
	before := testkit.LiveHeap()
	took, alloc := h.floodTicks(1)
	after := testkit.LiveHeap()
	t.Logf("live heap %s before, %s after the collection (%+d bytes, %d B a series held); %s allocated; collection+evaluation %v; peak RSS %s",
		mb(before), mb(after), int64(after)-int64(before), (int64(after)-int64(before))/maxSeries, mb(alloc), took, peakRSS())

	if series, _ := h.d.store.Stats(); series != maxSeries {
		t.Errorf("the store holds %d series, want max_series %d", series, maxSeries)
	}
	// The target's own health gets in before its flood fills the store: a
	// rule on vigil.collector.up still sees the target that caused it.
	for _, m := range []string{collectors.MetricUp, collectors.MetricErrors, collectors.MetricDuration, collectors.MetricSamples} {
		if n := h.storeSamples(m); n != 1 {
			t.Errorf("%d samples of %s stored, want the target's 1", n, m)
		}
	}
	mfs := h.families()
	for name, want := range map[string]float64{"vigil_store_series": maxSeries, "vigil_store_max_series": maxSeries} {
		if v, _ := value(mfs, name); v != want {
			t.Errorf("%s %v, want %v", name, v, want)
		}
	}
	if v, _ := value(mfs, "vigil_store_series_refused_total"); v < floodSeries-maxSeries {
		t.Errorf("vigil_store_series_refused_total %v after a collection of %d new series over a bound of %d", v, floodSeries, maxSeries)
	}
	line, ok := h.logLine("level=WARN", "window store full")
	if !ok {
		t.Fatalf("no warning that the store is full:\n%.2000s", h.logs.String())
	}
	contains(t, "the warning", line, "max_series="+strconv.Itoa(maxSeries), "collector=flood", "series="+strconv.Itoa(maxSeries))
	calm.Store(true)
	h.tick(1)
	if series, _ := h.d.store.Stats(); series != maxSeries {
		t.Errorf("after a calm collection the store holds %d series, want still max_series %d", series, maxSeries)
	}
	if a, ok := h.alert("VigilStoreNearlyFull"); !ok || a.State.String() != "firing" {
		t.Errorf("VigilStoreNearlyFull: %+v (present %v), want firing", a, ok)
	}
	// 50,000 series of ~870 bytes (one sample, four labels): ~43 MB,
	// where the million would hold ~900 MB.
	if after > before+64<<20 {
		t.Errorf("live heap grew from %s to %s holding %d series", mb(before), mb(after), maxSeries)
	}
}

// churnPage is, at its n-th request (from 0), size series of
// flood_series no earlier request had, labelled gen="<n>". The page is
// rewritten in one buffer.
type churnPage struct {
	size int
	mu   sync.Mutex
	n    int
	buf  []byte
}

// churnSeries is the 200,000 new series a scrape.
const churnSeries = 200_000

func (c *churnPage) next() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := append(c.buf[:0], "# TYPE flood_series gauge\n"...)
	b = appendSeries(b, `flood_series{gen="`+strconv.Itoa(c.n)+`",`, c.n*c.size, c.size)
	c.buf = b
	c.n++
	return b
}

// A target exposing 200,000 new series at every scrape (a label holding a
// request id, say), scraped every minute: series that stopped reporting
// are forgotten once their sample leaves the retention (the rule's 1m
// window + 1m; store.retention_slack is 1s), max_series caps what is held
// in between, new series get in again as old ones go, and the live heap
// levels off instead of growing scrape after scrape.
func TestChurningSeries(t *testing.T) {
	if raceEnabled {
		t.Skip("200,000 series a scrape: minutes under the race detector")
	}
	const maxSeries = 300_000
	churn := &churnPage{size: churnSeries}
	h := newFloodHarness(t, floodConfig("", "  max_series: "+strconv.Itoa(maxSeries)+"\n  retention_slack: 1s", "churn", servePage(t, churn.next)),
		floodRules("flood_series"), time.Minute)
	// A series is forgotten at the first store GC (the engine runs one a
	// minute) after its sample left the 2m retention and it reached the
	// 1m1s series retention (window + slack).
	const forgetAfter = 3 * time.Minute
	// Held and refused go in a cycle of 3 scrapes: 200,000 held, 300,000
	// (100,000 refused), then the first scrape's series are forgotten.
	// The live heap is read at the peak and the trough of two cycles
	// (two GCs take ~0.2 s at 300,000 series).
	const scrapes = 6
	heap := map[int]uint64{}
	var lastRefused float64
	for i := 1; i <= scrapes; i++ {
		took := h.timedTick()
		if i%3 != 1 {
			heap[i] = testkit.LiveHeap()
		}
		series, _ := h.d.store.Stats()
		gens := h.d.store.SeriesBy("gen")
		mfs := h.families()
		refused, _ := value(mfs, "vigil_store_series_refused_total")
		held, _ := value(mfs, "vigil_store_series")
		live := "not measured"
		if heap[i] > 0 {
			live = mb(heap[i])
		}
		t.Logf("scrape %d: %v, live heap %s, %d series held (/metrics: %v), by gen %v, refused %v", i, took, live, series, held, gens, refused)
		if held > maxSeries || int(held) != series {
			t.Errorf("scrape %d: vigil_store_series %v with %d series held, want at most max_series %d", i, held, series, maxSeries)
		}
		if v, _ := value(mfs, "vigil_collector_samples", "collector", "flood"); v != churnSeries {
			t.Errorf("scrape %d: vigil_collector_samples %v, want %d: the target is fine, the store refuses", i, v, churnSeries)
		}
		if refused < lastRefused {
			t.Errorf("scrape %d: vigil_store_series_refused_total went down from %v to %v", i, lastRefused, refused)
		}
		lastRefused = refused
		newest := -1
		for g, n := range gens {
			gen, _ := strconv.Atoi(g)
			newest = max(newest, gen)
			// Gen g was scraped at minute g+1.
			if age := time.Duration(i-gen-1) * time.Minute; age > forgetAfter {
				t.Errorf("scrape %d: %d series of gen %s still held, their last sample %v old; forgotten after %v", i, n, g, age, forgetAfter)
			}
		}
		// Scrape i exposes gen i-1: one of the last three gets in.
		if i >= 3 && newest < i-3 {
			t.Errorf("scrape %d: the newest series held are of gen %d; none of the last 3 scrapes got in", i, newest)
		}
	}
	if lastRefused == 0 {
		t.Error("nothing refused: max_series did not bound the store")
	}
	// Go maps keep the room of the most series they held, so the first
	// cycle's peak and trough are the baseline, not its first scrape.
	// 5 % of the peak is 14 MB: 300,000 series enter the store and leave
	// it in a cycle, so 50 bytes left behind by each would show.
	for _, i := range []int{5, 6} {
		first := heap[i-3]
		if heap[i] > first+first/20 {
			t.Errorf("live heap %s after scrape %d, %s at the same point of the first cycle: it grows scrape over scrape", mb(heap[i]), i, mb(first))
		}
	}
}

// Without max_series, the default, churn is bounded by the retention
// alone: at 50,000 new series a scrape (a quarter of the issue's, to keep
// the test quick) the store holds the last two or three scrapes' series,
// the same number at every scrape once the first are forgotten, and the
// live heap stays where it was.
func TestChurningSeriesRetentionOnly(t *testing.T) {
	if raceEnabled {
		t.Skip("50,000 series a scrape: a minute under the race detector")
	}
	const size = 50_000
	churn := &churnPage{size: size}
	h := newFloodHarness(t, floodConfig("", "  retention_slack: 1s", "churn", servePage(t, churn.next)),
		floodRules("flood_series"), time.Minute)
	// Series whose sample is in the retention (2m: the 1m window + 1m)
	// plus those the once-a-minute store GC has not reached yet.
	const bound = 3*size + 100
	const scrapes = 6
	heap := map[int]uint64{}
	held := map[int]int{}
	for i := 1; i <= scrapes; i++ {
		took := h.timedTick()
		if i == 3 || i == scrapes {
			heap[i] = testkit.LiveHeap()
		}
		held[i], _ = h.d.store.Stats()
		t.Logf("scrape %d: %v, %d series held", i, took, held[i])
		if held[i] > bound {
			t.Errorf("scrape %d: %d series held; at %d new a scrape the retention bounds them to %d", i, held[i], size, bound)
		}
		if i > 3 && held[i] != held[3] {
			t.Errorf("scrape %d: %d series held, %d at scrape 3: the store should hold as many at every scrape once the first are forgotten", i, held[i], held[3])
		}
	}
	mfs := h.families()
	if v, _ := value(mfs, "vigil_store_series"); int(v) != held[scrapes] {
		t.Errorf("vigil_store_series %v, the store holds %d", v, held[scrapes])
	}
	if v, _ := value(mfs, "vigil_store_series_refused_total"); v != 0 {
		t.Errorf("%v refused with no max_series", v)
	}
	t.Logf("live heap %s after scrape 3, %s after scrape %d", mb(heap[3]), mb(heap[scrapes]), scrapes)
	// 150,000 series went through the store between the two readings; 5 %
	// of the heap is ~5 MB, 35 bytes left behind by each.
	if heap[scrapes] > heap[3]+heap[3]/20 {
		t.Errorf("live heap %s after scrape 3, %s after scrape %d, holding the same number of series", mb(heap[3]), mb(heap[scrapes]), scrapes)
	}
}
