// Package recording stores what collectors gathered, so rules can be
// replayed over it later (`vigil replay`, `vigil diff`, `vigil capture`).
//
// A recording is one file or a directory of files. Each file is a gzip
// stream of text lines (docs/recordings.md):
//
//	vigil-recording 1
//	S <id> <"metric"> <labels as a JSON object>
//	T <unix milliseconds>
//	<id> <value>
//
// An S line names a series once per file; a T line starts a collection;
// each value line is one sample of that collection. The text compresses to
// a few bytes per sample because ids and times repeat.
package recording

import (
	"bufio"
	"compress/gzip"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

const header = "vigil-recording 1"

// Ext is the file name extension of a recording file.
const Ext = ".vrec.gz"

// Writer encodes samples into one recording file.
type Writer struct {
	gz   *gzip.Writer
	bw   *bufio.Writer
	ids  map[uint64][]seriesID
	next int
	last int64 // unix ms of the open T line; math.MinInt64 before any
	buf  []byte
	n    int // samples written
}

type seriesID struct {
	metric string
	labels model.Labels
	id     int
}

// NewWriter starts a recording on w. Close flushes it; w is not closed.
func NewWriter(w io.Writer) (*Writer, error) {
	gz := gzip.NewWriter(w)
	bw := bufio.NewWriterSize(gz, 32<<10)
	if _, err := bw.WriteString(header + "\n"); err != nil {
		return nil, err
	}
	return &Writer{gz: gz, bw: bw, ids: map[uint64][]seriesID{}, last: math.MinInt64}, nil
}

// Samples returns how many samples were written.
func (w *Writer) Samples() int { return w.n }

func (w *Writer) id(metric string, ls model.Labels) (int, error) {
	h := ls.Hash() ^ hashString(metric)
	for _, s := range w.ids[h] {
		if s.metric == metric && equal(s.labels, ls) {
			return s.id, nil
		}
	}
	w.next++
	id := w.next
	w.ids[h] = append(w.ids[h], seriesID{metric, ls.Copy(), id})
	lj, err := json.Marshal(map[string]string(ls))
	if err != nil {
		return 0, err
	}
	if ls == nil {
		lj = []byte("{}")
	}
	w.buf = w.buf[:0]
	w.buf = append(w.buf, "S "...)
	w.buf = strconv.AppendInt(w.buf, int64(id), 10)
	w.buf = append(w.buf, ' ')
	w.buf = strconv.AppendQuote(w.buf, metric)
	w.buf = append(w.buf, ' ')
	w.buf = append(w.buf, lj...)
	w.buf = append(w.buf, '\n')
	_, err = w.bw.Write(w.buf)
	return id, err
}

// Write appends samples. Samples of one time share a T line; a sample
// older than the one before starts a new T line, so nothing is reordered.
func (w *Writer) Write(samples ...model.Sample) error {
	for _, s := range samples {
		id, err := w.id(s.Metric, s.Labels)
		if err != nil {
			return err
		}
		w.buf = w.buf[:0]
		if ms := s.Time.UnixMilli(); ms != w.last {
			w.last = ms
			w.buf = append(w.buf, "T "...)
			w.buf = strconv.AppendInt(w.buf, ms, 10)
			w.buf = append(w.buf, '\n')
		}
		w.buf = strconv.AppendInt(w.buf, int64(id), 10)
		w.buf = append(w.buf, ' ')
		w.buf = strconv.AppendFloat(w.buf, s.Value, 'g', -1, 64)
		w.buf = append(w.buf, '\n')
		if _, err := w.bw.Write(w.buf); err != nil {
			return err
		}
		w.n++
	}
	return nil
}

// Flush pushes what was written to the underlying writer, so a crash
// after it loses nothing written before.
func (w *Writer) Flush() error {
	if err := w.bw.Flush(); err != nil {
		return err
	}
	return w.gz.Flush()
}

// Close flushes and ends the gzip stream.
func (w *Writer) Close() error {
	if err := w.bw.Flush(); err != nil {
		return err
	}
	return w.gz.Close()
}

// MaxLine bounds a line of a recording: a longer one is an error, not an
// unbounded allocation.
const MaxLine = 1 << 20

// Read decodes one recording stream and calls fn for each sample in file
// order. A stream cut short (a crash while recording) ends the read with
// ErrTruncated after every complete sample before the cut was delivered.
func Read(r io.Reader, fn func(model.Sample) error) error {
	gz, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("not a recording (gzip): %w", err)
	}
	gz.Multistream(false)
	sc := bufio.NewScanner(gz)
	sc.Buffer(make([]byte, 64<<10), MaxLine)
	type series struct {
		metric string
		labels model.Labels
	}
	var (
		byID   []series // index id-1
		t      time.Time
		haveT  bool
		lineNo int
	)
	for sc.Scan() {
		lineNo++
		line := sc.Text()
		if lineNo == 1 {
			if line != header {
				return fmt.Errorf("line 1: want %q, found %.40q", header, line)
			}
			continue
		}
		bad := func(format string, args ...any) error {
			return fmt.Errorf("line %d: %s", lineNo, fmt.Sprintf(format, args...))
		}
		switch {
		case strings.HasPrefix(line, "S "):
			rest := line[2:]
			sp := strings.IndexByte(rest, ' ')
			if sp < 0 {
				return bad("series line: want S <id> <\"metric\"> <labels>")
			}
			id, err := strconv.Atoi(rest[:sp])
			if err != nil || id != len(byID)+1 {
				return bad("series id %q: want %d", rest[:sp], len(byID)+1)
			}
			rest = rest[sp+1:]
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				return bad("series %d: metric name: %v", id, err)
			}
			metric, _ := strconv.Unquote(q)
			if metric == "" {
				return bad("series %d: empty metric name", id)
			}
			rest = strings.TrimPrefix(rest[len(q):], " ")
			var ls map[string]string
			if err := json.Unmarshal([]byte(rest), &ls); err != nil {
				return bad("series %d: labels: %v", id, err)
			}
			if len(ls) == 0 {
				ls = nil
			}
			byID = append(byID, series{metric, ls})
		case strings.HasPrefix(line, "T "):
			ms, err := strconv.ParseInt(line[2:], 10, 64)
			if err != nil {
				return bad("time: %v", err)
			}
			t, haveT = time.UnixMilli(ms).UTC(), true
		default:
			sp := strings.IndexByte(line, ' ')
			if sp < 0 {
				return bad("want <id> <value>, S or T line")
			}
			id, err := strconv.Atoi(line[:sp])
			if err != nil || id < 1 || id > len(byID) {
				return bad("unknown series id %q", line[:sp])
			}
			v, err := strconv.ParseFloat(line[sp+1:], 64)
			if err != nil {
				return bad("value: %v", err)
			}
			if !haveT {
				return bad("sample before any T line")
			}
			s := byID[id-1]
			if err := fn(model.Sample{Metric: s.metric, Labels: s.labels, Value: v, Time: t}); err != nil {
				return err
			}
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("%w after line %d", ErrTruncated, lineNo)
		}
		return fmt.Errorf("line %d: %w", lineNo+1, err)
	}
	if lineNo == 0 {
		return fmt.Errorf("empty recording: no header")
	}
	return nil
}

// ErrTruncated says a recording ends mid-stream, as a file being written
// when the process died does. What came before the cut is good.
var ErrTruncated = errors.New("recording cut short")

// Files lists the recording files at path: the file itself, or the
// directory's files ending in Ext, oldest first (their names sort by time).
func Files(path string) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	ents, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range ents {
		if !e.IsDir() && strings.HasSuffix(e.Name(), Ext) {
			files = append(files, filepath.Join(path, e.Name()))
		}
	}
	sort.Strings(files)
	if len(files) == 0 {
		return nil, fmt.Errorf("%s: no recording files (*%s)", path, Ext)
	}
	return files, nil
}

// Load reads a recording file or directory into memory, sorted by time.
// A truncated last file is kept up to its cut and reported in warnings.
func Load(path string) (samples []model.Sample, warnings []string, err error) {
	files, err := Files(path)
	if err != nil {
		return nil, nil, err
	}
	for _, f := range files {
		fh, err := os.Open(f)
		if err != nil {
			return nil, warnings, err
		}
		err = Read(fh, func(s model.Sample) error {
			samples = append(samples, s)
			return nil
		})
		fh.Close()
		if errors.Is(err, ErrTruncated) {
			warnings = append(warnings, fmt.Sprintf("%s: %v; using what came before", f, err))
			continue
		}
		if err != nil {
			return nil, warnings, fmt.Errorf("%s: %w", f, err)
		}
	}
	slices.SortStableFunc(samples, func(a, b model.Sample) int { return a.Time.Compare(b.Time) })
	return samples, warnings, nil
}

func equal(a, b model.Labels) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func hashString(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}
