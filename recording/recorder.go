package recording

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// Bounds limit what a Recorder keeps on disk.
type Bounds struct {
	// MaxSize is the most bytes all files may take together (default
	// 256 MiB); the oldest files are deleted to stay under it.
	MaxSize int64
	// MaxAge deletes files whose newest sample is older (default 7 days).
	MaxAge time.Duration
	// FileSpan starts a new file after this much time (default 1h), so
	// old data can be deleted a file at a time.
	FileSpan time.Duration
}

func (b Bounds) withDefaults() Bounds {
	if b.MaxSize <= 0 {
		b.MaxSize = 256 << 20
	}
	if b.MaxAge <= 0 {
		b.MaxAge = 7 * 24 * time.Hour
	}
	if b.FileSpan <= 0 {
		b.FileSpan = time.Hour
	}
	return b
}

// Recorder writes collections into a directory of recording files,
// starting a new file every FileSpan (or when one file would take more
// than a quarter of MaxSize) and deleting the oldest past the bounds.
type Recorder struct {
	dir string
	b   Bounds

	mu    sync.Mutex
	f     *os.File
	w     *Writer
	start time.Time // time of the open file's first sample
}

// NewRecorder records into dir, creating it.
func NewRecorder(dir string, b Bounds) (*Recorder, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, err
	}
	return &Recorder{dir: dir, b: b.withDefaults()}, nil
}

// Record appends one collection's samples and flushes them to disk, so a
// crash loses at most the collection being written.
func (r *Recorder) Record(samples []model.Sample) error {
	if len(samples) == 0 {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	now := samples[0].Time
	if r.w != nil && (now.Sub(r.start) >= r.b.FileSpan || r.size() > r.b.MaxSize/4) {
		if err := r.closeFile(); err != nil {
			return err
		}
	}
	if r.w == nil {
		if err := r.open(now); err != nil {
			return err
		}
	}
	if err := r.w.Write(samples...); err != nil {
		return err
	}
	if err := r.w.Flush(); err != nil {
		return err
	}
	return nil
}

func (r *Recorder) size() int64 {
	fi, err := r.f.Stat()
	if err != nil {
		return 0
	}
	return fi.Size()
}

func (r *Recorder) open(now time.Time) error {
	if err := r.prune(now); err != nil {
		return err
	}
	name := filepath.Join(r.dir, "vigil-"+now.UTC().Format("20060102T150405.000Z")+Ext)
	f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	w, err := NewWriter(f)
	if err != nil {
		f.Close()
		return err
	}
	r.f, r.w, r.start = f, w, now
	return nil
}

func (r *Recorder) closeFile() error {
	err := r.w.Close()
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	r.f, r.w = nil, nil
	return err
}

// prune deletes the oldest closed files until the rest fit MaxSize and
// MaxAge. A file's name is the time of its first sample; its newest sample
// is no later than the next file's name, so age is judged by that.
func (r *Recorder) prune(now time.Time) error {
	files, err := Files(r.dir)
	if err != nil {
		return nil // an empty directory has nothing to prune
	}
	sizes := make([]int64, len(files))
	var total int64
	for i, f := range files {
		if fi, err := os.Stat(f); err == nil {
			sizes[i] = fi.Size()
			total += fi.Size()
		}
	}
	// Room for the file about to open: a quarter of MaxSize.
	limit := r.b.MaxSize - r.b.MaxSize/4
	for i, f := range files {
		old := false
		if i+1 < len(files) {
			if next, ok := fileTime(files[i+1]); ok && now.Sub(next) > r.b.MaxAge {
				old = true
			}
		} else if t, ok := fileTime(f); ok && now.Sub(t) > r.b.MaxAge+r.b.FileSpan {
			old = true
		}
		if !old && total <= limit {
			break
		}
		if err := os.Remove(f); err != nil {
			return fmt.Errorf("recording: pruning %s: %w", f, err)
		}
		total -= sizes[i]
	}
	return nil
}

func fileTime(path string) (time.Time, bool) {
	base := filepath.Base(path)
	if len(base) < len("vigil-")+len(Ext) {
		return time.Time{}, false
	}
	t, err := time.Parse("20060102T150405.000Z", base[len("vigil-"):len(base)-len(Ext)])
	return t, err == nil
}

// Close ends the open file.
func (r *Recorder) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.w == nil {
		return nil
	}
	return r.closeFile()
}
