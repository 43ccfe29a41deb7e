package notifiers_test

import (
	"net/http"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
)

// TestRetryBackoffGrowsToItsCap: a receiver answering 500 is tried again
// after pauses that double from backoff_base and stop growing at
// backoff_max (each with jitter in [d/2, d]). The schedule is read from
// the dispatcher's own debug log, which says how long it waits before
// each attempt; the receiver's real attempt times must be at least those
// pauses apart (a lower bound only: a loaded machine can be late, never
// early).
func TestRetryBackoffGrowsToItsCap(t *testing.T) {
	const (
		base  = 20 * time.Millisecond
		limit = 50 * time.Millisecond // not base·2ⁿ: the cap, not the doubling, must stop it
		fails = 10
	)
	var script []func(http.ResponseWriter)
	for range fails {
		script = append(script, status(http.StatusInternalServerError))
	}
	hook := newReceiver(t, script...)
	h := build(t, notifiers.Config{
		Channels:    []notifiers.ChannelConfig{webhookChannel("ops-webhook", hook.URL)},
		BackoffBase: base, BackoffMax: limit, DeliveryTimeout: time.Minute,
	})
	a := []model.Alert{member(unreachable, 1, model.StateFiring, "ops-webhook")}
	h.d.Process(t0, a)
	h.d.Process(t0.Add(time.Minute), a)
	waitUntil(t, "the delivery after the failures", func() bool { return len(hook.got()) == 1 })
	h.settle(t)

	waits := map[int]time.Duration{} // attempts so far -> pause before the next
	for _, m := range regexp.MustCompile(`msg="waiting for the next attempt".* attempts=(\d+) wait=(\S+)`).FindAllStringSubmatch(h.log.String(), -1) {
		n, _ := strconv.Atoi(m[1])
		d, err := time.ParseDuration(m[2])
		if err != nil {
			t.Fatalf("wait %q: %v", m[2], err)
		}
		waits[n] = d
	}
	if len(waits) != fails {
		t.Fatalf("%d pauses logged, want one after each of the %d failures:\n%s", len(waits), fails, h.log.String())
	}
	want := base
	for n := 1; n <= fails; n++ {
		if got := waits[n]; got < want/2 || got > want {
			t.Errorf("pause after attempt %d: %v, want in [%v, %v]", n, got, want/2, want)
		}
		want = min(2*want, limit)
	}

	hook.mu.Lock()
	times := append([]time.Time(nil), hook.times...)
	hook.mu.Unlock()
	if len(times) != fails+1 {
		t.Fatalf("%d attempts reached the receiver, want %d", len(times), fails+1)
	}
	for n := 1; n <= fails; n++ {
		if gap := times[n].Sub(times[n-1]); gap < waits[n] {
			t.Errorf("attempt %d came %v after the one before, sooner than the %v pause", n+1, gap, waits[n])
		}
	}
}
