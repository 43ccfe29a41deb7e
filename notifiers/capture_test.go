package notifiers_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/notifiers/console"
	"github.com/vigil-alerts/vigil/notifiers/email"
	"github.com/vigil-alerts/vigil/notifiers/slack"
	"github.com/vigil-alerts/vigil/notifiers/webhook"
)

// With WithCapture, a config whose secrets are nowhere builds, and each
// message the dispatcher decides is rendered by its channel and handed
// over at the time it was decided, by Settle's return: Slack's next
// message of a group replies in the thread its first one started,
// dedup holds, and nothing is sent.
func TestCaptureRendersWhatWouldBeSent(t *testing.T) {
	cfg := notifiers.Config{
		GroupWait: 30 * time.Second, GroupInterval: 5 * time.Minute, RepeatInterval: time.Hour,
		Channels: []notifiers.ChannelConfig{
			{Name: "slack", Slack: &slack.Config{TokenEnv: "VIGIL_TEST_UNSET_TOKEN", Channel: "#oncall"}},
			{Name: "mail", Email: &email.Config{Smarthost: "smtp.invalid:587", Username: "u", PasswordFile: "/nonexistent/pw",
				From: "vigil@example.com", To: []string{"oncall@example.com"}}},
			{Name: "hook", Webhook: &webhook.Config{URLEnv: "VIGIL_TEST_UNSET_URL", SecretEnv: "VIGIL_TEST_UNSET_KEY"}},
			{Name: "console", Console: &console.Config{}},
		},
		DefaultChannels: []string{"slack", "mail", "hook", "console"},
	}
	var mu sync.Mutex
	var got []notifiers.Message
	d, err := notifiers.Build(cfg, notifiers.WithLogger(slog.New(slog.DiscardHandler)),
		notifiers.WithLookupEnv(func(string) (string, bool) { return "", false }),
		notifiers.WithCapture(func(m notifiers.Message) {
			mu.Lock()
			got = append(got, m)
			mu.Unlock()
		}))
	if err != nil {
		t.Fatalf("a captured config needs no secrets: %v", err)
	}
	t.Cleanup(func() { d.Stop(context.Background()) })
	take := func(now time.Time, alerts []model.Alert) map[string]notifiers.Message {
		t.Helper()
		d.Process(now, alerts)
		if err := d.Settle(context.Background()); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		out := map[string]notifiers.Message{}
		for _, m := range got {
			if !m.At.Equal(now) || m.Err != nil {
				t.Errorf("%s: at %s, err %v", m.Channel, m.At, m.Err)
			}
			out[m.Channel] = m
		}
		got = nil
		return out
	}
	firing := members("EtcdMemberUnreachable", 2, model.StateFiring)
	if ms := take(t0, firing); len(ms) != 0 {
		t.Fatalf("before group_wait: %d messages", len(ms))
	}
	ms := take(t0.Add(30*time.Second), firing)
	if len(ms) != 4 {
		t.Fatalf("after group_wait: messages on %d channels, want 4: %v", len(ms), ms)
	}
	want := map[string]string{
		"slack":   `"method": "chat.postMessage"`,
		"mail":    "Subject: [FIRING:2] EtcdMemberUnreachable: etcd-00, etcd-01\n",
		"hook":    `"group_key": "{}/{channel=\"hook\"}:{alertname=\"EtcdMemberUnreachable\"}"`,
		"console": "[FIRING:2] EtcdMemberUnreachable: etcd-00, etcd-01 severity=high",
	}
	for ch, w := range want {
		if m := ms[ch]; !strings.Contains(string(m.Body), w) || len(m.Alerts) != 2 {
			t.Errorf("%s: %d alerts, body lacks %q:\n%s", ch, len(m.Alerts), w, m.Body)
		}
	}
	if ms := take(t0.Add(6*time.Minute), firing); len(ms) != 0 {
		t.Errorf("unchanged group sent again: %v", ms)
	}
	resolved := members("EtcdMemberUnreachable", 2, model.StateResolved)
	ms = take(t0.Add(11*time.Minute), resolved)
	ts := fmt.Sprintf(`"thread_ts": "%d.000000"`, t0.Add(30*time.Second).Unix())
	if b := string(ms["slack"].Body); !strings.Contains(b, ts) || !strings.Contains(b, `"method": "chat.update"`) {
		t.Errorf("the resolution does not reply in the first post's thread:\n%s", b)
	}
	if len(ms) != 4 {
		t.Errorf("resolution on %d channels, want 4", len(ms))
	}
}
