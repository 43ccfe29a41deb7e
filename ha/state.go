package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/notifiers"
)

// ErrNotLeader: etcd refused a write because the election key of the term
// is gone, i.e. this replica was deposed.
var ErrNotLeader = errors.New("ha: not the leader any more; write refused")

// maxTxnOps stays under etcd's default --max-txn-ops (128).
const maxTxnOps = 120

// State is the shared alert and delivery state under a prefix:
//
//	<prefix>alerts/<rule>/<fingerprint>       engine.AlertRecord as JSON
//	<prefix>deliveries/<channel>/<group>      notifiers.DeliveryRecord as JSON
//
// It remembers a hash of what it last wrote or loaded per key and writes
// only records whose state changed, so the write volume follows state
// changes (an alert fires, resolves, a message is sent), not evaluations.
type State struct {
	cli    *clientv3.Client
	prefix string

	mu      sync.Mutex
	written map[string]uint64 // key -> hash of its last known content

	puts, deletes, txns atomic.Uint64
}

// NewState keeps state under prefix (Config.Prefix).
func NewState(cli *clientv3.Client, prefix string) *State {
	return &State{cli: cli, prefix: prefix, written: map[string]uint64{}}
}

// WriteStats counts what this State sent to etcd.
type WriteStats struct {
	Puts, Deletes, Txns uint64
}

// Stats returns the writes so far.
func (s *State) Stats() WriteStats {
	return WriteStats{Puts: s.puts.Load(), Deletes: s.deletes.Load(), Txns: s.txns.Load()}
}

func (s *State) alertsPrefix() string     { return s.prefix + "alerts/" }
func (s *State) deliveriesPrefix() string { return s.prefix + "deliveries/" }

func (s *State) alertKey(r engine.AlertRecord) string {
	return s.alertsPrefix() + url.PathEscape(r.Rule) + "/" + url.PathEscape(r.Fingerprint)
}

func (s *State) deliveryKey(r notifiers.DeliveryRecord) string {
	return s.deliveriesPrefix() + url.PathEscape(r.Channel) + "/" + url.PathEscape(r.Group)
}

// Load reads the whole shared state (one linearizable read per kind) and
// takes it as what is written, so the next saves send only differences.
// A record that does not decode is skipped and reported in err, with the
// rest returned.
func (s *State) Load(ctx context.Context) ([]engine.AlertRecord, []notifiers.DeliveryRecord, error) {
	var errs []error
	written := map[string]uint64{}
	var alerts []engine.AlertRecord
	resp, err := s.cli.Get(ctx, s.alertsPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, nil, fmt.Errorf("load alert states: %w", err)
	}
	for _, kv := range resp.Kvs {
		var r engine.AlertRecord
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", kv.Key, err))
			continue
		}
		alerts = append(alerts, r)
		written[string(kv.Key)] = alertHash(r)
	}
	var deliveries []notifiers.DeliveryRecord
	resp, err = s.cli.Get(ctx, s.deliveriesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, nil, fmt.Errorf("load delivery records: %w", err)
	}
	for _, kv := range resp.Kvs {
		var r notifiers.DeliveryRecord
		if err := json.Unmarshal(kv.Value, &r); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", kv.Key, err))
			continue
		}
		deliveries = append(deliveries, r)
		written[string(kv.Key)] = deliveryHash(r)
	}
	s.mu.Lock()
	s.written = written
	s.mu.Unlock()
	return alerts, deliveries, errors.Join(errs...)
}

// SaveAlerts writes the alert records that changed since the last save or
// load and deletes those that are gone, under t's guard.
func (s *State) SaveAlerts(ctx context.Context, t *Term, recs []engine.AlertRecord) error {
	cur := make(map[string]entry, len(recs))
	for _, r := range recs {
		cur[s.alertKey(r)] = entry{hash: alertHash(r), v: r}
	}
	return s.save(ctx, t, s.alertsPrefix(), cur)
}

// SaveDeliveries is SaveAlerts for the dispatcher's delivery records.
func (s *State) SaveDeliveries(ctx context.Context, t *Term, recs []notifiers.DeliveryRecord) error {
	cur := make(map[string]entry, len(recs))
	for _, r := range recs {
		cur[s.deliveryKey(r)] = entry{hash: deliveryHash(r), v: r}
	}
	return s.save(ctx, t, s.deliveriesPrefix(), cur)
}

type entry struct {
	hash uint64
	v    any
}

func (s *State) save(ctx context.Context, t *Term, under string, cur map[string]entry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var ops []clientv3.Op
	next := map[string]uint64{} // applied to written once a batch commits
	keys := make([]string, 0, len(cur))
	for k := range cur {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		e := cur[k]
		if h, ok := s.written[k]; ok && h == e.hash {
			continue
		}
		b, err := json.Marshal(e.v)
		if err != nil {
			return fmt.Errorf("%s: %w", k, err)
		}
		ops = append(ops, clientv3.OpPut(k, string(b)))
		next[k] = e.hash
	}
	for k := range s.written {
		if _, ok := cur[k]; !ok && strings.HasPrefix(k, under) {
			ops = append(ops, clientv3.OpDelete(k))
		}
	}
	// Batches are guarded one by one; each record stands alone, so a
	// leader deposed between two batches leaves a consistent state.
	for len(ops) > 0 {
		n := min(len(ops), maxTxnOps)
		batch := ops[:n]
		ops = ops[n:]
		resp, err := s.cli.Txn(ctx).If(t.Guard()).Then(batch...).Commit()
		if err != nil {
			return fmt.Errorf("save state: %w", err)
		}
		s.txns.Add(1)
		if !resp.Succeeded {
			// The key is gone or another's: end the term, so this replica
			// stops acting and campaigns again.
			t.cancel(ErrNotLeader)
			return ErrNotLeader
		}
		for _, op := range batch {
			k := string(op.KeyBytes())
			if op.IsDelete() {
				delete(s.written, k)
				s.deletes.Add(1)
			} else {
				s.written[k] = next[k]
				s.puts.Add(1)
			}
		}
	}
	return nil
}

// alertHash covers what a successor needs to continue an alert: its
// identity and state transitions. The value, annotations and the last
// time the condition held change at every evaluation of a firing alert;
// they are written with the next state change and recomputed by the
// successor's first evaluation.
func alertHash(r engine.AlertRecord) uint64 {
	h := fnv.New64a()
	w := func(s string) { h.Write([]byte(s)); h.Write([]byte{0xff}) }
	w(r.Rule)
	w(strconv.FormatUint(r.StateKey, 16))
	w(r.Fingerprint)
	w(r.State)
	w(timeKey(r.ActiveAt))
	w(timeKey(r.FiredAt))
	w(timeKey(r.ResolvedAt))
	w(strconv.FormatBool(r.Every))
	w(strconv.FormatUint(r.Segment.Hash(), 16))
	w(strconv.FormatUint(r.Labels.Hash(), 16))
	return h.Sum64()
}

// deliveryHash covers the dedup state: who was told, when, and when the
// group may speak next; not the alerts' changing values.
func deliveryHash(r notifiers.DeliveryRecord) uint64 {
	h := fnv.New64a()
	w := func(s string) { h.Write([]byte(s)); h.Write([]byte{0xff}) }
	w(r.Channel)
	w(r.Group)
	w(timeKey(r.LastSent))
	w(timeKey(r.NextFlush))
	for _, a := range r.Sent {
		w(a.Fingerprint)
		w(a.State.String())
	}
	return h.Sum64()
}

func timeKey(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}
