package notifiers_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/notifiers/email"
	"github.com/vigil-alerts/vigil/notifiers/slack"
	"github.com/vigil-alerts/vigil/notifiers/webhook"
)

// writeSecret writes a secret file as an operator or a Secret volume
// would, trailing newline and all.
func writeSecret(t *testing.T, path, v string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(v+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
}

// A rotated secret file, with the config text unchanged, gives the channel
// a new sender at the next Apply: the next message goes to the new URL,
// signed with the new key, and nothing its receiver was already sent is
// paged again. An Apply that finds the same secrets keeps the sender.
func TestApplyRotatedSecretFile(t *testing.T) {
	oldRecv, newRecv := newReceiver(t), newReceiver(t)
	oldURL, newURL := oldRecv.URL+"/hooks/T0-old-token", newRecv.URL+"/hooks/T0-new-token"
	dir := t.TempDir()
	urlFile, keyFile := filepath.Join(dir, "url"), filepath.Join(dir, "key")
	writeSecret(t, urlFile, oldURL)
	writeSecret(t, keyFile, "signing-key-1")
	cfg := notifiers.Config{GroupInterval: time.Minute, Channels: []notifiers.ChannelConfig{
		{Name: "a", Webhook: &webhook.Config{URLFile: urlFile, SecretFile: keyFile}},
	}}
	h := build(t, cfg)
	alerts := members(unreachable, 2, model.StateFiring, "a")
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	h.settle(t)
	if n := len(oldRecv.got()); n != 1 {
		t.Fatalf("old receiver: %d messages, want the page", n)
	}

	h.apply(t, cfg)
	if !strings.Contains(h.log.String(), "changed=[]") {
		t.Errorf("an Apply with the same secrets replaced a channel:\n%s", h.log)
	}

	writeSecret(t, urlFile, newURL)
	writeSecret(t, keyFile, "signing-key-2")
	h.apply(t, cfg)
	if !strings.Contains(h.log.String(), "changed=[a]") {
		t.Errorf("rotated secrets did not replace channel a:\n%s", h.log)
	}
	for i := 1; i <= 5; i++ {
		h.d.Process(t0.Add(30*time.Second+time.Duration(i)*time.Minute), alerts)
	}
	h.settle(t)
	if n, m := len(oldRecv.got()), len(newRecv.got()); n != 1 || m != 0 {
		t.Fatalf("after the rotation: old %d, new %d messages; want 1 and 0 (no re-page)", n, m)
	}
	h.d.Process(t0.Add(10*time.Minute), resolvedAt(alerts, t0.Add(10*time.Minute)))
	h.settle(t)
	got := newRecv.got()
	if len(got) != 1 || got[0].Status != "resolved" || len(got[0].Alerts) != 2 {
		t.Fatalf("new URL: want the resolution of both alerts, got %+v", got)
	}
	newRecv.mu.Lock()
	body, sig := newRecv.bodies[0], newRecv.headers[0].Get(webhook.SignatureHeader)
	newRecv.mu.Unlock()
	if !webhook.Verify("signing-key-2", body, sig) {
		t.Errorf("resolution not signed with the rotated key: %q", sig)
	}

	status, err := json.Marshal(h.d.Status())
	if err != nil {
		t.Fatal(err)
	}
	out := h.log.String() + string(status)
	for _, s := range []string{"T0-old-token", "T0-new-token", "signing-key-1", "signing-key-2"} {
		if strings.Contains(out, s) {
			t.Errorf("secret %q in logs or status:\n%s", s, out)
		}
	}
}

// A secret file that disappears or empties makes Apply fail, naming the
// field and file, and the running channel keeps sending with what it has.
func TestApplyUnreadableSecretFileKeepsRunning(t *testing.T) {
	recv := newReceiver(t)
	urlFile := filepath.Join(t.TempDir(), "url")
	writeSecret(t, urlFile, recv.URL+"/hooks/T0-token")
	cfg := notifiers.Config{Channels: []notifiers.ChannelConfig{
		{Name: "a", Webhook: &webhook.Config{URLFile: urlFile}},
	}}
	h := build(t, cfg)
	writeSecret(t, urlFile, "")
	err := h.d.Apply(testDefaults(cfg))
	if err == nil || !strings.Contains(err.Error(), `channel "a": webhook: url_file: `+urlFile+" is empty") {
		t.Fatalf("Apply with an empty secret file: %v", err)
	}
	if strings.Contains(err.Error(), "T0-token") {
		t.Errorf("error shows the secret: %v", err)
	}
	alerts := members(unreachable, 1, model.StateFiring, "a")
	h.d.Process(t0, alerts)
	h.d.Process(t0.Add(30*time.Second), alerts)
	h.settle(t)
	if n := len(recv.got()); n != 1 {
		t.Errorf("receiver: %d messages, want 1 from the channel kept running", n)
	}
}

func TestSecretFiles(t *testing.T) {
	cfg := notifiers.Config{Channels: []notifiers.ChannelConfig{
		{Name: "w", Webhook: &webhook.Config{URLFile: "/s/url", SecretFile: "/s/key", URLEnv: "",
			HeadersFile: map[string]string{"B": "/s/b", "A": "/s/a"}}},
		{Name: "w2", Webhook: &webhook.Config{URL: "http://x", SecretFile: "/s/key"}},
		{Name: "e", Webhook: &webhook.Config{URLEnv: "URL"}},
		{Name: "s", Slack: &slack.Config{TokenFile: "/s/token"}},
		{Name: "m", Email: &email.Config{PasswordFile: "/s/smtp"}},
	}}
	got := strings.Join(cfg.SecretFiles(), ",")
	if want := "/s/a,/s/b,/s/key,/s/smtp,/s/token,/s/url"; got != want {
		t.Errorf("SecretFiles = %s, want %s", got, want)
	}
}
