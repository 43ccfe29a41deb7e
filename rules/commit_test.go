package rules

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"
)

func commitFile(t *testing.T, repo *git.Repository, dir, name, body string) string {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Add(name); err != nil {
		t.Fatal(err)
	}
	h, err := wt.Commit("rules", &git.CommitOptions{Author: &object.Signature{Name: "t", Email: "t@x", When: time.Unix(0, 0)}})
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

func TestCommitPlainCheckoutFollowsEdits(t *testing.T) {
	dir := t.TempDir()
	repo, err := git.PlainInit(dir, false)
	if err != nil {
		t.Fatal(err)
	}
	first := commitFile(t, repo, dir, "r.yaml", "a")
	if got, err := Commit(dir); err != nil || got != first {
		t.Fatalf("Commit = %q, %v; want %s", got, err, first)
	}
	second := commitFile(t, repo, dir, "r.yaml", "b")
	if got, _ := Commit(dir); got != second {
		t.Fatalf("after edit Commit = %q; want %s", got, second)
	}
}

func TestCommitNotARepository(t *testing.T) {
	if got, err := Commit(t.TempDir()); err != nil || got != "" {
		t.Fatalf("Commit = %q, %v; want empty, nil", got, err)
	}
}

// git-sync: <root>/repo is the repository, <root>/rev-abc a worktree whose
// .git file points at repo/.git/worktrees/rev-abc, <root>/current a symlink.
func TestCommitGitSyncLayout(t *testing.T) {
	root := t.TempDir()
	main := filepath.Join(root, "repo")
	repo, err := git.PlainInit(main, false)
	if err != nil {
		t.Fatal(err)
	}
	want := commitFile(t, repo, main, "r.yaml", "a")
	wtDir := filepath.Join(root, "rev-abc")
	gitWt := filepath.Join(main, ".git", "worktrees", "rev-abc")
	for _, d := range []string{wtDir, gitWt} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	files := map[string]string{
		filepath.Join(wtDir, ".git"):      "gitdir: " + gitWt + "\n",
		filepath.Join(wtDir, "r.yaml"):    "a",
		filepath.Join(gitWt, "HEAD"):      want + "\n",
		filepath.Join(gitWt, "commondir"): "../..\n",
		filepath.Join(gitWt, "gitdir"):    filepath.Join(wtDir, ".git") + "\n",
	}
	for p, b := range files {
		if err := os.WriteFile(p, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A later commit on the main checkout must not leak into the worktree.
	commitFile(t, repo, main, "r.yaml", "b")
	link := filepath.Join(root, "current")
	if err := os.Symlink("rev-abc", link); err != nil {
		t.Fatal(err)
	}
	if got, err := Commit(link); err != nil || got != want {
		t.Fatalf("Commit = %q, %v; want %s", got, err, want)
	}
}

// A repository with no commit yet is not an error: there is no commit to name.
func TestCommitNoCommitYet(t *testing.T) {
	dir := t.TempDir()
	if _, err := git.PlainInit(dir, false); err != nil {
		t.Fatal(err)
	}
	if got, err := Commit(dir); err != nil || got != "" {
		t.Fatalf("Commit = %q, %v; want empty, nil", got, err)
	}
}
