package slack_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	goslack "github.com/slack-go/slack"
	"github.com/slack-go/slack/slacktest"

	"github.com/vigil-alerts/vigil/internal/testkit"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/internal/msg"
	"github.com/vigil-alerts/vigil/notifiers/slack"
)

// Shared with other packages' tests.
var (
	env = testkit.Env
)

func alerts(state model.AlertState) []model.Alert {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var out []model.Alert
	for _, m := range []string{"etcd-1", "etcd-2"} {
		seg := model.Labels{"member": m}
		a := model.Alert{Fingerprint: model.Fingerprint("EtcdMemberUnreachable", seg), Rule: "EtcdMemberUnreachable",
			Severity: "critical", Description: "member down", State: state, Labels: seg, Segment: seg,
			Value: 0, FiredAt: t0, Annotations: map[string]string{"runbook_url": "https://runbooks.example/etcd"},
			Source: &model.Source{File: "etcd.yaml", Line: 12, Commit: "1d22bfc5e0a1b2c3d4e5f60718293a4b5c6d7e8f"}}
		if state == model.StateResolved {
			a.ResolvedAt = t0.Add(7 * time.Minute)
		}
		out = append(out, a)
	}
	return out
}

// TestBotTokenPostsBlockKit goes through slack-go's slacktest server with
// our own chat.postMessage handler, since slacktest records nothing.
func TestBotTokenPostsBlockKit(t *testing.T) {
	var mu sync.Mutex
	var posts []url.Values
	var auth []string
	srv := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			body, _ := io.ReadAll(r.Body)
			v, _ := url.ParseQuery(string(body))
			mu.Lock()
			posts = append(posts, v)
			auth = append(auth, r.Header.Get("Authorization")+v.Get("token"))
			mu.Unlock()
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"ok":true,"channel":"C1","ts":"1.2"}`))
		})
	})
	srv.Start()
	t.Cleanup(srv.Stop)
	n, err := slack.New(slack.Config{TokenEnv: "TOK", Channel: "#oncall"},
		slack.Options{LookupEnv: env("TOK", "xoxb-secret-token"), APIURL: srv.GetAPIURL()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Notify(context.Background(), alerts(model.StateFiring)...); err != nil {
		t.Fatal(err)
	}
	if _, err := n.Notify(context.Background(), alerts(model.StateResolved)...); err != nil {
		t.Fatal(err)
	}
	if len(posts) != 2 {
		t.Fatalf("%d posts", len(posts))
	}
	if !strings.Contains(auth[0], "xoxb-secret-token") {
		t.Errorf("token not sent: %q", auth[0])
	}
	p := posts[0]
	if p.Get("channel") != "#oncall" || p.Get("text") != "🔥 [FIRING:2] EtcdMemberUnreachable: etcd-1, etcd-2" {
		t.Errorf("channel=%q text=%q", p.Get("channel"), p.Get("text"))
	}
	var atts []goslack.Attachment
	if err := json.Unmarshal([]byte(p.Get("attachments")), &atts); err != nil {
		t.Fatalf("attachments: %v", err)
	}
	if len(atts) != 1 || atts[0].Color != "#d00000" {
		t.Fatalf("want one attachment coloured critical, got %+v", atts)
	}
	raw := p.Get("attachments")
	for _, want := range []string{`"type":"header"`, `"type":"section"`, "member=etcd-1", "member=etcd-2", "Runbook", "member down", "Source: `etcd.yaml:12@1d22bfc5`"} {
		if !strings.Contains(raw, want) {
			t.Errorf("blocks lack %q: %s", want, raw)
		}
	}
	res := posts[1].Get("attachments")
	if !strings.Contains(res, "#2eb886") || !strings.Contains(res, "resolved after 7m0s") || posts[1].Get("text") != "✅ [RESOLVED:2] EtcdMemberUnreachable: etcd-1, etcd-2" {
		t.Errorf("resolved message: %s / %s", posts[1].Get("text"), res)
	}
}

func TestSlackAPIErrorIsPermanent(t *testing.T) {
	srv := slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			_, _ = w.Write([]byte(`{"ok":false,"error":"channel_not_found"}`))
		})
	})
	srv.Start()
	t.Cleanup(srv.Stop)
	n, err := slack.New(slack.Config{TokenFile: writeFile(t, "xoxb-file-token\n"), Channel: "#gone"},
		slack.Options{APIURL: srv.GetAPIURL()})
	if err != nil {
		t.Fatal(err)
	}
	retry, err := n.Notify(context.Background(), alerts(model.StateFiring)...)
	if err == nil || retry || !strings.Contains(err.Error(), "channel_not_found") {
		t.Errorf("retry=%v err=%v", retry, err)
	}
}

func writeFile(t *testing.T, s string) string {
	p := t.TempDir() + "/secret"
	if err := os.WriteFile(p, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestIncomingWebhook(t *testing.T) {
	var codes = []int{429, 500, 400, 200}
	var got []goslack.WebhookMessage
	var i int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code := codes[i]
		i++
		if code == 429 {
			w.Header().Set("Retry-After", "3")
		}
		if code == 200 {
			var m goslack.WebhookMessage
			_ = json.NewDecoder(r.Body).Decode(&m)
			got = append(got, m)
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(srv.Close)
	hookURL := srv.URL + "/services/T0/B0/very-secret-path"
	n, err := slack.New(slack.Config{WebhookURLEnv: "HOOK"}, slack.Options{LookupEnv: env("HOOK", hookURL)})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	// 429 with Retry-After: retried after the given wait.
	retry, err := n.Notify(ctx, alerts(model.StateFiring)...)
	var ra interface{ RetryAfter() time.Duration }
	if !retry || !errors.As(err, &ra) || ra.RetryAfter() != 3*time.Second {
		t.Errorf("429: retry=%v err=%v", retry, err)
	}
	if retry, err := n.Notify(ctx, alerts(model.StateFiring)...); !retry || err == nil {
		t.Errorf("500: retry=%v err=%v", retry, err)
	}
	if retry, err := n.Notify(ctx, alerts(model.StateFiring)...); retry || err == nil {
		t.Errorf("400: retry=%v err=%v", retry, err)
	}
	if _, err := n.Notify(ctx, alerts(model.StateFiring)...); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || len(got[0].Attachments) != 1 || got[0].Attachments[0].Color != "#d00000" {
		t.Fatalf("webhook message: %+v", got)
	}
	// A dead webhook: the error must not reveal the URL.
	srv.Close()
	retry, err = n.Notify(ctx, alerts(model.StateFiring)...)
	if !retry || err == nil || strings.Contains(err.Error(), "very-secret-path") {
		t.Errorf("dead: retry=%v err=%v", retry, err)
	}
	if s := n.String(); strings.Contains(s, "secret") {
		t.Errorf("String() = %s", s)
	}
}

func TestConfigErrors(t *testing.T) {
	_, err := slack.New(slack.Config{TokenEnv: "T"}, slack.Options{LookupEnv: env("T", "x")})
	if err == nil || !strings.Contains(err.Error(), "channel: required") {
		t.Errorf("err = %v", err)
	}
	_, err = slack.New(slack.Config{WebhookURLEnv: "H"}, slack.Options{LookupEnv: env("H", "not a url with secret")})
	if err == nil || strings.Contains(err.Error(), "secret") {
		t.Errorf("err = %v", err)
	}
	_, err = slack.New(slack.Config{TokenEnv: "T", Channel: "#c", Title: "{{ .Broken"}, slack.Options{LookupEnv: env("T", "x")})
	if err == nil || !strings.Contains(err.Error(), "title") {
		t.Errorf("err = %v", err)
	}
}

// slackCall is one request to the slacktest server.
type slackCall struct {
	method string // "chat.postMessage" or "chat.update"
	form   url.Values
}

// slackServer is slacktest with our own handlers for chat.postMessage and
// chat.update, which record every call (slacktest records nothing).
// Posts answer channel C1 with ts 1.000N; update answers updateStatus
// (200 with ok:true unless set).
type slackServer struct {
	*slacktest.Server
	mu           sync.Mutex
	calls        []slackCall
	updateStatus int
}

func newSlackServer(t *testing.T) *slackServer {
	s := &slackServer{}
	record := func(method string, r *http.Request) int {
		body, _ := io.ReadAll(r.Body)
		v, _ := url.ParseQuery(string(body))
		s.mu.Lock()
		defer s.mu.Unlock()
		s.calls = append(s.calls, slackCall{method, v})
		return len(s.calls)
	}
	s.Server = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/chat.postMessage", func(w http.ResponseWriter, r *http.Request) {
			n := record("chat.postMessage", r)
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"ok":true,"channel":"C1","ts":"1.%04d"}`, n)
		})
		c.Handle("/chat.update", func(w http.ResponseWriter, r *http.Request) {
			record("chat.update", r)
			s.mu.Lock()
			code := s.updateStatus
			s.mu.Unlock()
			if code != 0 {
				w.WriteHeader(code)
				return
			}
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"ok":true,"channel":"C1","ts":"1.0001","text":""}`))
		})
	})
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

func (s *slackServer) take() []slackCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	c := s.calls
	s.calls = nil
	return c
}

func colour(t *testing.T, form url.Values) string {
	t.Helper()
	var atts []goslack.Attachment
	if err := json.Unmarshal([]byte(form.Get("attachments")), &atts); err != nil || len(atts) != 1 {
		t.Fatalf("attachments %q: %v", form.Get("attachments"), err)
	}
	return atts[0].Color
}

// A group's first firing post starts a thread; a member joining is a
// reply in it (broadcast to the channel) and the first post is updated;
// the resolution is a reply in the thread, not broadcast, and turns the
// first post green.
func TestSlackResolutionRepliesInTheFiringThread(t *testing.T) {
	srv := newSlackServer(t)
	n, err := slack.New(slack.Config{TokenEnv: "TOK", Channel: "#oncall"},
		slack.Options{LookupEnv: env("TOK", "xoxb-t"), APIURL: srv.GetAPIURL()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	two := alerts(model.StateFiring)
	g := msg.Group{Key: `{}/{channel="slack"}:{alertname="EtcdMemberUnreachable"}`}

	thread, _, err := n.NotifyGroup(ctx, g, two[:1]...)
	if err != nil || thread != "C1/1.0001" {
		t.Fatalf("first post: thread=%q err=%v", thread, err)
	}
	calls := srv.take()
	if len(calls) != 1 || calls[0].method != "chat.postMessage" || calls[0].form.Get("thread_ts") != "" || calls[0].form.Get("channel") != "#oncall" {
		t.Fatalf("first message: %+v", calls)
	}

	g.Thread = thread
	if th, _, err := n.NotifyGroup(ctx, g, two...); err != nil || th != thread {
		t.Fatalf("second message: thread=%q err=%v", th, err)
	}
	calls = srv.take()
	if len(calls) != 2 || calls[0].method != "chat.postMessage" || calls[1].method != "chat.update" {
		t.Fatalf("second message: want a reply then an update, got %+v", calls)
	}
	if f := calls[0].form; f.Get("thread_ts") != "1.0001" || f.Get("channel") != "C1" || f.Get("reply_broadcast") != "true" ||
		f.Get("text") != "🔥 [FIRING:2] EtcdMemberUnreachable: etcd-1, etcd-2" {
		t.Errorf("reply: %v", f)
	}
	if f := calls[1].form; f.Get("ts") != "1.0001" || f.Get("channel") != "C1" || colour(t, f) != "#d00000" ||
		f.Get("text") != "🔥 [FIRING:2] EtcdMemberUnreachable: etcd-1, etcd-2" {
		t.Errorf("update: %v", f)
	}

	if th, retry, err := n.NotifyGroup(ctx, g, alerts(model.StateResolved)...); err != nil || retry || th != thread {
		t.Fatalf("resolution: thread=%q retry=%v err=%v", th, retry, err)
	}
	calls = srv.take()
	if len(calls) != 2 || calls[0].method != "chat.postMessage" || calls[1].method != "chat.update" {
		t.Fatalf("resolution: want a reply then an update, got %+v", calls)
	}
	if f := calls[0].form; f.Get("thread_ts") != "1.0001" || f.Get("reply_broadcast") != "" || colour(t, f) != "#2eb886" ||
		f.Get("text") != "✅ [RESOLVED:2] EtcdMemberUnreachable: etcd-1, etcd-2" {
		t.Errorf("resolution reply: %v", f)
	}
	if f := calls[1].form; f.Get("ts") != "1.0001" || colour(t, f) != "#2eb886" {
		t.Errorf("the first post is not turned resolved: %v", f)
	}
}

// A failed chat.update does not lose the resolution: the reply went out
// once, the error says so and is not retried (a retry would post the
// reply again), and the thread is kept.
func TestSlackFailedUpdateKeepsTheResolution(t *testing.T) {
	srv := newSlackServer(t)
	srv.updateStatus = http.StatusInternalServerError
	n, err := slack.New(slack.Config{TokenEnv: "TOK", Channel: "#oncall"},
		slack.Options{LookupEnv: env("TOK", "xoxb-t"), APIURL: srv.GetAPIURL()})
	if err != nil {
		t.Fatal(err)
	}
	g := msg.Group{Thread: "C1/1.0001"}
	th, retry, err := n.NotifyGroup(context.Background(), g, alerts(model.StateResolved)...)
	var dv interface{ Delivered() bool }
	if retry || !errors.As(err, &dv) || !dv.Delivered() || th != g.Thread || !strings.Contains(err.Error(), "reply posted") {
		t.Fatalf("thread=%q retry=%v err=%v", th, retry, err)
	}
	calls := srv.take()
	if len(calls) != 2 || calls[0].method != "chat.postMessage" || calls[0].form.Get("thread_ts") != "1.0001" || calls[1].method != "chat.update" {
		t.Fatalf("calls: %+v", calls)
	}
}
