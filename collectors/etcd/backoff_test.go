package etcd

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/collectors/etcd/etcdtest"
	"google.golang.org/grpc/connectivity"
)

// refuser stands in for a member that is down but whose host is up: it
// accepts each connection and closes it at once, so every gRPC connection
// attempt fails ("error reading server preface: EOF") and is recorded.
type refuser struct {
	l  net.Listener
	mu sync.Mutex
	at []time.Time
}

func newRefuser(t *testing.T) *refuser {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &refuser{l: l}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			r.mu.Lock()
			r.at = append(r.at, time.Now())
			r.mu.Unlock()
			c.Close()
		}
	}()
	return r
}

func (r *refuser) endpoint() string { return "http://" + r.l.Addr().String() }

func (r *refuser) attempts() []time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Time(nil), r.at...)
}

// waitAttempts polls until n connection attempts were made, or fails.
func (r *refuser) waitAttempts(t *testing.T, n int, within time.Duration) []time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		at := r.attempts()
		if len(at) >= n {
			return at
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connection attempts in %v, want %d", len(at), within, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestReconnectBackoffCapped watches the client's own reconnection attempts
// to a down member, with no collections to prompt them: the gaps grow from
// the base delay and stop at ReconnectMaxDelay. With gRPC's default
// back-off the gaps would be 1 s, 1.6 s, 2.6 s, 4.1 s ... up to 120 s, so
// the attempt count and the largest gap both tell the options apart.
func TestReconnectBackoffCapped(t *testing.T) {
	t.Parallel()
	const maxDelay = 300 * time.Millisecond
	r := newRefuser(t)
	s, err := New(Config{
		Members:           []Member{{Endpoint: r.endpoint()}},
		Timeout:           time.Second,
		ReconnectMaxDelay: maxDelay,
		SkipMetricsPage:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// One collection creates the client; it fails on the first attempt.
	if _, err := s.Scrape(context.Background(), 0, time.Unix(0, 0)); err == nil {
		t.Fatal("scrape of a down member succeeded")
	}
	// Base 200 ms, then 300 ms each (x1.6 capped), +-20% jitter: 10
	// attempts take about 2.9 s. gRPC's default makes 5 in 9 s.
	const n = 10
	at := r.waitAttempts(t, n, 5*time.Second)
	var largest time.Duration
	for i := 1; i < n; i++ {
		largest = max(largest, at[i].Sub(at[i-1]))
	}
	t.Logf("%d attempts in %v, largest gap %v", n, at[n-1].Sub(at[0]), largest)
	// Jitter allows 1.2 x maxDelay; the rest is scheduling slack.
	if limit := maxDelay*12/10 + 300*time.Millisecond; largest > limit {
		t.Errorf("largest gap between reconnection attempts %v, want at most %v", largest, limit)
	}
}

// TestScrapeRetriesNow: a collection of a member whose client is waiting
// out a back-off makes a connection attempt at once rather than failing on
// the previous attempt's error.
func TestScrapeRetriesNow(t *testing.T) {
	t.Parallel()
	r := newRefuser(t)
	s, err := New(Config{
		Members: []Member{{Endpoint: r.endpoint()}},
		// Far above what a refused connection takes even on a loaded
		// machine: a scrape that waits out the back-off hits it.
		Timeout: 5 * time.Second,
		// Long enough that only a collection can prompt a prompt attempt.
		ReconnectMaxDelay: time.Minute,
		SkipMetricsPage:   true,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Scrape(context.Background(), 0, time.Unix(0, 0)); err == nil {
		t.Fatal("scrape of a down member succeeded")
	}
	// Each scrape resets the back-off, so before each one let it grow
	// again: attempts at about 0, 0.2, 0.52, 1.03, 1.85 s; the next waits at
	// least 1.3 s x 0.8. An attempt before then was prompted by the scrape.
	need := 5
	for i := range 3 {
		at := r.waitAttempts(t, need, 10*time.Second)
		quiet := at[len(at)-1].Add(1040 * time.Millisecond)
		// Scrape while the client waits out its back-off, not while an
		// attempt is still in flight (its failure is that attempt's).
		waitBackingOff(t, s)
		// The channel stays TRANSIENT_FAILURE while it attempts again
		// (pick_first's sticky failure): give the last attempt time to fail.
		last := r.attempts()
		time.Sleep(time.Until(last[len(last)-1].Add(150 * time.Millisecond)))
		before := len(r.attempts())
		start := time.Now()
		if _, err := s.Scrape(context.Background(), 0, time.Unix(int64(i+1), 0)); err == nil {
			t.Fatal("scrape of a down member succeeded")
		}
		if took := time.Since(start); took > 2500*time.Millisecond {
			t.Errorf("scrape of a refusing member took %v", took)
		}
		// On a loaded machine the prompted attempt may be accepted just
		// after the scrape gave up waiting for it, or the scrape may come
		// after the back-off ran out; wait a little past either.
		deadline := quiet
		if d := time.Now().Add(2 * time.Second); d.After(deadline) {
			deadline = d
		}
		for len(r.attempts()) == before && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		switch got := r.attempts(); {
		case len(got) == before:
			t.Errorf("scrape %d made no connection attempt", i)
		case got[before].After(quiet) && start.Before(quiet.Add(-500*time.Millisecond)):
			t.Errorf("scrape %d at %v before the back-off ran out made no attempt until after it", i, quiet.Sub(start))
		case got[before].After(quiet):
			t.Logf("scrape %d: first attempt after the back-off could have expired; not checked", i)
		}
		// The prompted attempt starts the back-off over.
		need = len(r.attempts()) + 4
	}
}

// waitBackingOff waits until the single member's connection has seen its
// last attempt fail and waits out the back-off.
func waitBackingOff(t *testing.T, s *Scraper) {
	t.Helper()
	m := s.members[0]
	m.mu.Lock()
	cli := m.cli
	m.mu.Unlock()
	conn := cli.ActiveConnection()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for st := conn.GetState(); st != connectivity.TransientFailure; st = conn.GetState() {
		if !conn.WaitForStateChange(ctx, st) {
			t.Fatalf("connection stayed %v, want TRANSIENT_FAILURE", st)
		}
	}
}

// TestRestartedMemberSeenPromptly stops a real member long enough for
// gRPC's default back-off to have grown past the next collection, restarts
// it, and polls: the collector must see it again at once, not when a
// back-off of up to 120 s runs out.
func TestRestartedMemberSeenPromptly(t *testing.T) {
	t.Parallel()
	c := etcdtest.StartCluster(t, 1)
	m := c.Members()[0]
	s := newScraper(t, c, func(cfg *Config) { cfg.SkipMetricsPage = true })
	if out, _, err := scrape(s, 0, time.Unix(0, 0)); err != nil || value(t, out, "etcd.can_connect") != 1 {
		t.Fatalf("healthy member: %v", err)
	}
	m.Stop()
	out, took, err := scrape(s, 0, time.Unix(1, 0))
	if err == nil || value(t, out, "etcd.can_connect") != 0 {
		t.Fatalf("stopped member: can_connect 1, err %v", err)
	}
	if took > 500*time.Millisecond {
		t.Errorf("stopped member took %v: a refused connection should fail at once", took)
	}
	// The outage: the client retries on its own, unprompted, as it does
	// between two collections. After 3 s gRPC's default back-off would
	// next try at about 5.2 s, then 9.3 s; Vigil's at most 2.4 s apart.
	outage := time.Now()
	time.Sleep(3 * time.Second)
	m.Restart(t)
	back := time.Now()
	// By gRPC's default back-off the next attempt would come about 2 s
	// after the restart (up to 120 s after a longer outage); by the capped
	// one within 2.4 s; with the collection prompting it, at once.
	const bound = time.Second
	var lastErr error
	for polls := 0; time.Since(back) < bound; polls++ {
		out, _, err := scrape(s, 0, time.Unix(2, 0))
		if err == nil && value(t, out, "etcd.can_connect") == 1 {
			t.Logf("outage %v; seen again %v after the restart, at poll %d", back.Sub(outage), time.Since(back), polls)
			return
		}
		lastErr = err
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("restarted member not seen within %v: %v", bound, lastErr)
}
