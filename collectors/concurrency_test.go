package collectors_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestMaxConcurrency: with max_concurrency 3 and seven HTTP targets that
// answer only when the test lets them, exactly three are asked at once,
// never a fourth, and every target is collected in the end.
func TestMaxConcurrency(t *testing.T) {
	const limit, targets = 3, 7
	var (
		mu       sync.Mutex
		inFlight int
		most     int
		served   int
		changed  = make(chan struct{}, 100)
		release  = make(chan struct{})
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inFlight++
		most = max(most, inFlight)
		mu.Unlock()
		changed <- struct{}{}
		<-release
		mu.Lock()
		inFlight--
		served++
		mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open) // before srv.Close: a failing test must not hang its handlers
	var list []string
	for i := range targets {
		list = append(list, fmt.Sprintf(`{name: t%d, address: "%s/%d"}`, i, srv.URL, i))
	}
	cs := build(t, load(t, `collectors:
  - name: web
    type: probe
    timeout: 30s
    max_concurrency: `+fmt.Sprint(limit)+`
    targets: [`+strings.Join(list, ", ")+`]`))

	done := make(chan error, 1)
	go func() {
		_, err := cs[0].Collect(context.Background(), time.Now())
		done <- err
	}()
	// The limit is reached...
	deadline := time.After(10 * time.Second)
	for n := 0; n < limit; n++ {
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("only %d targets asked at once, want %d", n, limit)
		}
	}
	// ...and no further target starts while those three hang. A fourth
	// would arrive within microseconds; 200ms is a generous window.
	select {
	case <-changed:
		mu.Lock()
		defer mu.Unlock()
		t.Fatalf("%d targets asked at once with max_concurrency %d", inFlight, limit)
	case <-time.After(200 * time.Millisecond):
	}
	open()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Collect: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Collect did not return")
	}
	mu.Lock()
	defer mu.Unlock()
	if most != limit || served != targets {
		t.Errorf("at most %d at once (want %d), %d of %d targets served", most, limit, served, targets)
	}
}
