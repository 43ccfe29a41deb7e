package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	goslack "github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"
)

// slackLog is slacktest with our own chat.postMessage and chat.update
// handlers, which record every call (slacktest records nothing, and its
// own postMessage handler leaks a goroutine per post).
type slackLog struct {
	mu    sync.Mutex
	calls []slackCall
}

type slackCall struct {
	method string
	form   url.Values
}

func newSlackLog(t *testing.T) (*slackLog, string) {
	l := &slackLog{}
	record := func(method string, r *http.Request) int {
		body, _ := io.ReadAll(r.Body)
		v, _ := url.ParseQuery(string(body))
		l.mu.Lock()
		defer l.mu.Unlock()
		l.calls = append(l.calls, slackCall{method, v})
		return len(l.calls)
	}
	srv := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			n := record("chat.postMessage", r)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"ok":true,"channel":"C1","ts":"1.%04d"}`, n)
		})
		c.Handle("/chat.update", func(w http.ResponseWriter, r *http.Request) {
			record("chat.update", r)
			w.Header().Set("Content-Type", "application/json")
			w.Write([]byte(`{"ok":true,"channel":"C1","ts":"1.0001","text":""}`))
		})
	})
	srv.Start()
	t.Cleanup(srv.Stop)
	return l, srv.GetAPIURL()
}

func (l *slackLog) get() []slackCall {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]slackCall(nil), l.calls...)
}

// The Slack thread of a group's first post is part of the saved state: a
// resolution after a restart is a reply in that thread, and the first
// post is updated to resolved, with nothing posted again at the restart.
func TestSlackThreadSurvivesRestart(t *testing.T) {
	slack, api := newSlackLog(t)
	h := newHarness(t, upRule)
	h.d.Stop()
	token := filepath.Join(h.dir, "slack-token")
	h.write("slack-token", "xoxb-test\n")
	h.write("vigil.yaml", baseConfig(sharedEtcd(t), `    - name: slack
      slack: {token_file: `+token+`, channel: "#oncall"}
`))
	h.write("rules/etcd.yaml", strings.Replace(upRule, "notify: [console]", "notify: [slack]", 1))
	h.slackAPI = api
	h.start()

	h.tick(8) // fires after `for`, then group_wait
	h.waitFor("the firing post", func() bool { return len(slack.get()) == 1 })
	if c := slack.get()[0]; c.method != "chat.postMessage" || c.form.Get("thread_ts") != "" ||
		!strings.HasPrefix(c.form.Get("text"), "🔥 [FIRING:1] MemberUp: 02:00:00:00:00:01") {
		t.Fatalf("first post: %s %v", c.method, c.form)
	}
	h.tick(1)
	h.d.Stop()
	saved, err := os.ReadFile(filepath.Join(h.dir, "state.json"))
	if err != nil || !strings.Contains(string(saved), `"thread": "C1/1.0001"`) {
		t.Fatalf("the thread is not in the state file (%v):\n%s", err, saved)
	}

	h.start()
	h.tick(2)
	// The rule changes meaning: its alert ends, and the receiver is told.
	h.write("rules/etcd.yaml", strings.Replace(strings.Replace(upRule, "notify: [console]", "notify: [slack]", 1), "== 1", "== 2", 1))
	if err := h.d.Reload("test"); err != nil {
		t.Fatal(err)
	}
	h.tick(5) // the alert ends; the group interval passes
	h.waitFor("the resolution", func() bool { return len(slack.get()) == 3 })
	calls := slack.get()
	reply, update := calls[1], calls[2]
	if reply.method != "chat.postMessage" || reply.form.Get("thread_ts") != "1.0001" || reply.form.Get("channel") != "C1" ||
		!strings.HasPrefix(reply.form.Get("text"), "✅ [RESOLVED:1] MemberUp") {
		t.Errorf("resolution is not a reply in the first post's thread: %s %v", reply.method, reply.form)
	}
	var atts []goslack.Attachment
	json.Unmarshal([]byte(update.form.Get("attachments")), &atts)
	if update.method != "chat.update" || update.form.Get("ts") != "1.0001" || update.form.Get("channel") != "C1" ||
		len(atts) != 1 || atts[0].Color != "#2eb886" {
		t.Errorf("first post not updated to resolved: %s %v", update.method, update.form)
	}
}
