package prom

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrSampleLimit is a page with more samples than the target's
// sample_limit, Prometheus' "sample limit exceeded".
var ErrSampleLimit = errors.New("sample limit exceeded")

// suffixes are what a family's name gets on its sample lines.
var suffixes = []string{"_bucket", "_sum", "_count", "_total", "_created", "_gsum", "_gcount", "_info"}

// Selection is the sample names a page is read for. The zero value keeps
// every sample (as a `vigil record` would); NewSelection keeps only the
// named ones, and keeps whole families on the way so that a histogram's
// or summary's lines still parse as one.
type Selection struct {
	names    map[string]bool // nil: everything
	families map[string]bool // names, and names with a suffix cut off
}

// NewSelection keeps the samples named, and nothing else.
func NewSelection(names []string) *Selection {
	s := &Selection{names: map[string]bool{}, families: map[string]bool{}}
	for _, n := range names {
		s.names[n] = true
		s.families[n] = true
		for _, suf := range suffixes {
			if f, ok := strings.CutSuffix(n, suf); ok && f != "" {
				s.families[f] = true
			}
		}
	}
	return s
}

// All reports whether s keeps every sample.
func (s *Selection) All() bool { return s == nil || s.names == nil }

// Keeps reports whether a sample named name is kept.
func (s *Selection) Keeps(name string) bool { return s.All() || s.names[name] }

// Len is the number of names kept; -1 means every name.
func (s *Selection) Len() int {
	if s.All() {
		return -1
	}
	return len(s.names)
}

// keepsLine reports whether a line naming name (a sample's or a family's)
// belongs to a family that is kept. Lookups of string(b) do not allocate.
func (s *Selection) keepsLine(name []byte) bool {
	if s.families[string(name)] {
		return true
	}
	for _, suf := range suffixes {
		if bytes.HasSuffix(name, []byte(suf)) && s.families[string(name[:len(name)-len(suf)])] {
			return true
		}
	}
	return false
}

// filterReader passes through the lines of a text or OpenMetrics page
// that belong to kept families and drops the others, so a family no rule
// reads costs a scan for its line ends and one map lookup per line, not a
// parse. It counts the sample lines it passes and stops at limit.
type filterReader struct {
	br      *bufio.Reader
	sel     *Selection
	limit   int // 0: none
	samples int
	// exceeded is set when a sample line past limit was seen.
	exceeded bool
	pending  []byte // what is left of the current kept line
	// Within a line longer than the buffer: pass or drop its rest.
	inLong, keepLong bool
	err              error
	// The last name decided on: a family's lines come together, so most
	// lines repeat it and need no lookup.
	lastName []byte
	lastKeep bool
}

func newFilterReader(r io.Reader, sel *Selection, limit int) *filterReader {
	return &filterReader{br: bufio.NewReaderSize(r, 16<<10), sel: sel, limit: limit}
}

func (f *filterReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(f.pending) > 0 {
			c := copy(p[n:], f.pending)
			f.pending = f.pending[c:]
			n += c
			continue
		}
		if f.err != nil {
			if n > 0 {
				return n, nil
			}
			return 0, f.err
		}
		line, err := f.br.ReadSlice('\n')
		switch {
		case err == nil, errors.Is(err, bufio.ErrBufferFull):
		case errors.Is(err, io.EOF):
			f.err = io.EOF
		default:
			f.err = err
		}
		if len(line) == 0 {
			continue
		}
		var keep bool
		if f.inLong {
			keep = f.keepLong
		} else {
			keep = f.keepNew(line)
			if f.exceeded {
				f.err = fmt.Errorf("%w (limit %d)", ErrSampleLimit, f.limit)
				continue
			}
		}
		f.inLong = errors.Is(err, bufio.ErrBufferFull)
		f.keepLong = keep
		if keep {
			f.pending = line
		}
	}
	return n, nil
}

// keepNew decides on a line from its start.
func (f *filterReader) keepNew(line []byte) bool {
	l := bytes.TrimLeft(line, " \t")
	if len(l) == 0 || l[0] == '\n' || l[0] == '\r' {
		return false
	}
	if l[0] == '#' {
		// "# HELP name ...", "# TYPE name type", "# UNIT name unit"; any
		// other comment (OpenMetrics' "# EOF") is kept.
		rest := bytes.TrimLeft(l[1:], " \t")
		kw, rest, ok := bytes.Cut(rest, []byte(" "))
		if !ok || !(string(kw) == "HELP" || string(kw) == "TYPE" || string(kw) == "UNIT") {
			return true
		}
		return f.sel.All() || f.keepsName(bytes.TrimLeft(rest, " \t"))
	}
	keep := f.sel.All() || f.keepsName(l)
	if keep {
		f.samples++
		if f.limit > 0 && f.samples > f.limit {
			f.exceeded = true
		}
	}
	return keep
}

// keepsName decides on the name that s starts with. A quoted (UTF-8)
// name is kept: the parser and Samples decide on it.
func (f *filterReader) keepsName(s []byte) bool {
	if len(s) > 0 && (s[0] == '"' || s[0] == '{') {
		return true
	}
	end := 0
	for end < len(s) {
		c := s[end]
		if c == '{' || c == ' ' || c == '\t' || c == '\r' || c == '\n' {
			break
		}
		end++
	}
	name := s[:end]
	if f.lastName != nil && bytes.Equal(name, f.lastName) {
		return f.lastKeep
	}
	f.lastName = append(f.lastName[:0], name...)
	f.lastKeep = f.sel.keepsLine(name)
	return f.lastKeep
}

// Filter returns the lines of the text page r that belong to families
// sel keeps, for a parser that should see only those.
func Filter(r io.Reader, sel *Selection) io.Reader { return newFilterReader(r, sel, 0) }

// SetMetrics keeps only the named samples from the next scrape on; all
// keeps everything. Safe while scraping.
func (s *Scraper) SetMetrics(all bool, names []string) {
	if all {
		s.SetSelection(nil)
		return
	}
	s.SetSelection(NewSelection(names))
}
