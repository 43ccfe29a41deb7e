package notifiers

import (
	"context"
	"errors"
	"log/slog"
	"testing"

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
		{Name: "a", Console: &console.Config{}},
	}}
	if err := d.Apply(next); err != nil {
		t.Fatal(err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if got := d.chans[d.byName["a"]]; got != a {
		t.Error("unchanged channel a was replaced")
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
