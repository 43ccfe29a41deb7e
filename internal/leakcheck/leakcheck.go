// Package leakcheck fails a test binary whose tests leave goroutines
// running: every Stop or Close in Vigil must wait for what it started.
package leakcheck

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Options says which goroutines count and how long they get to finish.
type Options struct {
	// Wait is how long goroutines may take to end after the tests
	// (default 2s).
	Wait time.Duration
	// Only, when set, counts only goroutines whose stack mentions it (a
	// package's own), so the runtime's and libraries' pools do not matter.
	Only string
	// Ignore lists stack fragments of goroutines that live as long as the
	// process by design (os/signal's loop).
	Ignore []string
	// Cleanup runs after the tests, before the check (shared fixtures).
	Cleanup func()
}

// Main runs the tests, then exits non-zero if more goroutines are left
// than there were before. Call it from TestMain.
func Main(m *testing.M, o Options) {
	if o.Wait == 0 {
		o.Wait = 2 * time.Second
	}
	before, _ := count(o)
	code := m.Run()
	if o.Cleanup != nil {
		o.Cleanup()
	}
	if code == 0 {
		deadline := time.Now().Add(o.Wait)
		n, stacks := count(o)
		for n > before && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
			n, stacks = count(o)
		}
		if n > before {
			fmt.Fprintf(os.Stderr, "goroutine leak: %d before the tests, %d after\n%s\n", before, n, stacks)
			code = 1
		}
	}
	os.Exit(code)
}

func count(o Options) (int, string) {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var kept []string
next:
	for _, g := range strings.Split(string(buf), "\n\n") {
		if o.Only != "" && !strings.Contains(g, o.Only) {
			continue
		}
		for _, ig := range o.Ignore {
			if strings.Contains(g, ig) {
				continue next
			}
		}
		kept = append(kept, g)
	}
	return len(kept), strings.Join(kept, "\n\n")
}
