package rules

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

func sourceOf(t *testing.T, rs *RuleSet, name string) string {
	t.Helper()
	for _, r := range rs.Rules() {
		if r.Name == name {
			return r.Source.String()
		}
	}
	t.Fatalf("no rule %s", name)
	return ""
}

// Each rule's source is its file relative to the rules dir (a
// subdirectory kept), the line of its name and the commit its file was
// loaded at: a file whose edit does not load keeps running its last good
// version, and that version's commit, while the other files move on.
func TestLoadEachSourceCommitPerFileVersion(t *testing.T) {
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(dir, "team"), 0o755); err != nil {
		t.Fatal(err)
	}
	commitFile(t, repo, dir, "a.yaml", ruleFile("a", 1, "", "A1", "A2"))
	first := commitFile(t, repo, dir, "team/b.yaml", ruleFile("b", 1, "", "B"))
	ld, err := LoadEach(nil, nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := sourceOf(t, ld.Set, "A2"), "a.yaml:7@"+first[:8]; got != want {
		t.Errorf("A2 source %q, want %q", got, want)
	}
	if got, want := sourceOf(t, ld.Set, "B"), "team/b.yaml:4@"+first[:8]; got != want {
		t.Errorf("B source %q, want %q", got, want)
	}

	commitFile(t, repo, dir, "a.yaml", "groups: [")
	second := commitFile(t, repo, dir, "team/b.yaml", "# moved\n"+ruleFile("b", 2, "", "B"))
	ld, err = LoadEach(ld.Set, nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ld.Quarantined) != 1 {
		t.Fatalf("quarantined %+v, want a.yaml", ld.Quarantined)
	}
	if got, want := sourceOf(t, ld.Set, "A2"), "a.yaml:7@"+first[:8]; got != want {
		t.Errorf("quarantined A2 source %q, want its last good version's %q", got, want)
	}
	if got, want := sourceOf(t, ld.Set, "B"), "team/b.yaml:5@"+second[:8]; got != want {
		t.Errorf("edited B source %q, want %q", got, want)
	}
}

// Outside git a source has file and line only; Load names files as
// LoadEach does.
func TestLoadSourceWithoutGit(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "a.yaml"), []byte(ruleFile("a", 1, "", "A1")), 0o644)
	rs, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := sourceOf(t, rs, "A1"); got != "a.yaml:4" {
		t.Errorf("source %q, want a.yaml:4", got)
	}
	rs, err = Load(filepath.Join(dir, "a.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if got := sourceOf(t, rs, "A1"); got != "a.yaml:4" {
		t.Errorf("source of a file path %q, want a.yaml:4", got)
	}
}

// BenchmarkLoadEachSource is a reload that recompiles one file of 20, in
// a rules dir in git and in one outside: the cost the commit read adds.
func BenchmarkLoadEachSource(b *testing.B) {
	for _, inGit := range []bool{false, true} {
		b.Run(map[bool]string{false: "plain", true: "git"}[inGit], func(b *testing.B) {
			dir := b.TempDir()
			for i := range 20 {
				os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%02d.yaml", i)), []byte(ruleFile(fmt.Sprintf("g%d", i), 1, "", fmt.Sprintf("R%d", i))), 0o644)
			}
			if inGit {
				repo, err := git.PlainInit(dir, false)
				if err != nil {
					b.Fatal(err)
				}
				wt, _ := repo.Worktree()
				wt.AddGlob(".")
				if _, err := wt.Commit("x", &git.CommitOptions{Author: &object.Signature{Name: "t", Email: "t@x"}}); err != nil {
					b.Fatal(err)
				}
			}
			prev, err := LoadEach(nil, nil, dir)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				os.WriteFile(filepath.Join(dir, "f00.yaml"), []byte(ruleFile("g0", i%5+1, "", "R0")), 0o644)
				if prev, err = LoadEach(prev.Set, nil, dir); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A git repository that cannot be read stops nothing: the rules load,
// their source without a commit, and LoadEach says why for the log.
func TestLoadEachUnreadableGitLoadsWithoutCommit(t *testing.T) {
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	commitFile(t, repo, dir, "a.yaml", ruleFile("a", 1, "", "A1"))
	// A symbolic ref loop: HEAD cannot be resolved.
	if err := os.WriteFile(filepath.Join(dir, ".git", "refs", "heads", "master"), []byte("ref: refs/heads/master\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ld, err := LoadEach(nil, nil, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := sourceOf(t, ld.Set, "A1"); got != "a.yaml:4" {
		t.Errorf("source %q, want a.yaml:4", got)
	}
	if len(ld.CommitErrors) != 1 {
		t.Errorf("CommitErrors %v, want one", ld.CommitErrors)
	}
}
