package etcd

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedLog collects log lines written from the client's goroutines.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// The etcd client's own zap logs reach Vigil's slog logger: a member that
// refuses connections makes the client warn about every failed call, which
// arrives at DEBUG (demoted: one per collection), naming the client,
// the member and the error. At INFO, collecting a dead member three times
// writes no client line at all.
func TestClientLogsReachSlog(t *testing.T) {
	scrapeDead := func(level slog.Level) string {
		var logs lockedLog
		s, err := New(Config{Members: []Member{{Endpoint: "http://127.0.0.1:1"}}, Timeout: 300 * time.Millisecond,
			SkipMetricsPage: true, Logger: slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: level}))})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		for range 3 {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			_, err := s.Scrape(ctx, 0, time.Now())
			cancel()
			if err == nil {
				t.Fatal("a dead member scraped without error")
			}
		}
		return logs.String()
	}
	out := scrapeDead(slog.LevelDebug)
	var found bool
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%q: %v", l, err)
		}
		if m["client"] == "etcd" && m["endpoint"] == "http://127.0.0.1:1" && m["level"] == "DEBUG" &&
			m["msg"] == "retrying of unary invoker failed" && strings.Contains(fmt.Sprint(m["error"]), "connection refused") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no etcd client line at DEBUG for the refused member:\n%s", out)
	}
	if out := scrapeDead(slog.LevelInfo); out != "" {
		t.Errorf("at INFO the client logs every failed call:\n%s", out)
	}
}
