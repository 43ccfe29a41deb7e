package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/collectors/etcd/etcdtest"
	"github.com/vigil-alerts/vigil/internal/testkit"
	"github.com/vigil-alerts/vigil/model"
	"go.uber.org/goleak"
)

// The daemon's end-to-end tests run it in-process against a real embedded
// etcd, with real files, real fsnotify events and real HTTP. The scheduler
// is left stopped: tests step the evaluation time themselves (tick), so no
// test sleeps for a rule's duration.

var (
	etcdOnce sync.Once
	etcdEPs  []string
)

// sharedEtcd starts one single-member cluster for the whole package.
func sharedEtcd(t *testing.T) string {
	etcdOnce.Do(func() {
		dir, err := os.MkdirTemp("", "vigil-test-etcd-*")
		if err != nil {
			t.Fatal(err)
		}
		c, err := etcdtest.Start(1, dir)
		if err != nil {
			os.RemoveAll(dir)
			t.Fatalf("etcd: %v", err)
		}
		etcdEPs = c.Endpoints()
		stopShared = func() { c.Close(); os.RemoveAll(dir) }
	})
	if etcdEPs == nil {
		t.Fatal("etcd did not start")
	}
	return etcdEPs[0]
}

var stopShared = func() {}

// TestMain stops the shared etcd and then fails the package if a
// goroutine the daemon started outlived its Stop.
func TestMain(m *testing.M) {
	testkit.VerifyNoLeaks(m, 5*time.Second, func() {
		stopShared()
		http.DefaultClient.CloseIdleConnections()
	},
		// The first signal.Notify starts a goroutine for the process' life.
		goleak.IgnoreTopFunction("os/signal.signal_recv"),
		// A member stopped with HardStop can leave a peer request of its
		// own blocked on its closed backend: etcd's, not Vigil's.
		goleak.IgnoreAnyFunction("go.etcd.io/etcd/server/v3/storage/backend.(*baseReadTx).UnsafeRange"))
}

// syncBuf is a console the test can read while the dispatcher writes.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type harness struct {
	t        *testing.T
	dir      string
	rulesDir string
	cfgPath  string
	d        *daemon
	console  *syncBuf
	logs     *syncBuf // the daemon's log, debug and up
	base     time.Time
	step     time.Duration
	i        atomic.Int64 // steps taken; the daemon's clock reads it
	// web is how HTTP is secured; newHarness enables unauthenticated
	// writes on its loopback listener (security_test.go tests the guard).
	web webOptions
	// slackAPI, when set, is where bot-token Slack channels post (slacktest).
	slackAPI string
}

// baseConfig is a config for one etcd member with a console channel; the
// notifier waits are short in evaluation time.
func baseConfig(endpoint, extra string) string {
	return `rule_dirs: [rules]
http:
  address: 127.0.0.1:0
state:
  path: state.json
reload:
  notify: [console]
  debounce: 20ms
collectors:
  - name: etcd
    type: etcd
    interval: 10s
    timeout: 2s
    targets:
      - name: m0
        address: ` + endpoint + `
        tags: {host.mac: "02:00:00:00:00:01", host.hostName: m0, agent.tag.role: etcd, cluster: test}
notifiers:
  group_wait: 1s
  group_interval: 10s
  repeat_interval: 1h
  channels:
    - name: console
      console: {}
` + extra
}

// upRule is pending after one evaluation and fires after `for`: the
// member is up, which it is.
const upRule = `groups:
  - name: members
    interval: 10s
    rules:
      - name: MemberUp
        severity: info
        scope: labels["agent.tag.role"] == "etcd"
        segment_by: [host.mac]
        condition: max("etcd.can_connect") == 1
        for: 1m
        annotations:
          summary: member {{ label "host.hostName" }} is up
        notify: [console]
`

func newHarness(t *testing.T, rules string) *harness {
	t.Helper()
	dir := t.TempDir()
	h := harnessIn(t, dir, webOptions{EnableUnauthenticatedWrites: true})
	h.write("rules/etcd.yaml", rules)
	h.write("vigil.yaml", baseConfig(sharedEtcd(t), ""))
	h.start()
	return h
}

// harnessIn is a harness on dir (its rules in dir/rules, its config
// dir/vigil.yaml), its clock at 2026-03-01 12:00 UTC stepping 10s, not
// started.
func harnessIn(t *testing.T, dir string, web webOptions) *harness {
	t.Helper()
	h := &harness{t: t, dir: dir, rulesDir: filepath.Join(dir, "rules"), cfgPath: filepath.Join(dir, "vigil.yaml"),
		base: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), step: 10 * time.Second, web: web}
	if err := os.MkdirAll(h.rulesDir, 0o755); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) write(rel, content string) {
	h.t.Helper()
	if err := os.WriteFile(filepath.Join(h.dir, rel), []byte(content), 0o644); err != nil {
		h.t.Fatal(err)
	}
}

func (h *harness) now() time.Time { return h.base.Add(time.Duration(h.i.Load()) * h.step) }

// start builds and starts a daemon on the harness' files (again after a
// stop: a restart).
func (h *harness) start() {
	h.t.Helper()
	h.console, h.logs = &syncBuf{}, &syncBuf{}
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		h.t.Fatal(err)
	}
	d, err := newDaemon(daemonOptions{ConfigPath: h.cfgPath, Now: h.now, Console: h.console, Listener: ln, Logger: logger,
		NoSchedule: true, DeliveryBound: 5 * time.Second, LookupEnv: func(string) (string, bool) { return "", false },
		Web: h.web, SlackAPIURL: h.slackAPI})
	if err != nil {
		ln.Close()
		h.t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		h.t.Fatal(err)
	}
	h.d = d
	h.t.Cleanup(func() { d.Stop() })
}

// tick advances evaluation time by one step, collects and evaluates.
func (h *harness) tick(n int) {
	for range n {
		h.i.Add(1)
		ctx := context.Background()
		h.d.collectAll(ctx, h.now())
		h.d.evaluate(ctx, nil, h.now())
	}
}

func (h *harness) alert(rule string) (model.Alert, bool) {
	for _, a := range h.d.eng.Alerts() {
		if a.Rule == rule {
			return a, true
		}
	}
	return model.Alert{}, false
}

// waitFor polls cond until it holds: it waits for an event (a reload, a
// delivery), never for a rule's duration.
func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) hasRule(name string) bool {
	for _, r := range h.d.eng.Rules().Rules() {
		if r.Name == name {
			return true
		}
	}
	return false
}

func (h *harness) get(path, token string) (int, string) {
	h.t.Helper()
	return request(h.t, "GET", "http://"+h.d.Addr()+path, token, "")
}

// request sends body (JSON, if any) and returns the status and the answer.
func request(t *testing.T, method, url, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func contains(t *testing.T, what, s string, subs ...string) {
	t.Helper()
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			t.Errorf("%s does not contain %q:\n%s", what, sub, s)
		}
	}
}
