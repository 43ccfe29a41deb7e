package scheduler

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *fakeClock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

var base = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

// Each run gets its grid slot whatever the wake-up delay; a run that
// overruns makes cron skip the next slot, which is counted as a miss.
func TestSlotsAndMisses(t *testing.T) {
	clk := &fakeClock{t: base.Add(300 * time.Millisecond)}
	reg := prometheus.NewRegistry()
	s := New(Options{Now: clk.Now, Registerer: reg})
	var got []time.Time
	block, entered := make(chan struct{}), make(chan struct{})
	s.Add("eval/g", Every(10*time.Second), func(_ context.Context, slot time.Time) {
		got = append(got, slot)
		if len(got) == 2 {
			close(entered)
			<-block // overrun the second slot
		}
	})
	j := s.jobs["eval/g"]
	wake := func(at time.Duration) { clk.Set(base.Add(at)); j.wrapped.Run() }

	wake(10*time.Second + 40*time.Millisecond) // late wake-up: slot is still :10
	done := make(chan struct{})
	go func() { wake(20*time.Second + 5*time.Millisecond); close(done) }()
	<-entered
	wake(30 * time.Second) // still running: SkipIfStillRunning drops it
	close(block)
	<-done
	wake(40*time.Second + 2*time.Millisecond)
	wake(40*time.Second + 900*time.Millisecond) // same slot again: nothing

	want := []time.Time{base.Add(10 * time.Second), base.Add(20 * time.Second), base.Add(40 * time.Second)}
	if len(got) != len(want) {
		t.Fatalf("slots %v, want %v", got, want)
	}
	for i := range want {
		if !got[i].Equal(want[i]) {
			t.Errorf("slot %d = %v, want %v", i, got[i], want[i])
		}
	}
	if m := s.Misses("eval/g"); m != 1 {
		t.Errorf("misses %d, want 1", m)
	}
	if v := testutil.ToFloat64(s.misses.WithLabelValues("eval/g")); v != 1 {
		t.Errorf("missed slots metric %v, want 1", v)
	}
	if err := s.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// A panicking job is recovered and runs again at its next slot.
func TestPanicDoesNotStopTheJob(t *testing.T) {
	clk := &fakeClock{t: base}
	s := New(Options{Now: clk.Now})
	runs := 0
	s.Add("collect/x", Every(time.Second), func(context.Context, time.Time) {
		runs++
		if runs == 1 {
			panic("boom")
		}
	})
	j := s.jobs["collect/x"]
	clk.Set(base.Add(time.Second))
	j.wrapped.Run()
	clk.Set(base.Add(2 * time.Second))
	j.wrapped.Run()
	if runs != 2 {
		t.Fatalf("runs %d, want 2", runs)
	}
	s.Stop(context.Background())
}

// The grid keeps cron's wake-ups on the slots: Next never drifts with
// late wake-ups, and a cron spec works as well as @every.
func TestGridNext(t *testing.T) {
	g := &grid{inner: Every(30 * time.Second)}
	g.cursor = g.inner.Next(base.Add(100 * time.Millisecond)) // 12:00:30
	if n := g.Next(base.Add(31*time.Second + 999*time.Millisecond)); !n.Equal(base.Add(time.Minute)) {
		t.Fatalf("next %v", n)
	}
	spec, err := Parse("*/5 * * * *")
	if err != nil {
		t.Fatal(err)
	}
	g = &grid{inner: spec, cursor: spec.Next(base)}
	if s, _ := g.slotAt(base.Add(11 * time.Minute)); !s.Equal(base.Add(10 * time.Minute)) {
		t.Fatalf("slot %v", s)
	}
}

// Started for real, the scheduler stops promptly and cancels its jobs.
func TestStopCancelsRunningJob(t *testing.T) {
	s := New(Options{})
	started := make(chan struct{})
	s.Add("j", Every(time.Second), func(ctx context.Context, _ time.Time) {
		close(started)
		<-ctx.Done()
	})
	s.Start()
	go s.jobs["j"].wrapped.Run() // as cron would at the first slot
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Stop(ctx); err != nil {
		t.Fatal("second Stop:", err)
	}
}
