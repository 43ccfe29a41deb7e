// Package watch tells Vigil when its rule files or its config may have
// changed. It watches directories, not files, because rules rarely arrive
// by an in-place write: editors save by rename, `git checkout` replaces
// files, and a Kubernetes ConfigMap mount swaps a `..data` symlink to a
// new hidden directory. Bursts of events are debounced into one call, pure
// chmod events are ignored, and a slow periodic re-check covers file
// systems that lose events (NFS, some overlay mounts). The callback only
// says "look again": the caller loads everything and decides whether
// anything changed.
package watch

import (
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// Options configure a Watcher.
type Options struct {
	// Dirs are watched recursively (hidden sub-directories skipped, as the
	// rule loader skips them). A file given here is watched through its
	// directory, like Files.
	Dirs []string
	// Files are watched through their directory: events for the file's
	// name, or for a `..`-prefixed entry beside it (ConfigMap), count.
	Files []string
	// Match says whether an event for a file under Dirs counts (default:
	// every file). Directories and `..` entries always count.
	Match func(path string) bool
	// Debounce is the quiet time after the last event before OnChange.
	Debounce time.Duration
	// Recheck calls OnChange this often even without events; 0 disables.
	Recheck time.Duration
	// OnChange is called from the watcher's goroutine, never concurrently.
	OnChange func(reason string)
	Logger   *slog.Logger
}

// Watcher runs one goroutine; Close stops it and waits.
type Watcher struct {
	o     Options
	fs    *fsnotify.Watcher
	files map[string]bool // clean paths of Options.Files
	roots map[string]bool // directories watched for Files only
	done  chan struct{}
	wg    sync.WaitGroup
	once  sync.Once
}

// New starts watching.
func New(o Options) (*Watcher, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Match == nil {
		o.Match = func(string) bool { return true }
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	w := &Watcher{o: o, fs: fw, files: map[string]bool{}, roots: map[string]bool{}, done: make(chan struct{})}
	var errs []error
	for _, d := range o.Dirs {
		if st, err := os.Stat(d); err == nil && !st.IsDir() {
			w.files[filepath.Clean(d)] = true
			errs = append(errs, w.add(filepath.Dir(d)))
			continue
		}
		errs = append(errs, w.addTree(d))
		// A rule directory reached through a symlink that is swapped as a
		// whole (git-sync's `current` link to a new worktree): watch the
		// link's directory for the swap, and re-walk the trees after it.
		for p := filepath.Clean(d); p != filepath.Dir(p); p = filepath.Dir(p) {
			if st, err := os.Lstat(p); err == nil && st.Mode()&os.ModeSymlink != 0 {
				w.files[p] = true
				w.roots[filepath.Dir(p)] = true
				errs = append(errs, w.add(filepath.Dir(p)))
			}
		}
	}
	for _, f := range o.Files {
		w.files[filepath.Clean(f)] = true
		dir := filepath.Dir(f)
		w.roots[filepath.Clean(dir)] = true
		errs = append(errs, w.add(dir))
	}
	if err := errors.Join(errs...); err != nil {
		fw.Close()
		return nil, err
	}
	w.wg.Add(1)
	go w.loop()
	return w, nil
}

func (w *Watcher) add(dir string) error {
	if err := w.fs.Add(dir); err != nil {
		return &fs.PathError{Op: "watch", Path: dir, Err: err}
	}
	return nil
}

// addTree watches dir and every non-hidden directory below it.
func (w *Watcher) addTree(dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == dir {
				return err
			}
			return nil // vanished while walking: its parent's event covers it
		}
		if !d.IsDir() {
			return nil
		}
		if p != dir && strings.HasPrefix(d.Name(), ".") {
			return filepath.SkipDir
		}
		return w.add(p)
	})
}

// Close stops the watcher, drains pending events and waits for the
// goroutine. Safe to call more than once.
func (w *Watcher) Close() error {
	var err error
	w.once.Do(func() {
		close(w.done)
		err = w.fs.Close() // closes Events and Errors: the loop drains them
		w.wg.Wait()
	})
	return err
}

func (w *Watcher) loop() {
	defer w.wg.Done()
	var debounce <-chan time.Time
	var timer *time.Timer
	var recheck <-chan time.Time
	if w.o.Recheck > 0 {
		t := time.NewTicker(w.o.Recheck)
		defer t.Stop()
		recheck = t.C
	}
	pending := ""
	for {
		select {
		case <-w.done:
			if timer != nil {
				timer.Stop()
			}
			for range w.fs.Events { // drain until fsnotify closes the channel
			}
			return
		case ev, ok := <-w.fs.Events:
			if !ok {
				continue // closing: w.done follows
			}
			if !w.relevant(ev) {
				continue
			}
			if ev.Has(fsnotify.Create) {
				if st, err := os.Stat(ev.Name); err == nil && st.IsDir() && !strings.HasPrefix(filepath.Base(ev.Name), ".") && !w.roots[filepath.Dir(ev.Name)] {
					if err := w.addTree(ev.Name); err != nil {
						w.o.Logger.Warn("cannot watch new directory", "dir", ev.Name, "err", err)
					}
				}
			}
			pending = ev.Name
			if timer == nil {
				timer = time.NewTimer(w.o.Debounce)
			} else {
				timer.Reset(w.o.Debounce)
			}
			debounce = timer.C
		case err, ok := <-w.fs.Errors:
			if ok {
				w.o.Logger.Warn("file watch error", "err", err)
			}
		case <-debounce:
			debounce = nil
			w.rewalk()
			w.o.Logger.Debug("files changed", "last", pending)
			w.o.OnChange("file change: " + pending)
		case <-recheck:
			w.o.OnChange("periodic re-check")
		}
	}
}

// rewalk watches directories that appeared without an event of their own
// (the new target of a swapped symlink). Adding a watched path again is a
// no-op.
func (w *Watcher) rewalk() {
	for _, d := range w.o.Dirs {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			if err := w.addTree(d); err != nil {
				w.o.Logger.Warn("cannot watch rule directory", "dir", d, "err", err)
			}
		}
	}
}

// relevant filters events: chmod alone never counts; in a directory
// watched for files, only those files and `..` entries count.
func (w *Watcher) relevant(ev fsnotify.Event) bool {
	if ev.Op == fsnotify.Chmod || ev.Op == 0 {
		return false
	}
	name := filepath.Clean(ev.Name)
	base := filepath.Base(name)
	if w.files[name] || strings.HasPrefix(base, "..") {
		return true
	}
	if w.roots[filepath.Dir(name)] {
		return false
	}
	if st, err := os.Stat(name); err == nil && st.IsDir() {
		return !strings.HasPrefix(base, ".")
	}
	// A removed directory cannot be stat'ed: let a removal through unless
	// it is plainly some other file.
	if ev.Has(fsnotify.Remove) || ev.Has(fsnotify.Rename) {
		if filepath.Ext(base) == "" {
			return true
		}
	}
	return w.o.Match(name)
}
