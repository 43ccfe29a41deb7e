package watch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func isYAML(p string) bool { return strings.HasSuffix(p, ".yaml") }

func start(t *testing.T, o Options) <-chan string {
	t.Helper()
	ch := make(chan string, 16)
	o.Debounce = 20 * time.Millisecond
	o.OnChange = func(r string) { ch <- r }
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return ch
}

// expect waits for one debounced call; nothing else may follow quickly.
func expect(t *testing.T, ch <-chan string, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("%s: no change reported", what)
	}
}

func expectNone(t *testing.T, ch <-chan string, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s: unexpected change %q", what, r)
	case <-time.After(150 * time.Millisecond):
	}
}

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRuleDirEvents(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a.yaml"), "1")
	ch := start(t, Options{Dirs: []string{dir}, Match: isYAML})

	write(t, filepath.Join(dir, "a.yaml"), "2")
	expect(t, ch, "in-place write")

	// An editor's save: write a temporary file, rename it over the rule.
	write(t, filepath.Join(dir, ".a.yaml.swp"), "x")
	os.Rename(filepath.Join(dir, ".a.yaml.swp"), filepath.Join(dir, "a.yaml"))
	expect(t, ch, "rename over")

	// A burst is one call.
	for i := range 5 {
		write(t, filepath.Join(dir, "a.yaml"), strings.Repeat("x", i))
	}
	expect(t, ch, "burst")
	expectNone(t, ch, "after burst")

	// A new sub-directory (git checkout of a new folder) is watched too.
	sub := filepath.Join(dir, "team")
	os.Mkdir(sub, 0o755)
	expect(t, ch, "new directory")
	write(t, filepath.Join(sub, "b.yaml"), "1")
	expect(t, ch, "file in new directory")

	os.Chmod(filepath.Join(dir, "a.yaml"), 0o600)
	write(t, filepath.Join(dir, "notes.txt"), "x")
	expectNone(t, ch, "chmod and non-rule files")
}

// A Kubernetes ConfigMap volume: files are symlinks through ..data, which
// is atomically re-pointed at a new hidden directory.
func TestConfigMapSymlinkSwap(t *testing.T) {
	dir := t.TempDir()
	v1 := filepath.Join(dir, "..2026_01_01_00_00_00.1")
	os.Mkdir(v1, 0o755)
	write(t, filepath.Join(v1, "etcd.yaml"), "1")
	os.Symlink(filepath.Base(v1), filepath.Join(dir, "..data"))
	os.Symlink(filepath.Join("..data", "etcd.yaml"), filepath.Join(dir, "etcd.yaml"))
	cfgDir := t.TempDir()
	write(t, filepath.Join(cfgDir, "vigil.yaml"), "a")
	ch := start(t, Options{Dirs: []string{dir}, Files: []string{filepath.Join(cfgDir, "vigil.yaml")}, Match: isYAML})

	v2 := filepath.Join(dir, "..2026_01_01_00_01_00.2")
	os.Mkdir(v2, 0o755)
	write(t, filepath.Join(v2, "etcd.yaml"), "2")
	os.Symlink(filepath.Base(v2), filepath.Join(dir, "..data_tmp"))
	os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data"))
	os.RemoveAll(v1)
	expect(t, ch, "..data swap")

	write(t, filepath.Join(cfgDir, "vigil-state.json"), "{}")
	expectNone(t, ch, "other file beside the config")
	write(t, filepath.Join(cfgDir, "vigil.yaml"), "b")
	expect(t, ch, "config write")
}

func TestRecheckAndClose(t *testing.T) {
	dir := t.TempDir()
	ch := make(chan string, 4)
	w, err := New(Options{Dirs: []string{dir}, Recheck: 10 * time.Millisecond, Debounce: time.Millisecond,
		OnChange: func(r string) {
			select {
			case ch <- r:
			default:
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if r := <-ch; r != "periodic re-check" {
		t.Fatalf("reason %q", r)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := New(Options{Dirs: []string{filepath.Join(dir, "missing")}}); err == nil {
		t.Fatal("missing directory accepted")
	}
}

// git-sync: the rule directory is reached through a `current` symlink that
// is atomically re-pointed at a new worktree; later edits in the new
// worktree are seen too.
func TestGitSyncLinkSwap(t *testing.T) {
	root := t.TempDir()
	wt1 := filepath.Join(root, ".worktrees", "aaa")
	os.MkdirAll(filepath.Join(wt1, "rules"), 0o755)
	write(t, filepath.Join(wt1, "rules", "etcd.yaml"), "1")
	os.Symlink(filepath.Join(".worktrees", "aaa"), filepath.Join(root, "current"))
	ch := start(t, Options{Dirs: []string{filepath.Join(root, "current", "rules")}, Match: isYAML})

	wt2 := filepath.Join(root, ".worktrees", "bbb")
	os.MkdirAll(filepath.Join(wt2, "rules"), 0o755)
	write(t, filepath.Join(wt2, "rules", "etcd.yaml"), "2")
	os.Symlink(filepath.Join(".worktrees", "bbb"), filepath.Join(root, "current.tmp"))
	os.Rename(filepath.Join(root, "current.tmp"), filepath.Join(root, "current"))
	expect(t, ch, "current swapped")
	os.RemoveAll(wt1)
	select { // the old worktree's removal may or may not be reported
	case <-ch:
	case <-time.After(100 * time.Millisecond):
	}
	write(t, filepath.Join(wt2, "rules", "etcd.yaml"), "3")
	expect(t, ch, "edit in the new worktree")
}
