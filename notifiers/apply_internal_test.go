package notifiers

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/vigil-alerts/vigil/notifiers/console"
)

// Which channel objects Apply keeps: the same name and config keep the
// running channel (queue, workers, sender); a changed config replaces it
// and retires the old one. Not visible from outside but for timing, so
// checked here.
func TestApplyKeepsOrReplacesChannels(t *testing.T) {
	cfg := Config{Channels: []ChannelConfig{
		{Name: "a", Console: &console.Config{}},
		{Name: "b", Console: &console.Config{}},
	}}
	d, err := Build(cfg, WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	defer d.Stop(context.Background())
	a, b := d.chans[0], d.chans[1]

	next := Config{Channels: []ChannelConfig{
		{Name: "c", Console: &console.Config{}},
		{Name: "b", Concurrency: 1, Console: &console.Config{}},
		// Only its grouping changes: the same sender, the new timings.
		{Name: "a", Console: &console.Config{}, GroupBy: []string{"cluster"}, RepeatInterval: 24 * time.Hour},
	}}
	if err := d.Apply(next); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if got := d.chans[d.byName["a"]]; got != a {
		t.Error("channel a, whose sender is unchanged, was replaced")
	}
	if g := d.grouping[d.byName["a"]]; g.repeat != 24*time.Hour || len(g.by) != 1 || g.wait != DefaultGroupWait {
		t.Errorf("channel a's grouping after Apply: %+v", g)
	}
	if got := d.chans[d.byName["b"]]; got == b || got.workers != 1 {
		t.Errorf("changed channel b not replaced by one with its new settings: %+v", got)
	}
	select {
	case <-b.quit:
	default:
		t.Error("replaced channel b not retired")
	}
	if b.removed || errors.Is(context.Cause(b.ctx), errChannelRemoved) {
		t.Error("replaced channel b treated as removed")
	}
	for i, c := range d.chans {
		if d.byName[c.name] != i || !c.launched() {
			t.Errorf("channel %q: index %d, byName %d, launched %v", c.name, i, d.byName[c.name], c.launched())
		}
	}
}

// A retired channel never writes the queue gauge it shares with its
// successor: whatever its worker still does with its (taken) queue, the
// gauge is the successor's.
func TestRetiredChannelLeavesQueueGauge(t *testing.T) {
	m := newMetrics(nil)
	gauge := func() float64 {
		var out dto.Metric
		if err := m.queue.WithLabelValues("a").Write(&out); err != nil {
			t.Fatal(err)
		}
		return out.GetGauge().GetValue()
	}
	old := newChannel("a", nil, nil, false, 1)
	old.gauge = m.queue.WithLabelValues("a")
	old.enqueue(&job{}, &job{}, &job{})
	old.pop()
	if v := gauge(); v != 2 {
		t.Fatalf("gauge %v, want 2", v)
	}
	q := old.take() // retire
	succ := newChannel("a", nil, nil, false, 1)
	succ.gauge = m.queue.WithLabelValues("a")
	succ.enqueue(q...)
	if v := gauge(); v != 2 {
		t.Fatalf("gauge %v after the move, want 2", v)
	}
	// What the retired worker might still do: look at its queue again.
	if j := old.pop(); j != nil {
		t.Fatalf("retired channel popped %v", j)
	}
	old.enqueue(&job{})
	old.pop()
	old.take()
	if v := gauge(); v != 2 {
		t.Errorf("gauge %v after the retired channel's queue operations, want the successor's 2", v)
	}
}
