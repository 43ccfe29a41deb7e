package statefile

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// Lock is the exclusive hold of one process on a state file.
type Lock struct{ f *os.File }

// ErrLocked: another process holds the state file's lock.
var ErrLocked = errors.New("in use by another process")

// Acquire takes an OS lock (flock) on path + ".lock" without waiting, so
// that two processes never restore and save the same state file: the
// second would overwrite the first's state with its own. The lock goes
// with the process, so a crash never leaves a stale one behind.
func Acquire(path string) (*Lock, error) {
	lp := path + ".lock"
	f, err := os.OpenFile(lp, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("state file lock %s: %w", lp, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("state file %s: %w (its lock %s is held; one Vigil per state file)", path, ErrLocked, lp)
		}
		return nil, fmt.Errorf("state file lock %s: %w", lp, err)
	}
	return &Lock{f: f}, nil
}

// Release gives the lock up. Safe on nil and twice.
func (l *Lock) Release() error {
	if l == nil || l.f == nil {
		return nil
	}
	err := l.f.Close() // closing the descriptor drops the flock
	l.f = nil
	return err
}
