package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
)

// A notification's generatorURL is the daemon's own /rules/NAME page
// (externalURL defaults to http://<hostname>:<port>/ of the listener),
// which shows the rule's file, its YAML as loaded, its health and its
// alerts; an unknown rule is a 404 that does not echo markup.
func TestGeneratorURLServesTheRule(t *testing.T) {
	var mu sync.Mutex
	var bodies [][]byte
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		bodies = append(bodies, b)
		mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	h := newHarness(t, upRule)
	h.d.Stop()
	h.write("vigil.yaml", baseConfig(sharedEtcd(t), `    - name: am
      webhook: {url: "`+hook.URL+`", format: alertmanager}
`))
	h.write("rules/etcd.yaml", strings.Replace(upRule, "notify: [console]", "notify: [am]", 1))
	h.start()
	h.tick(8)
	h.waitFor("the webhook", func() bool { mu.Lock(); defer mu.Unlock(); return len(bodies) > 0 })

	var msg struct {
		ExternalURL string `json:"externalURL"`
		Alerts      []struct {
			GeneratorURL string `json:"generatorURL"`
		} `json:"alerts"`
	}
	mu.Lock()
	err := json.Unmarshal(bodies[0], &msg)
	mu.Unlock()
	if err != nil || len(msg.Alerts) != 1 {
		t.Fatalf("payload: %v %+v", err, msg)
	}
	host, _ := os.Hostname()
	_, port, _ := net.SplitHostPort(h.d.Addr())
	if want := "http://" + net.JoinHostPort(host, port) + "/"; msg.ExternalURL != want {
		t.Errorf("externalURL = %q, want %q", msg.ExternalURL, want)
	}
	u, err := url.Parse(msg.Alerts[0].GeneratorURL)
	if err != nil || u.Path != "/rules/MemberUp" || !strings.HasPrefix(msg.Alerts[0].GeneratorURL, msg.ExternalURL) {
		t.Fatalf("generatorURL = %q", msg.Alerts[0].GeneratorURL)
	}
	// The host is this machine's name, which need not resolve here: the
	// path is asked of the daemon's address.
	code, page := h.get(u.Path, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: %d %s", u.Path, code, page)
	}
	contains(t, "rule page", page, `<h1 id="rule">MemberUp</h1>`, "rules/etcd.yaml:", "Health: <b>ok</b>",
		`- name: MemberUp`, `condition: max(&#34;etcd.can_connect&#34;) == 1`, "notify: [am]", "firing", "02:00:00:00:00:01",
		// Why it fires: the condition's aggregate for the segment.
		`<code>max(&#34;etcd.can_connect&#34;)</code> = 1`)

	// The status page links the alert and the rule to it, relative to
	// the page, so a route prefix or proxy path carries over.
	code, page = h.get("/", "")
	if code != http.StatusOK || strings.Count(page, `<a href="rules/MemberUp">MemberUp</a>`) != 2 {
		t.Errorf("status page: %d; want the firing alert and the rule linked to rules/MemberUp:\n%s", code, page)
	}

	code, page = h.get("/rules/%3Cscript%3Ealert(1)%3C%2Fscript%3E", "")
	if code != http.StatusNotFound || strings.Contains(page, "<script>") {
		t.Errorf("unknown rule: %d %q", code, page)
	}
}
