package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// SIGTERM while a notification is being delivered: collection and
// evaluation stop, the delivery finishes, state is saved, exit status 0.
func TestSIGTERMMidDeliveryLosesNothing(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		select {
		case <-entered:
		default:
			close(entered)
		}
		<-release
		mu.Lock()
		got = append(got, string(b))
		mu.Unlock()
	}))
	defer srv.Close()

	h := newHarness(t, upRule)
	h.d.Stop()
	h.write("vigil.yaml", baseConfig(sharedEtcd(t), "    - name: hook\n      webhook: {url: \""+srv.URL+"\"}\n"))
	h.write("rules/etcd.yaml", strings.NewReplacer("for: 1m", "for: 0s", "notify: [console]", "notify: [hook]").Replace(upRule))
	h.start()

	sig, stop := notifySignals()
	defer stop()
	h.tick(2) // fires, then group_wait passes: the message is handed to the webhook
	<-entered

	code := make(chan int, 1)
	go func() { code <- runUntilSignal(context.Background(), h.d, slog.New(slog.DiscardHandler), sig) }()
	if err := syscall.Kill(os.Getpid(), syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	h.waitFor("shutdown to begin", func() bool { return !h.d.ready.Load() })
	select {
	case <-code:
		t.Fatal("stopped before the in-flight delivery finished")
	default:
	}
	close(release)
	if c := <-code; c != 0 {
		t.Fatalf("exit status %d", c)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || !strings.Contains(got[0], "MemberUp") {
		t.Fatalf("webhook got %q", got)
	}
	b, _ := os.ReadFile(filepath.Join(h.dir, "state.json"))
	contains(t, "state file", string(b), `"rule": "MemberUp"`, `"state": "firing"`)
}
