// Package statefile keeps the engine's alert states in a local file, so a
// restart neither pages again nor resets a pending `for`. Writes are
// atomic (temporary file, fsync, rename, fsync of the directory): a crash
// leaves the old file or the new one, never half of one. A file whose
// content is unusable is moved aside and reported, never fatal; a file
// that cannot be read at all is left alone and reported (ReadError).
// Acquire locks a state file for one process.
package statefile

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/notifiers"
	"github.com/vigil-alerts/vigil/silences"
)

// Version of the file layout; a file of another version is set aside.
const Version = 1

// State is what one save holds: the engine's alerts, what each channel
// was already told about them, and the silences, so a restart neither
// resets a pending `for` nor pages again for an alert already delivered.
type State struct {
	Version    int                        `json:"version"`
	SavedAt    time.Time                  `json:"saved_at"`
	Alerts     []engine.AlertRecord       `json:"alerts"`
	Deliveries []notifiers.DeliveryRecord `json:"deliveries,omitempty"`
	// Silences are kept until long after they expire, so a restart
	// neither ends a maintenance window early nor forgets its history.
	Silences []silences.Silence `json:"silences,omitempty"`
}

// CorruptError says the file could not be used and where it was moved.
type CorruptError struct {
	Path, MovedTo string
	Err           error
}

func (e *CorruptError) Error() string {
	if e.MovedTo == "" {
		return fmt.Sprintf("state file %s is unusable (%v) and could not be moved aside", e.Path, e.Err)
	}
	return fmt.Sprintf("state file %s is unusable (%v); moved to %s, starting without saved alerts", e.Path, e.Err, e.MovedTo)
}

func (e *CorruptError) Unwrap() error { return e.Err }

// ReadError says the file exists but could not be read (permissions, a
// directory in its place, an I/O error). Unlike a corrupt file it is left
// where it is, untouched: what it holds may be good.
type ReadError struct {
	Path string
	Err  error
}

func (e *ReadError) Error() string {
	return fmt.Sprintf("cannot read state file %s: %v (left as it is; fix it or move it away)", e.Path, e.Err)
}

func (e *ReadError) Unwrap() error { return e.Err }

// Save writes st to path atomically.
func Save(path string, st State) error {
	st.Version = Version
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync() // the rename itself survives a power cut
		d.Close()
	}
	return nil
}

// Load reads path. A missing file is an empty state. A file that cannot
// be read is reported as a *ReadError and left alone. A file that does
// not parse, or is of another version, is renamed to path.corrupt-TIME and
// reported as a *CorruptError alongside an empty state.
func Load(path string, now time.Time) (State, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return State{Version: Version}, nil
	}
	if err != nil {
		return State{Version: Version}, &ReadError{Path: path, Err: err}
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return State{Version: Version}, setAside(path, now, err)
	}
	if st.Version != Version {
		return State{Version: Version}, setAside(path, now, fmt.Errorf("version %d, want %d", st.Version, Version))
	}
	return st, nil
}

func setAside(path string, now time.Time, cause error) error {
	to := path + ".corrupt-" + now.UTC().Format("20060102T150405Z")
	if err := os.Rename(path, to); err != nil {
		to = ""
	}
	return &CorruptError{Path: path, MovedTo: to, Err: cause}
}
