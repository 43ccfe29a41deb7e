package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-alerts/vigil/notifiers/webhook/webhooktest"
)

// secretVolume lays files out as a Kubernetes Secret volume does: each
// name is a symlink through `..data`, and an update writes a new hidden
// directory and re-points `..data` at it in one rename.
type secretVolume struct {
	t    *testing.T
	dir  string
	n    int
	prev string
}

func newSecretVolume(t *testing.T, dir string) *secretVolume {
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return &secretVolume{t: t, dir: dir}
}

func (v *secretVolume) path(name string) string { return filepath.Join(v.dir, name) }

// set publishes files (name to content) as the volume's new contents.
func (v *secretVolume) set(files map[string]string) {
	v.t.Helper()
	v.n++
	ts := filepath.Join(v.dir, fmt.Sprintf("..2026_03_01_12_%02d_00.%d", v.n, v.n))
	must := func(err error) {
		v.t.Helper()
		if err != nil {
			v.t.Fatal(err)
		}
	}
	must(os.Mkdir(ts, 0o755))
	for name, content := range files {
		must(os.WriteFile(filepath.Join(ts, name), []byte(content+"\n"), 0o600))
	}
	must(os.Symlink(filepath.Base(ts), v.path("..data_tmp")))
	must(os.Rename(v.path("..data_tmp"), v.path("..data")))
	for name := range files {
		if _, err := os.Lstat(v.path(name)); os.IsNotExist(err) {
			must(os.Symlink(filepath.Join("..data", name), v.path(name)))
		}
	}
	if v.prev != "" {
		must(os.RemoveAll(v.prev))
	}
	v.prev = ts
}

// rotationHarness runs the daemon with a webhook channel whose URL, and
// the API's bearer token, come from a Secret volume. The channel repeats
// every 30s of evaluation time, so a test can see which URL the next
// message goes to.
func rotationHarness(t *testing.T, oldURL string) (*harness, *secretVolume) {
	h := newHarness(t, upRule)
	h.d.Stop()
	h.write("rules/etcd.yaml", strings.NewReplacer("for: 1m", "for: 0s", "notify: [console]", "notify: [console, hook]").Replace(upRule))
	vol := newSecretVolume(t, filepath.Join(h.dir, "secrets"))
	vol.set(map[string]string{"url": oldURL, "token": "api-token-1"})
	cfg := strings.Replace(baseConfig(sharedEtcd(t), "    - name: hook\n      repeat_interval: 30s\n      webhook: {url_file: "+vol.path("url")+"}\n"),
		"  address: 127.0.0.1:0\n", "  address: 127.0.0.1:0\n  bearer_token_file: "+vol.path("token")+"\n", 1)
	h.write("vigil.yaml", cfg)
	h.start()
	h.tick(1) // fires; group_wait (1s) passes at the next step
	h.tick(1)
	return h, vol
}

// The secrets that must never show: in logs, the API or the page.
var rotationSecrets = []string{"T0-old-token", "T0-new-token", "api-token-1", "api-token-2"}

func (h *harness) assertNoSecrets(token string) {
	h.t.Helper()
	out := h.logs.String() + h.console.String()
	for _, p := range []string{"/api/v1/status", "/api/v1/alerts", "/api/v1/rules", "/"} {
		_, body := h.get(p, token)
		out += body
	}
	_, metrics := h.get("/metrics", "")
	out += metrics
	for _, s := range rotationSecrets {
		if strings.Contains(out, s) {
			h.t.Errorf("secret %q in logs, API, page or metrics", s)
		}
	}
}

// A rotated secret file, with vigil.yaml unchanged, is a change: a reload
// (here called directly, file events lost) applies it, the next message
// goes to the new URL, and nothing the receiver was already sent is paged
// again. The API's bearer token rotates the same way.
func TestRotatedSecretFileReloads(t *testing.T) {
	oldRcv, newRcv := webhooktest.NewReceiver(t), webhooktest.NewReceiver(t)
	h, vol := rotationHarness(t, oldRcv.URL+"/hooks/T0-old-token")
	h.waitFor("the page to the old URL", func() bool { return oldRcv.Count("MemberUp", "firing") == 1 })

	// Same secrets: a reload finds nothing changed.
	if err := h.d.Reload("same"); err != nil {
		t.Fatal(err)
	}
	if st := h.d.reload.Load(); st.Reason != "start" {
		t.Fatalf("a reload with nothing changed was applied: %+v", st)
	}

	h.d.watch.Close()
	h.d.secretWatch.Close()
	vol.set(map[string]string{"url": newRcv.URL + "/hooks/T0-new-token", "token": "api-token-2"})
	if err := h.d.Reload("test"); err != nil {
		t.Fatal(err)
	}
	if st := h.d.reload.Load(); !st.OK || st.Reason != "test" {
		t.Fatalf("the rotation was not reloaded: %+v", st)
	}
	contains(t, "log", h.logs.String(), "changed=[hook]")

	h.tick(1) // before the repeat: nothing is paged again
	h.settle()
	if oldRcv.Total() != 1 || newRcv.Total() != 0 {
		t.Fatalf("paged again after the rotation: old %s; new %s", oldRcv.Summary(), newRcv.Summary())
	}
	h.tick(3) // the repeat, 30s after the page
	h.waitFor("the repeat to the new URL", func() bool { return newRcv.Count("MemberUp", "firing") == 1 })
	if oldRcv.Total() != 1 {
		t.Errorf("old URL still used after the rotation: %s", oldRcv.Summary())
	}

	if code, _ := h.get("/api/v1/status", "api-token-1"); code != 401 {
		t.Errorf("the rotated-out API token still works: %d", code)
	}
	if code, _ := h.get("/api/v1/status", "api-token-2"); code != 200 {
		t.Errorf("the new API token: %d", code)
	}
	h.assertNoSecrets("api-token-2")
}

// With file events, a rotation in a Secret volume (the `..data` swap) is
// noticed and applied by itself.
func TestRotatedSecretFileWatched(t *testing.T) {
	oldRcv, newRcv := webhooktest.NewReceiver(t), webhooktest.NewReceiver(t)
	h, vol := rotationHarness(t, oldRcv.URL+"/hooks/T0-old-token")
	h.waitFor("the page to the old URL", func() bool { return oldRcv.Count("MemberUp", "firing") == 1 })

	vol.set(map[string]string{"url": newRcv.URL + "/hooks/T0-new-token", "token": "api-token-1"})
	h.waitFor("the reload after the ..data swap", func() bool {
		st := h.d.reload.Load()
		return st.OK && strings.HasPrefix(st.Reason, "file change: ")
	})
	h.tick(4)
	h.waitFor("the repeat to the new URL", func() bool { return newRcv.Count("MemberUp", "firing") == 1 })
	if oldRcv.Total() != 1 {
		t.Errorf("old URL: %s, want the page only", oldRcv.Summary())
	}
	h.assertNoSecrets("api-token-1")
}

// settle waits until no message is being delivered: what evaluation
// decided to send has been sent.
func (h *harness) settle() {
	h.t.Helper()
	h.waitFor("deliveries to finish", func() bool {
		for _, g := range h.d.disp.Status() {
			if g.InFlight {
				return false
			}
		}
		return true
	})
}
