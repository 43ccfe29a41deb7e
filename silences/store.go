package silences

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

var (
	// ErrNotFound: no silence has that ID.
	ErrNotFound = errors.New("silence not found")
	// ErrExpired: an expired silence cannot be changed; create a new one.
	ErrExpired = errors.New("silence is expired")
)

// Store holds silences; safe for concurrent use. Time is always an
// argument: the Store never reads the clock.
//
// Mutes is the hot path (every firing alert, every evaluation): each
// silence is indexed under its first `=` matcher (name and value), so a
// lookup costs one map probe per distinct indexed label name plus a check
// of the few silences found there; only silences without any `=` matcher
// are checked one by one.
type Store struct {
	mu     sync.RWMutex
	byID   map[string]*entry
	index  map[string]map[string][]*entry // label name -> value -> silences indexed there
	scan   []*entry                       // silences with no `=` matcher
	limits Limits

	version atomic.Uint64
	latest  atomic.Int64 // the latest now seen (UnixNano), for List

	// notifyMu is taken before mu is released by Add, Expire and GC, so
	// subscribers see changes in the order they were made, without
	// holding mu (a subscriber may read the store).
	notifyMu sync.Mutex
	subs     []func(Silence, bool)
}

type entry struct {
	s       Silence
	name    string // index position; "" means scan
	value   string
	indexed bool
}

// NewStore returns an empty store.
func NewStore() *Store {
	return &Store{byID: map[string]*entry{}, index: map[string]map[string][]*entry{}}
}

// Add creates a silence, or changes one that is not expired (s.ID names
// it). It validates s; a zero StartsAt means now (or, for a change, the
// StartsAt it had), and a StartsAt before now is moved to now (a silence
// cannot have muted anything before it existed), unless it is the StartsAt
// of the silence being changed. An EndsAt not after now is refused, and so
// is a silence beyond the store's Limits. An empty ID is replaced by a
// random one (16 hex digits). UpdatedAt is set to now. Subscribers are
// told.
func (st *Store) Add(s Silence, now time.Time) (Silence, error) {
	st.observe(now)
	st.mu.Lock()
	s, err := st.prepare(s, now)
	if err != nil {
		st.mu.Unlock()
		return Silence{}, err
	}
	st.set(s)
	out := s.clone()
	st.publish(func() { st.notify(out.clone(), false) })
	return out, nil
}

// Prepare returns s as Add would store it now (checked, limits applied,
// ID and times set) without storing it: a caller writes it ahead to a
// journal, then hands the result to Add, which stores it unchanged. The
// caller must keep other Adds out in between, or a limit may be passed.
func (st *Store) Prepare(s Silence, now time.Time) (Silence, error) {
	st.observe(now)
	st.mu.RLock()
	defer st.mu.RUnlock()
	s, err := st.prepare(s, now)
	if err != nil {
		return Silence{}, err
	}
	return s.clone(), nil
}

// prepare is Add without storing; mu is held (read or write).
func (st *Store) prepare(s Silence, now time.Time) (Silence, error) {
	s = s.compiledClone()
	var old *entry
	if s.ID != "" {
		old = st.byID[s.ID]
	}
	if old != nil && old.s.State(now) == StateExpired {
		return Silence{}, fmt.Errorf("silence %q: %w", s.ID, ErrExpired)
	}
	switch {
	case s.StartsAt.IsZero() && old != nil:
		s.StartsAt = old.s.StartsAt
	case s.StartsAt.IsZero():
		s.StartsAt = now
	case s.StartsAt.Before(now) && (old == nil || !s.StartsAt.Equal(old.s.StartsAt)):
		s.StartsAt = now
	}
	err := s.Validate()
	if !s.EndsAt.IsZero() && !s.EndsAt.After(now) {
		err = errors.Join(err, fmt.Errorf("ends_at: %s is not after now (%s)",
			s.EndsAt.Format(time.RFC3339), now.Format(time.RFC3339)))
	}
	if err != nil {
		return Silence{}, err
	}
	if s.ID == "" {
		for s.ID == "" || st.byID[s.ID] != nil {
			s.ID = newID()
		}
	}
	s.UpdatedAt = now
	if err := st.checkLimits(s, old == nil, now); err != nil {
		return Silence{}, err
	}
	return s, nil
}

// Expire ends a silence at now (a pending one also starts at now, so it
// never mutes). Expiring an expired silence changes nothing and returns it.
func (st *Store) Expire(id string, now time.Time) (Silence, error) {
	st.observe(now)
	st.mu.Lock()
	out, changed, err := st.prepareExpire(id, now)
	if err != nil || !changed {
		st.mu.Unlock()
		return out, err
	}
	e := st.byID[id]
	e.s.StartsAt, e.s.EndsAt, e.s.UpdatedAt = out.StartsAt, out.EndsAt, out.UpdatedAt
	st.version.Add(1)
	st.publish(func() { st.notify(out.clone(), false) })
	return out.clone(), nil
}

// PrepareExpire returns the silence as Expire would leave it now, and
// whether Expire would change it, without changing it (see Prepare).
func (st *Store) PrepareExpire(id string, now time.Time) (Silence, bool, error) {
	st.observe(now)
	st.mu.RLock()
	defer st.mu.RUnlock()
	return st.prepareExpire(id, now)
}

func (st *Store) prepareExpire(id string, now time.Time) (Silence, bool, error) {
	e := st.byID[id]
	if e == nil {
		return Silence{}, false, fmt.Errorf("silence %q: %w", id, ErrNotFound)
	}
	s := e.s.clone()
	if s.State(now) == StateExpired {
		return s, false, nil
	}
	if now.Before(s.StartsAt) {
		s.StartsAt = now
	}
	s.EndsAt, s.UpdatedAt = now, now
	return s, true, nil
}

// Get returns the silence with that ID.
func (st *Store) Get(id string) (Silence, bool) {
	st.mu.RLock()
	defer st.mu.RUnlock()
	e := st.byID[id]
	if e == nil {
		return Silence{}, false
	}
	return e.s.clone(), true
}

// List is ListAt at the latest time the store was given (by Add, Expire,
// Mutes or GC; Mutes runs at every evaluation), since the store has no
// clock of its own.
func (st *Store) List() []Silence {
	return st.ListAt(time.Unix(0, st.latest.Load()))
}

// ListAt returns every silence: active and pending ones first, soonest
// EndsAt first, then expired ones, most recently ended first; ties by ID.
func (st *Store) ListAt(now time.Time) []Silence {
	st.mu.RLock()
	out := make([]Silence, 0, len(st.byID))
	for _, e := range st.byID {
		out = append(out, e.s.clone())
	}
	st.mu.RUnlock()
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		ea, eb := !now.Before(a.EndsAt), !now.Before(b.EndsAt)
		switch {
		case ea != eb:
			return eb
		case !a.EndsAt.Equal(b.EndsAt):
			return a.EndsAt.Before(b.EndsAt) != ea
		}
		return a.ID < b.ID
	})
	return out
}

// Mutes returns the IDs, sorted, of the silences active at now that match
// ls; nil when none do.
func (st *Store) Mutes(ls model.Labels, now time.Time) []string {
	st.observe(now)
	st.mu.RLock()
	defer st.mu.RUnlock()
	var ids []string
	for name, byValue := range st.index {
		for _, e := range byValue[ls[name]] {
			if e.s.active(now) && e.s.Matches(ls) {
				ids = append(ids, e.s.ID)
			}
		}
	}
	for _, e := range st.scan {
		if e.s.active(now) && e.s.Matches(ls) {
			ids = append(ids, e.s.ID)
		}
	}
	if len(ids) > 1 {
		slices.Sort(ids)
	}
	return ids
}

// Put inserts s, or overwrites the silence with its ID, exactly as given
// (no clock, no defaults): for restoring saved silences and applying
// replicated ones. s must have an ID and be valid.
func (st *Store) Put(s Silence) error {
	if err := checkStored(s); err != nil {
		return err
	}
	s = s.compiledClone()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.set(s)
	return nil
}

// Delete removes a silence (a replicated deletion); an unknown ID is not
// an error.
func (st *Store) Delete(id string) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if e := st.byID[id]; e != nil {
		st.remove(e)
		st.version.Add(1)
	}
}

// Replace makes all the store's whole content (a restore at start). Every
// silence is checked first; on an error nothing changes.
func (st *Store) Replace(all []Silence) error {
	var errs []error
	seen := make(map[string]bool, len(all))
	for i, s := range all {
		if err := checkStored(s); err != nil {
			errs = append(errs, fmt.Errorf("silences[%d]: %w", i, err))
			continue
		}
		if seen[s.ID] {
			errs = append(errs, fmt.Errorf("silences[%d]: id %q appears twice", i, s.ID))
		}
		seen[s.ID] = true
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	st.byID = make(map[string]*entry, len(all))
	st.index = map[string]map[string][]*entry{}
	st.scan = nil
	for _, s := range all {
		st.insert(s.compiledClone())
	}
	st.version.Add(1)
	return nil
}

// GC drops the silences that expired more than retention before now and
// returns their IDs, sorted. Subscribers are told of each (deleted true),
// so a shared copy can drop them too.
func (st *Store) GC(now time.Time, retention time.Duration) []string {
	st.observe(now)
	st.mu.Lock()
	var dropped []Silence
	for _, e := range st.byID {
		if !now.Before(e.s.EndsAt) && now.Sub(e.s.EndsAt) > retention {
			dropped = append(dropped, e.s)
			st.remove(e)
		}
	}
	if len(dropped) == 0 {
		st.mu.Unlock()
		return nil
	}
	st.version.Add(1)
	sort.Slice(dropped, func(i, j int) bool { return dropped[i].ID < dropped[j].ID })
	ids := make([]string, len(dropped))
	for i, s := range dropped {
		ids[i] = s.ID
	}
	st.publish(func() {
		for _, s := range dropped {
			st.notify(s.clone(), true)
		}
	})
	return ids
}

// Version changes with every change to the store's content, so a saver
// knows when there is something new to write.
func (st *Store) Version() uint64 { return st.version.Load() }

// Subscribe registers f, called after every Add and every Expire that
// changed something (deleted false) and for every silence GC drops
// (deleted true), in the order of the changes, so that the daemon can
// write local changes through to a shared store. Put, Replace and Delete
// apply changes that came from there and are not reported. f runs on the
// caller's goroutine, after the store's lock is released: it may read the
// store, but must not call Add, Expire or GC.
func (st *Store) Subscribe(f func(s Silence, deleted bool)) {
	st.notifyMu.Lock()
	defer st.notifyMu.Unlock()
	st.subs = append(st.subs, f)
}

// publish releases mu (held by the caller) and runs f under notifyMu,
// taken first, so notifications keep the order of the changes.
func (st *Store) publish(f func()) {
	st.notifyMu.Lock()
	st.mu.Unlock()
	defer st.notifyMu.Unlock()
	f()
}

func (st *Store) notify(s Silence, deleted bool) {
	for _, f := range st.subs {
		f(s.clone(), deleted)
	}
}

// set inserts or overwrites s; mu is held.
func (st *Store) set(s Silence) {
	if e := st.byID[s.ID]; e != nil {
		st.remove(e)
	}
	st.insert(s)
	st.version.Add(1)
}

// insert indexes s under its first `=` matcher with a value, else its
// first `=` matcher (an absent label's value is ""), else in scan.
func (st *Store) insert(s Silence) {
	e := &entry{s: s}
	pick := -1
	for i, m := range s.Matchers {
		if m.Op != OpEqual {
			continue
		}
		if pick < 0 || (s.Matchers[pick].Value == "" && m.Value != "") {
			pick = i
		}
	}
	st.byID[s.ID] = e
	if pick < 0 {
		st.scan = append(st.scan, e)
		return
	}
	e.name, e.value, e.indexed = s.Matchers[pick].Name, s.Matchers[pick].Value, true
	byValue := st.index[e.name]
	if byValue == nil {
		byValue = map[string][]*entry{}
		st.index[e.name] = byValue
	}
	byValue[e.value] = append(byValue[e.value], e)
}

// remove takes e out of byID and the index; mu is held.
func (st *Store) remove(e *entry) {
	delete(st.byID, e.s.ID)
	if !e.indexed {
		st.scan = deleteEntry(st.scan, e)
		return
	}
	byValue := st.index[e.name]
	if rest := deleteEntry(byValue[e.value], e); len(rest) > 0 {
		byValue[e.value] = rest
		return
	}
	delete(byValue, e.value)
	if len(byValue) == 0 {
		delete(st.index, e.name)
	}
}

func deleteEntry(s []*entry, e *entry) []*entry {
	return slices.DeleteFunc(s, func(x *entry) bool { return x == e })
}

// observe remembers now if it is the latest time seen.
func (st *Store) observe(now time.Time) {
	n := now.UnixNano()
	for {
		cur := st.latest.Load()
		if n <= cur || st.latest.CompareAndSwap(cur, n) {
			return
		}
	}
}

// checkStored is Validate plus an ID and a StartsAt: what Put and Replace
// require of a silence that was made by Add somewhere.
func checkStored(s Silence) error {
	err := s.validate(true)
	if s.StartsAt.IsZero() {
		err = errors.Join(errors.New("starts_at: required"), err)
	}
	if strings.TrimSpace(s.ID) == "" {
		err = errors.Join(errors.New("id: required"), err)
	}
	if err != nil && s.ID != "" {
		return fmt.Errorf("silence %q: %w", s.ID, err)
	}
	return err
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand since Go 1.24)
	return hex.EncodeToString(b[:])
}
