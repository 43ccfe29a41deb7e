package slack_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers/internal/msg"
	"github.com/vigil-alerts/vigil/notifiers/slack"
)

// renderedCalls reads a bot-token Render back as the form each call posts.
func renderedCalls(t *testing.T, body []byte) []slackCall {
	t.Helper()
	var calls []struct {
		Method string                     `json:"method"`
		Fields map[string]json.RawMessage `json:"fields"`
	}
	if err := json.Unmarshal(body, &calls); err != nil {
		t.Fatalf("render: %v\n%s", err, body)
	}
	var out []slackCall
	for _, c := range calls {
		v := url.Values{}
		for k, raw := range c.Fields {
			var s string
			if json.Unmarshal(raw, &s) == nil {
				v.Set(k, s)
				continue
			}
			var b bytes.Buffer
			if err := json.Compact(&b, raw); err != nil {
				t.Fatal(err)
			}
			v.Set(k, b.String())
		}
		out = append(out, slackCall{c.Method, v})
	}
	return out
}

// Render, built without the token, shows exactly the form fields that
// NotifyGroup posts with it, first post and thread reply alike, and the
// thread it would keep; the token is in neither.
func TestRenderIsWhatIsPosted(t *testing.T) {
	srv := newSlackServer(t)
	cfg := slack.Config{TokenEnv: "TOK", Channel: "#oncall", Username: "vigil", IconEmoji: ":fire:"}
	real, err := slack.New(cfg, slack.Options{LookupEnv: env("TOK", "xoxb-secret-token"), APIURL: srv.GetAPIURL()})
	if err != nil {
		t.Fatal(err)
	}
	// No token anywhere: a rule test renders without secrets.
	r, err := slack.New(cfg, slack.Options{LookupEnv: env(), RenderOnly: true})
	if err != nil {
		t.Fatalf("render-only without the token: %v", err)
	}
	if _, err := r.Notify(context.Background(), alerts(model.StateFiring)...); err == nil {
		t.Error("a render-only notifier sent something")
	}
	g := msg.Group{Key: `{}/{channel="slack"}:{alertname="EtcdMemberUnreachable"}`, Labels: model.Labels{"alertname": "EtcdMemberUnreachable"}}
	at := time.Date(2026, 1, 1, 0, 8, 0, 0, time.UTC)
	check := func(step string, g msg.Group, as []model.Alert) string {
		t.Helper()
		thread, _, err := real.NotifyGroup(context.Background(), g, as...)
		if err != nil {
			t.Fatal(err)
		}
		posted := srv.take()
		body, rthread, err := r.Render(g, at, as...)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(body), "xoxb") || strings.Contains(string(body), `"token"`) {
			t.Errorf("%s: the rendering holds a token:\n%s", step, body)
		}
		got := renderedCalls(t, body)
		for i := range posted {
			posted[i].form.Del("token")
		}
		if len(got) != len(posted) {
			t.Fatalf("%s: rendered %d calls, posted %d", step, len(got), len(posted))
		}
		for i := range got {
			if got[i].method != posted[i].method || got[i].form.Encode() != posted[i].form.Encode() {
				t.Errorf("%s: call %d:\nrendered %s %v\nposted   %s %v", step, i, got[i].method, got[i].form, posted[i].method, posted[i].form)
			}
		}
		// The server answers channel C1, ts 1.0001; Render can only
		// take the configured channel and the time.
		if (thread == "") != (rthread == "") {
			t.Errorf("%s: thread %q, rendered %q", step, thread, rthread)
		}
		return rthread
	}
	thread := check("first post", g, alerts(model.StateFiring))
	if want := "#oncall/1767226080.000000"; thread != want {
		t.Errorf("rendered thread %q, want %q", thread, want)
	}
	g.Thread = "C1/1.0001"
	check("reply", g, alerts(model.StateResolved))
}

// With an incoming webhook, Render is the posted JSON body, indented.
func TestRenderWebhookBody(t *testing.T) {
	var got []byte
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, _ = io.ReadAll(r.Body)
	}))
	t.Cleanup(srv.Close)
	cfg := slack.Config{WebhookURLEnv: "HOOK", Channel: "#ops"}
	real, err := slack.New(cfg, slack.Options{LookupEnv: env("HOOK", srv.URL+"/services/T/B/secret")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := real.Notify(context.Background(), alerts(model.StateFiring)...); err != nil {
		t.Fatal(err)
	}
	r, err := slack.New(cfg, slack.Options{LookupEnv: env(), RenderOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	body, thread, err := r.Render(msg.Group{}, time.Time{}, alerts(model.StateFiring)...)
	if err != nil || thread != "" {
		t.Fatalf("thread=%q err=%v", thread, err)
	}
	var compact bytes.Buffer
	if err := json.Compact(&compact, body); err != nil {
		t.Fatal(err)
	}
	if compact.String() != string(got) {
		t.Errorf("rendered:\n%s\nposted:\n%s", compact.String(), got)
	}
	if !bytes.HasSuffix(body, []byte("}\n")) || !bytes.Contains(body, []byte("\n  \"")) {
		t.Errorf("want indented JSON with a final newline:\n%s", body)
	}
}
