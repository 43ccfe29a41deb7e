package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vigil-alerts/vigil/internal/testkit"
)

// `vigil alerts` shows what fires and what is pending, marks what is
// silenced, and filters by state.
func TestAlertsCommand(t *testing.T) {
	h := newHarness(t, pageRules)
	h.silence(`{"matchers": ["alertname=AllUp"], "duration": "1h", "created_by": "ops", "comment": "rebuild"}`)
	h.tick(2)
	url := "--url=http://" + h.d.Addr()
	var out, errOut bytes.Buffer
	if code := run([]string{"alerts", url}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 4 || !strings.HasPrefix(lines[0], "STATE") {
		t.Fatalf("want a header and 3 alerts:\n%s", out.String())
	}
	// One line per alert, columns as a person reads them.
	contains(t, "vigil alerts", strings.Join(strings.Fields(out.String()), " "),
		"firing (silenced) AllUp critical 1 segments 1 2026-03-01T12:00:10Z all 1 members answer",
		`firing (inhibited) MemberUp high {host.mac="02:00:00:00:00:01"} 1 2026-03-01T12:00:10Z member m0 answers`,
		`pending MemberSlowToAnswer low {host.mac="02:00:00:00:00:01"} 1 2026-03-01T12:00:10Z`)
	out.Reset()
	run([]string{"alerts", url, "--state", "pending"}, &out, &errOut)
	if s := out.String(); !strings.Contains(s, "MemberSlowToAnswer") || strings.Contains(s, "AllUp") {
		t.Errorf("--state pending:\n%s", s)
	}
	if code := run([]string{"alerts", "--url=http://" + testkit.ClosedPort(t)}, &out, &errOut); code != 1 {
		t.Errorf("no Vigil at the URL: exit %d, want 1", code)
	}
}

// `vigil explain` shows, for an alert of a running Vigil, its rule's
// condition and each aggregate's value per segment at the last evaluation,
// and says so when no alert matches.
func TestExplainCommand(t *testing.T) {
	h := newHarness(t, pageRules)
	h.tick(2)
	url := "--url=http://" + h.d.Addr()
	var out, errOut bytes.Buffer
	if code := run([]string{"explain", url, "MemberUp", "host.mac=02:00:00:00:00:01"}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	contains(t, "vigil explain MemberUp", out.String(),
		`MemberUp {`, `} firing`, "  rule: etcd.yaml:",
		`condition: max("etcd.can_connect") == 1`,
		"window 1m0s, for 0s, across any, last evaluated 2026-03-01T12:00:20Z",
		`segment {host.mac="02:00:00:00:00:01"}`,
		`max("etcd.can_connect") = 1`)

	out.Reset()
	if code := run([]string{"explain", url, "AllUp"}, &out, &errOut); code != 0 {
		t.Fatalf("AllUp: exit %d: %s", code, errOut.String())
	}
	contains(t, "vigil explain AllUp", out.String(), "across every", `segment {host.mac="02:00:00:00:00:01"}`, `max("etcd.can_connect") = 1`)

	errOut.Reset()
	if code := run([]string{"explain", url, "MemberUp", "host.mac=nope"}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), `no alert MemberUp{host.mac="nope"}`) {
		t.Errorf("no match: exit %d, %q; want 1 and the alert named", code, errOut.String())
	}
	if code, body := h.get("/api/v1/alerts/0000000000000000/explain", ""); code != 404 {
		t.Errorf("unknown fingerprint: %d %s", code, body)
	}
}
