package rules

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// ruleFile is a rule file with one group holding rules named names, each
// with threshold n; inhibits, when set, makes the first rule inhibit it.
func ruleFile(group string, n int, inhibits string, names ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "groups:\n  - name: %s\n    rules:\n", group)
	for i, name := range names {
		fmt.Fprintf(&b, "      - name: %s\n        severity: high\n        condition: max(\"etcd.up\") < %d\n", name, n)
		if i == 0 && inhibits != "" {
			fmt.Fprintf(&b, "        inhibits:\n          rules: [%s]\n", inhibits)
		}
	}
	return b.String()
}

type qdir struct {
	t   *testing.T
	dir string
	set *RuleSet
	// mtime of the next write: each write is one second newer, so "newer"
	// does not depend on the file system's timestamp resolution.
	mtime time.Time
}

func newQdir(t *testing.T) *qdir {
	return &qdir{t: t, dir: t.TempDir(), mtime: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
}

func (q *qdir) write(name, content string) string {
	q.t.Helper()
	p := filepath.Join(q.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		q.t.Fatal(err)
	}
	q.mtime = q.mtime.Add(time.Second)
	if err := os.Chtimes(p, q.mtime, q.mtime); err != nil {
		q.t.Fatal(err)
	}
	return p
}

// load is one reload: the set in use is the previous load's.
func (q *qdir) load() *Loaded {
	q.t.Helper()
	ld, err := LoadEach(q.set, nil, q.dir)
	if err != nil {
		q.t.Fatal(err)
	}
	q.set = ld.Set
	return ld
}

// threshold is the condition's source of rule name, "" when not in the set.
func threshold(rs *RuleSet, name string) string {
	for _, r := range rs.Rules() {
		if r.Name == name {
			return r.Condition.Source
		}
	}
	return ""
}

func quarantined(ld *Loaded) string {
	var out []string
	for _, q := range ld.Quarantined {
		out = append(out, fmt.Sprintf("%s running=%v: %v", filepath.Base(q.File), q.Running, q.Errors))
	}
	return strings.Join(out, "\n")
}

// A syntax error in one file keeps that file's last good version (the same
// compiled rules, so the engine keeps their alerts) while the other file's
// edit applies; fixing it clears the quarantine.
func TestLoadEachKeepsBrokenFilesLastGoodVersion(t *testing.T) {
	q := newQdir(t)
	a := q.write("a.yaml", ruleFile("a", 1, "", "A1"))
	q.write("b.yaml", ruleFile("b", 1, "", "B1"))
	if ld := q.load(); len(ld.Quarantined) > 0 || len(ld.Set.Rules()) != 2 {
		t.Fatalf("start: %d rules, quarantined:\n%s", len(ld.Set.Rules()), quarantined(ld))
	}
	oldA := q.set.Rules()[0]

	q.write("a.yaml", strings.Replace(ruleFile("a", 1, "", "A1"), "< 1", "<", 1))
	q.write("b.yaml", ruleFile("b", 5, "", "B1"))
	ld := q.load()
	if got := threshold(ld.Set, "B1"); got != `max("etcd.up") < 5` {
		t.Errorf("B's edit not applied: %q", got)
	}
	if got := ld.Set.Rules()[0]; got != oldA {
		t.Errorf("A's last good rule not kept as it was: %+v", got)
	}
	if len(ld.Quarantined) != 1 || ld.Quarantined[0].File != a || !ld.Quarantined[0].Running {
		t.Fatalf("want a.yaml quarantined and running:\n%s", quarantined(ld))
	}
	if msg := ld.Quarantined[0].Errors.Error(); !strings.HasPrefix(msg, a+":6:") {
		t.Errorf("error without a.yaml:line:col: %q", msg)
	}

	// The same bytes again: still quarantined, nothing else changes.
	if ld := q.load(); len(ld.Quarantined) != 1 || threshold(ld.Set, "A1") != `max("etcd.up") < 1` {
		t.Fatalf("second load of the same files:\n%s", quarantined(ld))
	}

	q.write("a.yaml", ruleFile("a", 7, "", "A1"))
	ld = q.load()
	if len(ld.Quarantined) > 0 || threshold(ld.Set, "A1") != `max("etcd.up") < 7` {
		t.Fatalf("fixed a.yaml not applied: %q\n%s", threshold(ld.Set, "A1"), quarantined(ld))
	}
}

// A file that never loaded is quarantined without a version; deleting a
// broken file clears its quarantine.
func TestLoadEachNewBrokenFileAndDeletion(t *testing.T) {
	q := newQdir(t)
	q.write("a.yaml", ruleFile("a", 1, "", "A1"))
	q.load()

	// Half written: the YAML stops in the middle of a rule.
	full := ruleFile("c", 1, "", "C1")
	c := q.write("c.yaml", full[:len(full)-12])
	ld := q.load()
	if len(ld.Quarantined) != 1 || ld.Quarantined[0].File != c || ld.Quarantined[0].Running {
		t.Fatalf("want c.yaml quarantined, not running:\n%s", quarantined(ld))
	}
	if threshold(ld.Set, "A1") == "" || len(ld.Set.Rules()) != 1 {
		t.Fatalf("a.yaml not kept: %d rules", len(ld.Set.Rules()))
	}
	q.write("c.yaml", full)
	if ld := q.load(); len(ld.Quarantined) > 0 || threshold(ld.Set, "C1") == "" {
		t.Fatalf("completed c.yaml not applied:\n%s", quarantined(ld))
	}

	q.write("c.yaml", "groups: [")
	if ld := q.load(); len(ld.Quarantined) != 1 || threshold(ld.Set, "C1") == "" {
		t.Fatalf("broken c.yaml:\n%s", quarantined(ld))
	}
	os.Remove(c)
	if ld := q.load(); len(ld.Quarantined) > 0 || threshold(ld.Set, "C1") != "" || len(ld.Set.Files) != 1 {
		t.Fatalf("deleted c.yaml: files %v\n%s", ld.Set.Files, quarantined(ld))
	}
}

// A name used in two files quarantines the newer file: a file that
// changed is newer than one in use, and among changed files the later
// mtime is newer.
func TestLoadEachCrossFileClashQuarantinesNewerFile(t *testing.T) {
	q := newQdir(t)
	a := q.write("a.yaml", ruleFile("a", 1, "", "A1", "Shared"))
	q.write("b.yaml", ruleFile("b", 1, "", "B1"))
	q.load()

	// A new file takes a name a.yaml already uses.
	z := q.write("0-new.yaml", ruleFile("z", 1, "", "Shared"))
	ld := q.load()
	if len(ld.Quarantined) != 1 || ld.Quarantined[0].File != z || ld.Quarantined[0].Running {
		t.Fatalf("want 0-new.yaml quarantined:\n%s", quarantined(ld))
	}
	if msg := ld.Quarantined[0].Errors.Error(); !strings.Contains(msg, z+":4:") ||
		!strings.Contains(msg, `rule "Shared": duplicate rule name, first defined at `+a+":7:") {
		t.Errorf("clash message: %q", msg)
	}
	if len(ld.Set.Rules()) != 3 {
		t.Errorf("old files not kept: %d rules", len(ld.Set.Rules()))
	}

	// An edit to b.yaml that also takes the name: b.yaml falls back to
	// its last good version; its group name clashes too.
	b := q.write("b.yaml", ruleFile("a", 2, "", "B1", "Shared"))
	ld = q.load()
	var gotB *Quarantined
	for i := range ld.Quarantined {
		if ld.Quarantined[i].File == b {
			gotB = &ld.Quarantined[i]
		}
	}
	if gotB == nil || !gotB.Running || threshold(ld.Set, "B1") != `max("etcd.up") < 1` {
		t.Fatalf("b.yaml should run its last good version:\n%s", quarantined(ld))
	}
	if msg := gotB.Errors.Error(); !strings.Contains(msg, `group "a": duplicate group name`) {
		t.Errorf("group clash not reported: %q", msg)
	}

	// Two changed files clash: the later mtime loses, whatever the path.
	q2 := newQdir(t)
	q2.write("x.yaml", ruleFile("x", 1, "", "X"))
	q2.load()
	late := q2.write("a-late.yaml", ruleFile("late", 1, "", "Twin"))
	os.Chtimes(late, q2.mtime.Add(time.Hour), q2.mtime.Add(time.Hour))
	q2.write("z-early.yaml", ruleFile("early", 1, "", "Twin"))
	ld = q2.load()
	if len(ld.Quarantined) != 1 || ld.Quarantined[0].File != late {
		t.Fatalf("want a-late.yaml quarantined:\n%s", quarantined(ld))
	}
}

// An inhibits: naming a missing rule quarantines the file that changed:
// the inhibiting file when it is the new one, else the file that dropped
// the rule; a rule gone with a deleted file is only a warning.
func TestLoadEachInhibitTargets(t *testing.T) {
	q := newQdir(t)
	q.write("a.yaml", ruleFile("a", 1, "Target", "Inhibitor"))
	b := q.write("b.yaml", ruleFile("b", 1, "", "Target"))
	q.load()

	q.write("b.yaml", ruleFile("b", 2, "", "Renamed"))
	ld := q.load()
	if len(ld.Quarantined) != 1 || ld.Quarantined[0].File != b || !ld.Quarantined[0].Running ||
		!strings.Contains(ld.Quarantined[0].Errors.Error(), `rule "Target" is gone, but `) {
		t.Fatalf("want b.yaml quarantined for dropping Target:\n%s", quarantined(ld))
	}
	if threshold(ld.Set, "Target") == "" || threshold(ld.Set, "Renamed") != "" {
		t.Errorf("b.yaml's last good version not in use")
	}

	c := q.write("c.yaml", ruleFile("c", 1, "Typo", "C1"))
	ld = q.load()
	if len(ld.Quarantined) != 2 || ld.Quarantined[1].File != c ||
		!strings.Contains(ld.Quarantined[1].Errors.Error(), `inhibits: no rule named "Typo"`) {
		t.Fatalf("want c.yaml quarantined for its inhibits:\n%s", quarantined(ld))
	}

	os.Remove(c)
	os.Remove(b)
	ld = q.load()
	if len(ld.Quarantined) != 0 || len(ld.Warnings) != 1 || !strings.Contains(ld.Warnings[0], `no rule named "Target"`) {
		t.Fatalf("deleting b.yaml: warnings %q\n%s", ld.Warnings, quarantined(ld))
	}
}

// At start (no set in use) a broken file has no version to keep.
func TestLoadEachAtStart(t *testing.T) {
	q := newQdir(t)
	q.write("a.yaml", ruleFile("a", 1, "", "A1"))
	b := q.write("b.yaml", "groups:\n  - name: b\n    rules:\n      - name: B1\n        severity: high\n        condition: max(\"x\") <\n")
	ld := q.load()
	if len(ld.Quarantined) != 1 || ld.Quarantined[0].File != b || ld.Quarantined[0].Running || len(ld.Set.Rules()) != 1 {
		t.Fatalf("start with a broken file:\n%s", quarantined(ld))
	}
}
