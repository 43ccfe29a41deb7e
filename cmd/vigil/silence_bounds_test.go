package main

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/vigil-alerts/vigil/cmd/vigil/statefile"
)

// restartWithSilences restarts the harness' daemon on the base config plus extra
// (top-level sections).
func (h *harness) restartWithSilences(extra string) {
	h.t.Helper()
	h.d.Stop()
	h.write("vigil.yaml", baseConfig(sharedEtcd(h.t), extra))
	h.start()
}

// silenceCrashCopy starts a second daemon on a copy of the harness' files as
// they are now, without stopping the first: what a crash (no final save)
// leaves behind, restored by a new process.
func (h *harness) silenceCrashCopy() *harness {
	h.t.Helper()
	dir := h.t.TempDir()
	err := filepath.WalkDir(h.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(h.dir, p)
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, rel), b, 0o600)
	})
	if err != nil {
		h.t.Fatal(err)
	}
	n := &harness{t: h.t, dir: dir, rulesDir: filepath.Join(dir, "rules"), cfgPath: filepath.Join(dir, "vigil.yaml"),
		base: h.base, step: h.step, web: h.web}
	n.i.Store(h.i.Load())
	n.start()
	return n
}

// silenceList is GET /api/v1/silences, decoded.
func (h *harness) silenceList() []apiSilence {
	h.t.Helper()
	_, body := h.get("/api/v1/silences", "")
	var v silencesView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		h.t.Fatalf("GET /api/v1/silences: %v: %s", err, body)
	}
	return v.Silences
}

// hostSilence is a narrow silence of one host for dur.
func hostSilence(host, dur, comment string) string {
	return silenceOf(dur, comment, fmt.Sprintf("host.mac=%q", host))
}

// silenceOf is a POST body with these matchers (text form).
func silenceOf(dur, comment string, matchers ...string) string {
	b, _ := json.Marshal(map[string]any{"matchers": matchers, "duration": dur, "created_by": "alice", "comment": comment})
	return string(b)
}

// Each limit of the silences: section refuses with a 4xx naming it, and
// the refused silence is nowhere; a reload applies new limits. With the
// defaults, the year-long silence is refused.
func TestSilenceLimits(t *testing.T) {
	h := newHarness(t, upRule)
	code, out := h.do("POST", "/api/v1/silences", hostSilence("02:00:00:00:00:01", "8760h", "a year"))
	if code != http.StatusBadRequest || !strings.Contains(out, "more than the limit of 336h0m0s") || !strings.Contains(out, "silences.max_duration") {
		t.Errorf("a year-long silence with the default limits: %d %s", code, out)
	}

	h.restartWithSilences("silences:\n  max_silences: 2\n  max_silence_size_bytes: 1024\n  max_duration: 48h\n")
	for _, tc := range []struct {
		body string
		code int
		want string
	}{
		{hostSilence("02:00:00:00:00:01", "49h", "long"), http.StatusBadRequest, "silences.max_duration"},
		{hostSilence("02:00:00:00:00:01", "1h", strings.Repeat("x", 1100)), http.StatusRequestEntityTooLarge, "silences.max_silence_size_bytes"},
	} {
		if code, out := h.do("POST", "/api/v1/silences", tc.body); code != tc.code || !strings.Contains(out, tc.want) {
			t.Errorf("POST %.80s: %d %s, want %d naming %s", tc.body, code, out, tc.code, tc.want)
		}
	}
	if n := len(h.silenceList()); n != 0 {
		t.Fatalf("refused silences are listed: %d", n)
	}
	h.silence(hostSilence("02:00:00:00:00:01", "48h", "first"))
	second := h.silence(hostSilence("02:00:00:00:00:02", "1h", "second"))
	code, out = h.do("POST", "/api/v1/silences", hostSilence("02:00:00:00:00:03", "1h", "third"))
	if code != http.StatusConflict || !strings.Contains(out, "2 active and pending already, the limit is 2") || !strings.Contains(out, "silences.max_silences") {
		t.Errorf("third silence: %d %s, want 409 naming silences.max_silences", code, out)
	}
	// Extending one at the limit is no new silence.
	code, out = h.do("POST", "/api/v1/silences", strings.Replace(hostSilence("02:00:00:00:00:02", "2h", "longer"), "{", `{"id":"`+second.ID+`",`, 1))
	if code != http.StatusOK {
		t.Errorf("extending a silence at the count limit: %d %s", code, out)
	}
	if n := len(h.silenceList()); n != 2 {
		t.Fatalf("%d silences listed, want 2", n)
	}

	h.write("vigil.yaml", baseConfig(sharedEtcd(t), "silences:\n  max_silences: 3\n"))
	if err := h.d.Reload("test"); err != nil {
		t.Fatal(err)
	}
	if code, out := h.do("POST", "/api/v1/silences", hostSilence("02:00:00:00:00:03", "1h", "third")); code != http.StatusCreated {
		t.Errorf("third silence after raising the limit: %d %s", code, out)
	}
}

// memberAndQuorumRules: MemberUp (info, per host.mac) and QuorumLost (critical, one
// alert for the cluster, team=storage).
const memberAndQuorumRules = upRule + `  - name: cluster
    interval: 10s
    rules:
      - name: QuorumLost
        severity: critical
        condition: max("etcd.can_connect") == 0
        labels:
          team: storage
        notify: [console]
`

// A silence that would mute every alert the rules can raise is refused
// whatever its spelling; narrow ones, even an unusual spelling that
// leaves some alert out, are accepted.
func TestSilenceMutingEverythingRefused(t *testing.T) {
	h := newHarness(t, memberAndQuorumRules)
	for _, ms := range [][]string{
		{`alertname=~".+"`}, {`alertname=~".*"`}, {`alertname!=""`}, {`alertname!~"x"`},
		{`severity=~"critical|high|medium|low|info"`}, {`severity!="nonsense"`},
		{`alertname=~"MemberUp|QuorumLost"`}, {`host.mac!="__impossible__"`}, {`cluster=~".*"`},
		{`alertname=~".+"`, `host.mac=~".*"`},
	} {
		code, out := h.do("POST", "/api/v1/silences", silenceOf("1h", "mute it all", ms...))
		if code != http.StatusBadRequest || !strings.Contains(out, "would mute every alert the loaded rules can raise") {
			t.Errorf("POST %s: %d %s, want 400 naming every alert", ms, code, out)
		}
	}
	if n := len(h.silenceList()); n != 0 {
		t.Fatalf("refused silences are listed: %d", n)
	}
	for _, ms := range [][]string{
		{`alertname="MemberUp"`},                      // one rule of two
		{`host.mac="02:00:00:00:00:01"`},              // one member
		{`host.mac=~".+"`},                            // QuorumLost's alert has no host.mac
		{`severity=~"critical|high"`},                 // not MemberUp (info)
		{`alertname!="QuorumLost"`, `host.mac=~".+"`}, // MemberUp only
		{`team="storage"`},                            // QuorumLost only
		{`alertname=~".+"`, `team!="storage"`},        // not QuorumLost
	} {
		if code, out := h.do("POST", "/api/v1/silences", silenceOf("1h", "narrow", ms...)); code != http.StatusCreated {
			t.Errorf("POST %s: %d %s, want 201", ms, code, out)
		}
	}
	// Once every rule segments by host.mac, every alert has one: a
	// matcher that takes any host.mac restricts nothing. The check
	// follows the loaded rules.
	h.write("rules/etcd.yaml", upRule)
	if err := h.d.Reload("test"); err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{`host.mac=~".+"`, `host.mac!=""`} {
		code, out := h.do("POST", "/api/v1/silences", silenceOf("1h", "every member", m))
		if code != http.StatusBadRequest || !strings.Contains(out, "would mute every alert") {
			t.Errorf("POST %s with every rule segmented by host.mac: %d %s, want 400", m, code, out)
		}
	}
	// An `across: every` rule's one alert has no host.mac (it is per
	// segment in its segments list), so host.mac=~".+" leaves it out: the
	// silence is accepted, and indeed the alert is sent.
	h.write("rules/etcd.yaml", upRule+`  - name: all
    interval: 10s
    rules:
      - name: AllMembersUp
        severity: info
        segment_by: [host.mac]
        across: every
        condition: max("etcd.can_connect") == 1
        notify: [console]
`)
	if err := h.d.Reload("test"); err != nil {
		t.Fatal(err)
	}
	for _, s := range h.silenceList() { // only the one below may mute
		h.do("DELETE", "/api/v1/silences/"+s.ID, "")
	}
	if code, out := h.do("POST", "/api/v1/silences", silenceOf("1h", "every member", `host.mac=~".+"`)); code != http.StatusCreated {
		t.Fatalf("host.mac=~\".+\" with an across: every rule: %d %s, want 201", code, out)
	}
	h.tick(3)
	if !strings.Contains(h.console.String(), "AllMembersUp") {
		t.Errorf("the across: every alert was muted by host.mac=~\".+\":\n%s", h.console.String())
	}
}

// silenceFileInfo is what shows a rewrite of a file: its inode (an atomic save
// renames a new file over it), size and modification time.
type silenceFileInfo struct {
	ino   uint64
	size  int64
	mtime int64
}

func silenceFileStat(t *testing.T, p string) silenceFileInfo {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return silenceFileInfo{ino: fi.Sys().(*syscall.Stat_t).Ino, size: fi.Size(), mtime: fi.ModTime().UnixNano()}
}

// 1,000 POSTs each append one line to the journal and leave the state
// file alone; the next save takes them all in and empties the journal;
// a restart has them all.
func TestSilencePostsAppendToJournal(t *testing.T) {
	h := newHarness(t, upRule)
	h.restartWithSilences("silences:\n  max_silences: 2000\n")
	h.tick(1) // a state file exists
	state := filepath.Join(h.dir, "state.json")
	journal := statefile.JournalPath(state)
	before := silenceFileStat(t, state)
	var jsize int64
	const n = 1000
	for i := range n {
		h.silence(hostSilence(fmt.Sprintf("02:00:00:00:%02x:%02x", i/256, i%256), "1h", "bulk"))
		if got := silenceFileStat(t, state); got != before {
			t.Fatalf("POST %d rewrote the state file: %+v, was %+v", i+1, got, before)
		}
		js := silenceFileStat(t, journal).size
		if js <= jsize {
			t.Fatalf("POST %d: journal size %d, was %d", i+1, js, jsize)
		}
		jsize = js
	}
	ss, torn, err := statefile.ReadJournal(journal)
	if len(ss) != n || torn || err != nil {
		t.Fatalf("journal has %d silences (torn %v, err %v), want %d", len(ss), torn, err, n)
	}
	h.tick(1)
	if silenceFileStat(t, state) == before || silenceFileStat(t, journal).size != 0 {
		t.Fatalf("the save after the POSTs did not take the journal in: state %+v, journal %d bytes", silenceFileStat(t, state), silenceFileStat(t, journal).size)
	}
	st, err := statefile.Load(state, h.now())
	if err != nil || len(st.Silences) != n {
		t.Fatalf("state file has %d silences (%v), want %d", len(st.Silences), err, n)
	}
	h.d.Stop()
	h.start()
	if got := len(h.silenceList()); got != n {
		t.Fatalf("after a restart %d silences, want %d", got, n)
	}
}

// A crash (no final save) keeps every confirmed silence change: the state
// file, then the journal replayed over it. A line torn by a crash is
// skipped and the journal goes on.
func TestSilenceJournalSurvivesCrash(t *testing.T) {
	h := newHarness(t, strings.Replace(upRule, "for: 1m", "for: 0s", 1))
	early := h.silence(hostSilence("02:00:00:00:00:09", "3h", "in the state file"))
	h.tick(1) // saved in the state file; the journal emptied
	kept := h.silence(maintenance)
	gone := h.silence(hostSilence("02:00:00:00:00:02", "1h", "expired before the crash"))
	if code, out := h.do("DELETE", "/api/v1/silences/"+gone.ID, ""); code != http.StatusOK {
		t.Fatalf("DELETE: %d %s", code, out)
	}

	c := h.silenceCrashCopy()
	states := map[string]string{}
	for _, s := range c.silenceList() {
		states[s.ID] = s.State
	}
	if states[early.ID] != "active" || states[kept.ID] != "active" || states[gone.ID] != "expired" || len(states) != 3 {
		t.Fatalf("after a crash: %v, want %s and %s active, %s expired", states, early.ID, kept.ID, gone.ID)
	}
	c.tick(5)
	if strings.Contains(c.console.String(), "MemberUp") {
		t.Fatalf("the journaled silence did not mute after the crash; sent:\n%s", c.console.String())
	}

	// A crash in the middle of an append: the line is cut short.
	journal := statefile.JournalPath(filepath.Join(c.dir, "state.json"))
	f, err := os.OpenFile(journal, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"id":"deadbeefdeadbeef","matchers":[{"name":"host.mac","op":"=","val`)
	f.Close()
	c2 := c.silenceCrashCopy()
	if n := len(c2.silenceList()); n != 3 {
		t.Errorf("after a torn line: %d silences, want 3", n)
	}
	if !strings.Contains(c2.logs.String(), "cut short by a crash") {
		t.Errorf("the torn line was not reported:\n%s", c2.logs.String())
	}
	after := c2.silence(hostSilence("02:00:00:00:00:03", "1h", "after the torn line"))
	c3 := c2.silenceCrashCopy()
	if s, ok := c3.d.sil.Get(after.ID); !ok || s.State(c3.now()) != "active" {
		t.Errorf("the silence added after a torn line was lost in the next crash")
	}
}

// When the journal cannot be written, a silence is refused with 503 and
// is not in effect, and an expiry is refused and the silence still mutes:
// the caller knows nothing changed and can retry. Once the disk is fixed,
// the same request succeeds.
func TestSilenceNotSavedNotMade(t *testing.T) {
	h := newHarness(t, strings.Replace(upRule, "for: 1m", "for: 0s", 1))
	active := h.silence(hostSilence("02:00:00:00:00:09", "2h", "before the disk broke"))
	h.tick(1) // in the state file; the journal is empty
	journal := statefile.JournalPath(filepath.Join(h.dir, "state.json"))
	// Tests run as root, which chmod does not stop: a directory where the
	// journal file should be makes every append fail.
	if err := os.Remove(journal); err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	if err := os.Mkdir(journal, 0o755); err != nil {
		t.Fatal(err)
	}
	code, out := h.do("POST", "/api/v1/silences", maintenance)
	if code != http.StatusServiceUnavailable || !strings.Contains(out, "not saved") || !strings.Contains(out, "try again") {
		t.Fatalf("POST with an unwritable journal: %d %s, want 503 saying not saved, try again", code, out)
	}
	if ss := h.silenceList(); len(ss) != 1 || ss[0].ID != active.ID {
		t.Fatalf("the unsaved silence is listed: %+v", ss)
	}
	code, out = h.do("DELETE", "/api/v1/silences/"+active.ID, "")
	if code != http.StatusServiceUnavailable || !strings.Contains(out, "not saved") {
		t.Fatalf("DELETE with an unwritable journal: %d %s, want 503", code, out)
	}
	if s, _ := h.d.sil.Get(active.ID); s.State(h.now()) != "active" {
		t.Fatalf("the unsaved expiry took effect: %s", s.State(h.now()))
	}
	h.tick(3)
	if !strings.Contains(h.console.String(), "MemberUp") {
		t.Fatalf("the refused silence muted MemberUp:\n%s", h.console.String())
	}

	if err := os.Remove(journal); err != nil {
		t.Fatal(err)
	}
	if code, out := h.do("POST", "/api/v1/silences", maintenance); code != http.StatusCreated {
		t.Fatalf("POST once the journal is writable: %d %s", code, out)
	}
}
