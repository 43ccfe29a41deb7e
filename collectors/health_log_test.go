package collectors_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/collectors"
)

// A scrape target that goes down for ten collections and comes back is
// logged twice at info and above: a WARN when it starts failing (with
// collector, target and error) and an INFO when it recovers, with the
// number of failed collections; not a WARN per collection.
func TestTargetFailureLoggedOnceAndRecovery(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	serve := func(ln net.Listener) *httptest.Server {
		s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintln(w, "app_up 1")
		}))
		s.Listener.Close()
		s.Listener = ln
		s.Start()
		return s
	}
	srv := serve(ln)
	defer func() { srv.Close() }()

	var logs lockedBuffer
	logger := slog.New(slog.NewJSONHandler(&logs, nil)) // info and up, as `vigil run`
	cs, err := collectors.Build(load(t, `collectors:
  - name: app
    type: prometheus
    timeout: 1s
    targets: [{name: web, address: "http://`+addr+`/metrics"}]`), logger)
	if err != nil {
		t.Fatal(err)
	}
	defer cs[0].(*collectors.TargetCollector).Close()

	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	i := 0
	collect := func(n int, wantErr bool) {
		t.Helper()
		for range n {
			i++
			_, err := cs[0].Collect(context.Background(), base.Add(time.Duration(i)*10*time.Second))
			if (err != nil) != wantErr {
				t.Fatalf("collection %d: err %v, want an error: %v", i, err, wantErr)
			}
		}
	}
	collect(5, false)
	srv.Close() // the target goes down
	collect(10, true)
	ln, err = net.Listen("tcp", addr) // and comes back on its address
	if err != nil {
		t.Fatal(err)
	}
	srv = serve(ln)
	collect(5, false)

	type line struct {
		Level, Msg, Collector, Target, Err string
		Failed                             int       `json:"failed_collections"`
		Since                              time.Time `json:"failing_since"`
	}
	var got []line
	for _, s := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("log line %q: %v", s, err)
		}
		got = append(got, l)
	}
	if len(got) != 2 {
		t.Fatalf("want 2 log lines (failing, recovered), got %d:\n%s", len(got), logs.String())
	}
	if w := got[0]; w.Level != "WARN" || w.Msg != "target collection failing" || w.Collector != "app" || w.Target != "web" ||
		!strings.Contains(w.Err, "connection refused") {
		t.Errorf("first line: %+v", w)
	}
	if r := got[1]; r.Level != "INFO" || r.Msg != "target collection recovered" || r.Collector != "app" || r.Target != "web" ||
		r.Failed != 10 || !r.Since.Equal(base.Add(60*time.Second)) {
		t.Errorf("recovery line: %+v", r)
	}
}

// lockedBuffer is a log destination safe for concurrent writers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
