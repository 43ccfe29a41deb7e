package statefile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/silences"
)

func silence(t *testing.T, id string, end time.Time) silences.Silence {
	t.Helper()
	m, err := silences.ParseMatcher(`host="m1"`)
	if err != nil {
		t.Fatal(err)
	}
	return silences.Silence{ID: id, Matchers: []silences.Matcher{m}, StartsAt: now, EndsAt: end,
		CreatedBy: "alice", Comment: "disk", UpdatedAt: now}
}

func ids(ss []silences.Silence) string {
	var out []string
	for _, s := range ss {
		out = append(out, s.ID+"@"+s.EndsAt.Sub(now).String())
	}
	return strings.Join(out, " ")
}

// Appends come back in order, one line each; a reset empties the journal
// and appends go on after it.
func TestJournalAppendReadReset(t *testing.T) {
	p := JournalPath(filepath.Join(t.TempDir(), "state.json"))
	if ss, torn, err := ReadJournal(p); len(ss) != 0 || torn || err != nil {
		t.Fatalf("missing journal: %v %v %v", ss, torn, err)
	}
	for _, s := range []silences.Silence{silence(t, "a", now.Add(time.Hour)), silence(t, "b", now.Add(time.Hour)), silence(t, "a", now.Add(time.Minute))} {
		if err := AppendSilence(p, s); err != nil {
			t.Fatal(err)
		}
	}
	ss, torn, err := ReadJournal(p)
	if got := ids(ss); got != "a@1h0m0s b@1h0m0s a@1m0s" || torn || err != nil {
		t.Fatalf("read %q torn=%v err=%v", got, torn, err)
	}
	if b, _ := os.ReadFile(p); strings.Count(string(b), "\n") != 3 {
		t.Errorf("want one line per append:\n%s", b)
	}
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("journal mode %v, want 0600", fi.Mode().Perm())
	}
	if err := ResetJournal(p); err != nil {
		t.Fatal(err)
	}
	if ss, _, _ := ReadJournal(p); len(ss) != 0 {
		t.Fatalf("after reset: %s", ids(ss))
	}
	if err := AppendSilence(p, silence(t, "c", now.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	if ss, _, _ := ReadJournal(p); ids(ss) != "c@1h0m0s" {
		t.Fatalf("after reset and append: %s", ids(ss))
	}
	if err := ResetJournal(filepath.Join(t.TempDir(), "none")); err != nil {
		t.Errorf("reset of a missing journal: %v", err)
	}
}

// A line cut short by a crash is skipped, and the next append after the
// restart starts a line of its own, so it is not lost with the torn one.
func TestJournalTornLine(t *testing.T) {
	p := JournalPath(filepath.Join(t.TempDir(), "state.json"))
	if err := AppendSilence(p, silence(t, "a", now.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	f, _ := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"id":"b","matchers":[{"na`)
	f.Close()
	ss, torn, err := ReadJournal(p)
	if ids(ss) != "a@1h0m0s" || !torn || err != nil {
		t.Fatalf("torn last line: %q torn=%v err=%v", ids(ss), torn, err)
	}
	if err := AppendSilence(p, silence(t, "c", now.Add(time.Hour))); err != nil {
		t.Fatal(err)
	}
	ss, torn, err = ReadJournal(p)
	if ids(ss) != "a@1h0m0s c@1h0m0s" || torn || err == nil || !strings.Contains(err.Error(), ":2:") {
		t.Fatalf("after the next append: %q torn=%v err=%v (want line 2 named)", ids(ss), torn, err)
	}
}

// An append that cannot be written says so.
func TestJournalAppendFails(t *testing.T) {
	p := JournalPath(filepath.Join(t.TempDir(), "state.json"))
	if err := os.Mkdir(p, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := AppendSilence(p, silence(t, "a", now.Add(time.Hour))); err == nil {
		t.Fatal("append to a directory: no error")
	}
}
