package notifiers_test

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
)

// A receiver answering 500 twice, then 200: each failed attempt is a WARN
// with the channel, the group as the payload names it (alertname and the
// group_by labels, readable), the HTTP status and when the next attempt
// is due; the internal key's separator bytes appear nowhere.
func TestFailedAttemptsLoggedWithStatusAndNextAttempt(t *testing.T) {
	hook := newReceiver(t, status(500), status(500))
	var logs syncBuffer
	h := build(t, notifiers.Config{GroupBy: []string{"cluster"},
		Channels: []notifiers.ChannelConfig{webhookChannel("ops-webhook", hook.URL)}},
		notifiers.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))))
	a := members(unreachable, 2, model.StateFiring, "ops-webhook")
	h.d.Process(t0, a)
	h.d.Process(t0.Add(30*time.Second), a)
	h.settle(t)
	if n := len(hook.got()); n != 1 {
		t.Fatalf("want the message delivered once, got %d", n)
	}
	type line struct {
		Time        time.Time
		Level, Msg  string
		Channel     string
		GroupKey    string `json:"groupKey"`
		GroupLabels string `json:"groupLabels"`
		Status      any
		Next        time.Time `json:"next_attempt"`
		Attempt     int
	}
	var warns []line
	for _, s := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var l line
		if err := json.Unmarshal([]byte(s), &l); err != nil {
			t.Fatalf("log line %q: %v", s, err)
		}
		if l.Level == "WARN" {
			warns = append(warns, l)
		}
	}
	if len(warns) != 2 {
		t.Fatalf("want 2 WARN lines, got %d:\n%s", len(warns), logs.String())
	}
	wantLabels := `{alertname="` + unreachable + `", cluster="prod"}`
	for i, w := range warns {
		if w.Msg != "delivery attempt failed" || w.Channel != "ops-webhook" || w.Status != float64(500) ||
			w.Attempt != i+1 || w.GroupLabels != wantLabels || w.GroupKey != `{}/{channel="ops-webhook"}:`+wantLabels {
			t.Errorf("WARN %d: %+v", i, w)
		}
		// The backoff is 5-20ms here: the next attempt is due just after
		// the line, not at some unrelated time.
		if d := w.Next.Sub(w.Time); d <= 0 || d > time.Second {
			t.Errorf("WARN %d: next attempt %v after the line", i, d)
		}
	}
	if strings.Contains(logs.String(), "\xff") || strings.Contains(logs.String(), `\u00ff`) || strings.Contains(logs.String(), `\ufffd`) {
		t.Errorf("raw key bytes in the log:\n%s", logs.String())
	}
}
