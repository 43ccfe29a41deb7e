package watch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func isYAML(p string) bool { return strings.HasSuffix(p, ".yaml") }

// debounce is the tests' quiet time. It is generous on purpose: the
// tests decide by events (a call arrived, or none within two debounces),
// and a loaded CI machine may pause the test or the watcher for tens of
// milliseconds between two events of one change.
const debounce = 200 * time.Millisecond

func start(t *testing.T, o Options) <-chan string {
	t.Helper()
	ch := make(chan string, 64)
	if o.Debounce == 0 {
		o.Debounce = debounce
	}
	o.OnChange = func(r string) { ch <- r }
	w, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return ch
}

// expect waits for a debounced call, however loaded the machine.
func expect(t *testing.T, ch <-chan string, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: no change reported", what)
	}
}

// settle drains the calls still coming from the last step (one change can
// be several events, which a paused watcher may see more than a debounce
// apart) until none came for longer than a debounce, so that the next
// step's calls are its own.
func settle(ch <-chan string) {
	for {
		select {
		case <-ch:
		case <-time.After(debounce + 50*time.Millisecond):
			return
		}
	}
}

// expectNone fails on any call within two debounces.
func expectNone(t *testing.T, ch <-chan string, what string) {
	t.Helper()
	select {
	case r := <-ch:
		t.Fatalf("%s: unexpected change %q", what, r)
	case <-time.After(2 * debounce):
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
	settle(ch)

	// An editor's save: write a temporary file, rename it over the rule.
	write(t, filepath.Join(dir, ".a.yaml.swp"), "x")
	os.Rename(filepath.Join(dir, ".a.yaml.swp"), filepath.Join(dir, "a.yaml"))
	expect(t, ch, "rename over")
	settle(ch)

	// A new sub-directory (git checkout of a new folder) is watched too.
	sub := filepath.Join(dir, "team")
	os.Mkdir(sub, 0o755)
	expect(t, ch, "new directory")
	settle(ch)
	write(t, filepath.Join(sub, "b.yaml"), "1")
	expect(t, ch, "file in new directory")
	settle(ch)

	os.Chmod(filepath.Join(dir, "a.yaml"), 0o600)
	write(t, filepath.Join(dir, "notes.txt"), "x")
	expectNone(t, ch, "chmod and non-rule files")
}

// A burst of writes is one call. Five writes are a burst only if no two
// are a debounce apart, which a loaded machine does not promise (five
// writes were seen to take 130ms under CI load): the test measures the
// gaps and writes the burst again when one was too long, and uses a long
// debounce so that a paused watcher still sees the burst as one.
func TestBurstIsOneCall(t *testing.T) {
	const long = time.Second
	dir := t.TempDir()
	a := filepath.Join(dir, "a.yaml")
	write(t, a, "0")
	ch := start(t, Options{Dirs: []string{dir}, Match: isYAML, Debounce: long})
	for attempt := 1; ; attempt++ {
		var gap time.Duration
		last := time.Now()
		for i := range 5 {
			write(t, a, strings.Repeat("x", attempt*10+i))
			gap, last = max(gap, time.Since(last)), time.Now()
		}
		if gap < long/4 {
			break
		}
		if attempt == 10 {
			t.Fatalf("two writes %v apart, ten times: cannot make a burst", gap)
		}
		t.Logf("burst %d had writes %v apart: writing it again", attempt, gap)
		expect(t, ch, "a slow burst")
		for { // drain: a slow burst may be more than one call
			select {
			case <-ch:
				continue
			case <-time.After(long + 100*time.Millisecond):
			}
			break
		}
	}
	expect(t, ch, "burst")
	// A second call would come at most the burst's length after the first.
	select {
	case r := <-ch:
		t.Fatalf("after burst: unexpected change %q", r)
	case <-time.After(long):
	}
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
	settle(ch) // the swap is several events

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
	settle(ch) // the old worktree's removal may or may not be reported
	write(t, filepath.Join(wt2, "rules", "etcd.yaml"), "3")
	expect(t, ch, "edit in the new worktree")
}
