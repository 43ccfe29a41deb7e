package notifiers_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/notifiers/slack"
	"github.com/vigil-alerts/vigil/notifiers/webhook"
)

// TestExampleConfigBuilds decodes examples/vigil-notifiers.yaml strictly,
// as the caller does, and builds it.
func TestExampleConfigBuilds(t *testing.T) {
	b, err := os.ReadFile("../examples/vigil-notifiers.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Notifiers notifiers.Config `yaml:"notifiers"`
	}
	if err := yaml.UnmarshalWithOptions(b, &file, yaml.Strict()); err != nil {
		t.Fatalf("strict decode: %v", err)
	}
	pw := t.TempDir() + "/pw"
	if err := os.WriteFile(pw, []byte("smtp-pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for i := range file.Notifiers.Channels {
		if e := file.Notifiers.Channels[i].Email; e != nil {
			e.PasswordFile = pw
		}
	}
	vars := map[string]string{
		"VIGIL_SLACK_BOT_TOKEN": "xoxb-1", "VIGIL_OPS_WEBHOOK_URL": "https://hooks.example/x",
		"VIGIL_OPS_WEBHOOK_KEY": "k", "VIGIL_OPS_WEBHOOK_AUTH": "Bearer x",
	}
	h := build(t, file.Notifiers, notifiers.WithLookupEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok }))
	if got := strings.Join(h.d.ChannelNames(), ","); got != "console,oncall-email,oncall-slack,ops-webhook" {
		t.Errorf("channels = %s", got)
	}
	if file.Notifiers.GroupInterval != 5*time.Minute || file.Notifiers.RepeatInterval != 4*time.Hour {
		t.Errorf("durations: %+v", file.Notifiers)
	}
	for _, c := range file.Notifiers.Channels {
		if c.Name == "oncall-email" && c.RepeatInterval != 24*time.Hour {
			t.Errorf("oncall-email's own repeat_interval = %v, want 24h", c.RepeatInterval)
		}
	}
	// Unknown fields are errors for the strict caller.
	bad := bytes.Replace(b, []byte("group_wait:"), []byte("group_waiting:"), 1)
	if err := yaml.UnmarshalWithOptions(bad, &file, yaml.Strict()); err == nil {
		t.Error("unknown field accepted")
	}
}

// TestSecretsNeverLogged runs deliveries that fail against URLs and keys
// holding secrets, and checks the captured log, the status API and every
// printed form of the config and dispatcher.
func TestSecretsNeverLogged(t *testing.T) {
	const slackSecret, hookSecret, keySecret = "T0/B0/slack-hook-secret", "hook-token-secret", "hmac-key-secret"
	dead := deadURL(t)
	vars := map[string]string{"SLACK": dead + "/services/" + slackSecret, "HOOK": dead + "?token=" + hookSecret, "KEY": keySecret}
	cfg := notifiers.Config{
		DeliveryTimeout: 200 * time.Millisecond,
		Channels: []notifiers.ChannelConfig{
			{Name: "oncall-slack", Slack: &slack.Config{WebhookURLEnv: "SLACK"}},
			{Name: "ops-webhook", Webhook: &webhook.Config{URLEnv: "HOOK", SecretEnv: "KEY"}},
		},
	}
	h := build(t, cfg, notifiers.WithLookupEnv(func(k string) (string, bool) { v, ok := vars[k]; return v, ok }))
	a := members(unreachable, 2, model.StateFiring, "oncall-slack", "ops-webhook")
	h.d.Process(t0, a)
	h.d.Process(t0.Add(30*time.Second), a)
	h.settle(t)
	js, _ := json.Marshal(cfg)
	var all bytes.Buffer
	all.WriteString(h.log.String())
	fmt.Fprintf(&all, "%v %+v %#v %s", cfg, cfg, h.d, js)
	for _, s := range h.d.Status() {
		all.WriteString(s.LastError)
	}
	slog.New(slog.NewTextHandler(&all, nil)).Info("dispatcher", "d", h.d, "status", h.d.Status())
	if !strings.Contains(h.log.String(), "notification failed") {
		t.Fatalf("expected failures to be logged:\n%s", h.log.String())
	}
	for _, s := range []string{slackSecret, hookSecret, keySecret} {
		if strings.Contains(all.String(), s) {
			t.Errorf("secret %q leaked:\n%s", s, all.String())
		}
	}
}
