package ha

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-alerts/vigil/silences"
)

// Silences are shared unlike the alert and delivery state: an SRE's
// request lands on any replica (a Service spreads them), so any replica
// writes them, with no leadership guard; and every replica needs all of
// them, since the leader that mutes notifications may change at any time.
// Each silence is one key:
//
//	<prefix>silences/<id>   silences.Silence as JSON
//
// etcd is the source of truth: every replica's store is what etcd holds,
// loaded whole and then followed by a watch. A replica's own change
// (Store.Add or Expire, then Save) reaches its store at once and the
// others' through their watches.

// ErrSilenceOutdated: Save was refused because etcd holds a version of the
// silence updated later than the one saved (another replica changed it).
var ErrSilenceOutdated = errors.New("ha: a newer version of the silence is stored")

const (
	// silenceRetryMin and silenceRetryMax bound the wait before reloading
	// after a broken watch or a failed load: the first reload comes at
	// once (a compaction is routine), and each failure in a row doubles
	// the wait up to the maximum.
	silenceRetryMin = 100 * time.Millisecond
	silenceRetryMax = 5 * time.Second
	// silenceLoadTimeout bounds one load, so an unreachable etcd is
	// logged and retried rather than waited on in silence.
	silenceLoadTimeout = 5 * time.Second
)

// errResync ends a watch so that the store is reloaded: a Save or Delete
// failed, and what etcd holds is not known.
var errResync = errors.New("a write failed; reloading to match etcd")

// SilenceSync keeps a silences.Store in step with <prefix>silences/<id> in
// etcd. Run follows etcd into the store; Save and Delete write to etcd.
type SilenceSync struct {
	cli    *clientv3.Client
	prefix string // <prefix>silences/
	st     *silences.Store
	log    *slog.Logger

	// applyMu orders the watch's writes to the store with Save's repair
	// of a refused change, so neither overwrites a newer version.
	applyMu sync.Mutex
	synced  atomic.Bool
	resync  chan struct{} // a write failed: reload (capacity 1)
	runOnce sync.Once

	loads, failures, events, skipped, refused atomic.Uint64
}

// NewSilenceSync keeps st in step with the silences under prefix
// (Config.Prefix); nothing is read until Run. A nil log discards.
func NewSilenceSync(cli *clientv3.Client, prefix string, st *silences.Store, log *slog.Logger) *SilenceSync {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SilenceSync{
		cli:    cli,
		prefix: prefix + "silences/",
		st:     st,
		log:    log.With("component", "silences"),
		resync: make(chan struct{}, 1),
	}
}

// SilenceSyncStats counts what a SilenceSync did; each failure and skip
// is also logged.
type SilenceSyncStats struct {
	// Loads counts full loads into the store: the first, and one after
	// each interruption.
	Loads uint64
	// Failures counts broken watches (compaction, no etcd leader) and
	// failed loads.
	Failures uint64
	// Events counts the puts and deletes the watch applied.
	Events uint64
	// Skipped counts values that did not decode or that the store
	// refused; they are left out of the store.
	Skipped uint64
	// Refused counts Saves refused with ErrSilenceOutdated.
	Refused uint64
}

// Stats returns the counts so far.
func (s *SilenceSync) Stats() SilenceSyncStats {
	return SilenceSyncStats{Loads: s.loads.Load(), Failures: s.failures.Load(), Events: s.events.Load(),
		Skipped: s.skipped.Load(), Refused: s.refused.Load()}
}

// Synced reports whether the first load has finished: before it the store
// holds only what this replica made itself, and the daemon may refuse
// silence changes and say so.
func (s *SilenceSync) Synced() bool { return s.synced.Load() }

func (s *SilenceSync) key(id string) string { return s.prefix + url.PathEscape(id) }

// Run loads every silence under the prefix into the store (Replace), then
// watches the prefix from the revision of that load and applies each put
// (Put) and delete (Delete), until ctx ends; then it returns nil. A broken
// watch (compaction, no etcd leader) or a failed load is logged and
// counted, and the store reloaded after a bounded back-off; a value that
// does not decode, or that the store refuses, is logged, counted and left
// out of the store. While etcd cannot be reached, the store keeps what it
// had. Run may be called once.
func (s *SilenceSync) Run(ctx context.Context) error {
	first := false
	s.runOnce.Do(func() { first = true })
	if !first {
		return errors.New("ha: SilenceSync.Run called twice")
	}
	retry := time.Duration(0)
	for {
		select {
		case <-s.resync: // this load covers it
		default:
		}
		rev, err := s.load(ctx)
		if err == nil {
			started := time.Now()
			err = s.watch(ctx, rev)
			if time.Since(started) >= silenceRetryMax {
				retry = 0 // it worked for a while: this is a new failure
			}
		}
		if ctx.Err() != nil {
			return nil
		}
		if errors.Is(err, errResync) {
			s.log.Info("reloading silences", "err", err)
			continue
		}
		s.failures.Add(1)
		s.log.Warn("silence sync interrupted; reloading", "err", err, "retry_in", retry)
		if retry > 0 {
			t := time.NewTimer(retry)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil
			}
		}
		retry = min(max(retry*2, silenceRetryMin), silenceRetryMax)
	}
}

// load replaces the store's content with what etcd holds and returns the
// revision it was read at.
func (s *SilenceSync) load(ctx context.Context) (int64, error) {
	lctx, cancel := context.WithTimeout(ctx, silenceLoadTimeout)
	defer cancel()
	resp, err := s.cli.Get(lctx, s.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, fmt.Errorf("load silences: %w", err)
	}
	all := make([]silences.Silence, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		sil, err := s.decode(kv)
		if err != nil {
			s.skip(kv, err)
			continue
		}
		all = append(all, sil)
	}
	s.applyMu.Lock()
	err = s.st.Replace(all)
	s.applyMu.Unlock()
	if err != nil {
		return 0, fmt.Errorf("load silences: %w", err)
	}
	s.loads.Add(1)
	if s.synced.CompareAndSwap(false, true) {
		s.log.Info("silences loaded", "silences", len(all), "revision", resp.Header.Revision)
	}
	return resp.Header.Revision, nil
}

// watch applies the changes after rev until the watch breaks, a write
// asks for a reload (errResync) or ctx ends.
func (s *SilenceSync) watch(ctx context.Context, rev int64) error {
	// Without a leader the member may be cut off from the cluster and
	// its watch silent: end it, and reload once a leader is back.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := s.cli.Watch(wctx, s.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1))
	for {
		select {
		case <-s.resync:
			return errResync
		case resp, ok := <-wch:
			if !ok {
				return fmt.Errorf("watch silences after revision %d: closed", rev)
			}
			if err := resp.Err(); err != nil {
				return fmt.Errorf("watch silences after revision %d: %w", rev, err)
			}
			for _, ev := range resp.Events {
				s.apply(ev)
				rev = ev.Kv.ModRevision
			}
		}
	}
}

// apply makes one change from the watch to the store. A put that cannot
// be used removes the silence, as a load would leave it out.
func (s *SilenceSync) apply(ev *clientv3.Event) {
	id, err := url.PathUnescape(string(ev.Kv.Key[len(s.prefix):]))
	if err != nil {
		s.skip(ev.Kv, err)
		return
	}
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if ev.Type == mvccpb.DELETE {
		s.st.Delete(id)
		s.events.Add(1)
		return
	}
	sil, err := s.decode(ev.Kv)
	if err == nil {
		err = s.st.Put(sil)
	}
	if err != nil {
		s.st.Delete(id)
		s.skip(ev.Kv, err)
		return
	}
	s.events.Add(1)
}

// decode reads a stored silence and checks it as Store.Put does, so a load
// leaves out exactly what the watch would (Replace refuses a whole set
// with one bad silence in it). The ID must be the one in the key.
func (s *SilenceSync) decode(kv *mvccpb.KeyValue) (silences.Silence, error) {
	var sil silences.Silence
	if err := json.Unmarshal(kv.Value, &sil); err != nil {
		return silences.Silence{}, err
	}
	id, err := url.PathUnescape(string(kv.Key[len(s.prefix):]))
	if err != nil {
		return silences.Silence{}, err
	}
	if sil.ID != id {
		return silences.Silence{}, fmt.Errorf("id %q is not the key's %q", sil.ID, id)
	}
	if err := check(sil); err != nil {
		return silences.Silence{}, err
	}
	return sil, nil
}

// check is Store.Put's check, on a store of its own.
func check(sil silences.Silence) error { return silences.NewStore().Put(sil) }

func (s *SilenceSync) skip(kv *mvccpb.KeyValue, err error) {
	s.skipped.Add(1)
	s.log.Warn("silence skipped", "key", string(kv.Key), "revision", kv.ModRevision, "err", err)
}

// requestResync makes Run reload the store once etcd answers, after a
// write whose outcome is unknown: the store then holds what etcd holds,
// whether or not the write was applied.
func (s *SilenceSync) requestResync() {
	select {
	case s.resync <- struct{}{}:
	default:
	}
}

// Save writes sil (after Store.Add or Expire on any replica), within ctx.
// Any replica may save; there is no leadership guard.
//
// Conflicts: the version updated last wins. Save refuses to replace a
// stored version whose UpdatedAt is later than sil's (ErrSilenceOutdated),
// and puts the stored one back into this replica's store; an equal or
// earlier UpdatedAt, or a stored value that does not decode, is
// overwritten. The comparison and the write are one compare-and-swap on
// the key's revision, retried if another replica wrote in between. Saving
// exactly what is stored writes nothing.
//
// When Save fails otherwise (etcd unreachable, ctx done) the change may or
// may not be in etcd: Run reloads the store as soon as etcd answers, so it
// holds what etcd holds. Until then the change is only in this replica's
// store; the caller should report the failure.
func (s *SilenceSync) Save(ctx context.Context, sil silences.Silence) error {
	if err := check(sil); err != nil {
		return fmt.Errorf("save silence: %w", err)
	}
	val, err := json.Marshal(sil)
	if err != nil {
		return fmt.Errorf("save silence %q: %w", sil.ID, err)
	}
	key := s.key(sil.ID)
	if n := len(key) + len(val); n > maxValueBytes {
		return tooLarge(key, n)
	}
	// First try to create it; when it is there, the txn returns it.
	cond := clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
	for {
		resp, err := s.cli.Txn(ctx).If(cond).Then(clientv3.OpPut(key, string(val))).Else(clientv3.OpGet(key)).Commit()
		if err != nil {
			s.requestResync()
			return fmt.Errorf("save silence %q: %w", sil.ID, err)
		}
		if resp.Succeeded {
			return nil
		}
		kvs := resp.Responses[0].GetResponseRange().GetKvs()
		if len(kvs) == 0 { // deleted since
			cond = clientv3.Compare(clientv3.CreateRevision(key), "=", 0)
			continue
		}
		cur := kvs[0]
		if bytes.Equal(cur.Value, val) {
			return nil
		}
		if stored, err := s.decode(cur); err == nil && stored.UpdatedAt.After(sil.UpdatedAt) {
			s.refused.Add(1)
			s.repair(stored)
			return fmt.Errorf("save silence %q updated at %s: %w (updated at %s)", sil.ID,
				sil.UpdatedAt.Format(time.RFC3339Nano), ErrSilenceOutdated, stored.UpdatedAt.Format(time.RFC3339Nano))
		}
		cond = clientv3.Compare(clientv3.ModRevision(key), "=", cur.ModRevision)
	}
}

// repair puts the stored version of a silence whose save was refused into
// the store, unless the watch has already applied one as new or newer.
func (s *SilenceSync) repair(stored silences.Silence) {
	s.applyMu.Lock()
	defer s.applyMu.Unlock()
	if cur, ok := s.st.Get(stored.ID); ok && !cur.UpdatedAt.Before(stored.UpdatedAt) {
		return
	}
	if err := s.st.Put(stored); err != nil {
		s.log.Warn("cannot restore the stored silence", "id", stored.ID, "err", err)
	}
}

// Delete removes silences from etcd, within ctx: the leader's GC of long
// expired ones (Store.GC's IDs). Every replica's watch removes them from
// its store. Unknown IDs are not an error. When Delete fails, Run reloads
// the store once etcd answers, which brings back what was not deleted, so
// the next GC deletes it again.
func (s *SilenceSync) Delete(ctx context.Context, ids ...string) error {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	ids = slices.Compact(ids) // etcd refuses a txn that names a key twice
	for len(ids) > 0 {
		n := min(len(ids), maxTxnOps)
		ops := make([]clientv3.Op, n)
		for i, id := range ids[:n] {
			ops[i] = clientv3.OpDelete(s.key(id))
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			s.requestResync()
			return fmt.Errorf("delete silences: %w", err)
		}
		ids = ids[n:]
	}
	return nil
}
