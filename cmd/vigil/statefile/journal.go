package statefile

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/vigil-alerts/vigil/silences"
)

// The silences journal keeps silence changes between two saves of the
// state file, so that adding one costs one appended line, not a rewrite
// of the whole state: each create, change or expiry is written as the
// silence's whole JSON on one line and fsync'd before it takes effect
// (AppendSilence); the next save of the state file holds every silence,
// after which the journal is emptied (ResetJournal). At start the state
// file is read, then the journal replayed over it (ReadJournal), the last
// line for an ID winning. Replaying a line the state file already holds
// (a crash between the save and the reset) changes nothing.

// JournalPath is the journal kept beside the state file at statePath.
func JournalPath(statePath string) string { return statePath + ".silences.jsonl" }

// AppendSilence writes s as one line at the end of the journal at path
// and syncs it (and the directory, when the file is new). A failed write
// is cut off again, so the line is wholly there or not at all; a line
// left torn by a crash is ended before the next one starts.
func AppendSilence(path string, s silences.Silence) (err error) {
	line, err := json.Marshal(s)
	if err != nil {
		return err
	}
	line = append(line, '\n')
	created := false
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND, 0)
	if errors.Is(err, os.ErrNotExist) {
		f, err = os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE, 0o600)
		created = true
	}
	if err != nil {
		return err
	}
	defer func() {
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}()
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return err
	}
	if size > 0 {
		var last [1]byte
		if _, err := f.ReadAt(last[:], size-1); err != nil {
			return err
		}
		if last[0] != '\n' {
			line = append([]byte{'\n'}, line...)
		}
	}
	if _, err = f.Write(line); err == nil {
		err = f.Sync()
	}
	if err != nil {
		f.Truncate(size) // best effort: ReadJournal skips a torn line anyway
		return err
	}
	if created {
		if d, err := os.Open(filepath.Dir(path)); err == nil {
			d.Sync()
			d.Close()
		}
	}
	return nil
}

// ResetJournal empties the journal once the state file holds what it
// said. A missing journal is not an error.
func ResetJournal(path string) error {
	err := os.Truncate(path, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// ReadJournal returns the silences of the journal at path in the order
// they were written; a missing file has none. A last line without its
// newline (a crash in the middle of an append) is left out and reported
// by torn. A line that does not decode elsewhere is left out and named in
// err, the others are still returned.
func ReadJournal(path string) (out []silences.Silence, torn bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	lines := bytes.Split(b, []byte{'\n'})
	if last := lines[len(lines)-1]; len(last) > 0 {
		torn = true
	}
	lines = lines[:len(lines)-1]
	var errs []error
	for i, l := range lines {
		if len(bytes.TrimSpace(l)) == 0 {
			continue
		}
		var s silences.Silence
		if err := json.Unmarshal(l, &s); err != nil {
			errs = append(errs, fmt.Errorf("%s:%d: %w", path, i+1, err))
			continue
		}
		out = append(out, s)
	}
	return out, torn, errors.Join(errs...)
}
