package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"net/url"
	"slices"
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

// ErrTooLarge: a record cannot be stored within maxValueBytes: one alert
// record, or one alert of a delivery record, is larger than that on its
// own. The error names the key; the other records of the save are written.
var ErrTooLarge = errors.New("ha: record too large for one etcd value")

// Bounds on what one save sends to etcd. etcd refuses a request larger than
// its --max-request-bytes (1.5 MiB by default) and a txn of more than
// --max-txn-ops (128) operations.
const (
	// maxTxnOps stays under etcd's default --max-txn-ops (128).
	maxTxnOps = 120
	// maxTxnBytes bounds one txn request: keys and values, plus opOverhead
	// per op for the guard, the op framing and the request header. A
	// third below etcd's default limit, which checks the request with
	// its raft header.
	maxTxnBytes = 1 << 20
	// maxValueBytes bounds any one stored value (an alert record, a
	// delivery record or one of its parts): a quarter of a txn, so a
	// txn carries at least three and a value alone never makes one too
	// large. Large delivery records are split well below it (partBytes).
	maxValueBytes = 256 << 10
	// opOverhead is counted per op on top of its key and value; protobuf
	// framing of a put is about a dozen bytes.
	opOverhead = 32
)

// State is the shared alert and delivery state under a prefix:
//
//	<prefix>alerts/<rule>/<fingerprint>         engine.AlertRecord as JSON
//	<prefix>deliveries/<channel>/<group>        notifiers.DeliveryRecord as JSON
//	<prefix>deliveries/<channel>/<group>/<part> part of a large one's Sent
//
// A delivery record of more than about partBytes is stored split (see
// deliveries.go): its key holds the channel, group, times and the names of
// its parts, each part the alerts of one bucket of fingerprints.
//
// It remembers a hash of what it last wrote or loaded per key and writes
// only keys whose state changed, so the write volume follows state
// changes (an alert fires, resolves, a message is sent), not evaluations.
// Writes go in guarded txns of at most maxTxnOps ops and maxTxnBytes.
type State struct {
	cli    *clientv3.Client
	prefix string

	mu      sync.Mutex
	written map[string]uint64 // key -> hash of its last known content
	layouts map[string]layout // delivery key -> its parts, as last written or loaded

	puts, deletes, txns, bytes atomic.Uint64
}

// unknown is the hash of a key that is in etcd with content this State
// does not know (a txn whose outcome is unknown, a record that did not
// decode): it matches no record, so the next save rewrites or deletes it.
const unknown = 0

// NewState keeps state under prefix (Config.Prefix).
func NewState(cli *clientv3.Client, prefix string) *State {
	return &State{cli: cli, prefix: prefix, written: map[string]uint64{}, layouts: map[string]layout{}}
}

// WriteStats counts what this State sent to etcd.
type WriteStats struct {
	Puts, Deletes, Txns uint64
	// Bytes is the keys and values of the puts.
	Bytes uint64
}

// Stats returns the writes so far.
func (s *State) Stats() WriteStats {
	return WriteStats{Puts: s.puts.Load(), Deletes: s.deletes.Load(), Txns: s.txns.Load(), Bytes: s.bytes.Load()}
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
// A record that does not decode, or a split delivery record with a part
// missing or broken, is skipped and reported in err, with the rest
// returned; the next save replaces or deletes such a delivery record.
// Delivery records come sorted by channel and group, their Sent by
// fingerprint, as Dispatcher.ExportState gives them.
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
	resp, err = s.cli.Get(ctx, s.deliveriesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, nil, fmt.Errorf("load delivery records: %w", err)
	}
	deliveries, layouts, derrs := s.loadDeliveries(resp.Kvs, written)
	errs = append(errs, derrs...)
	s.mu.Lock()
	s.written = written
	s.layouts = layouts
	s.mu.Unlock()
	return alerts, deliveries, errors.Join(errs...)
}

// SaveAlerts writes the alert records that changed since the last save or
// load and deletes those that are gone, under t's guard. A record too
// large for one value is not written and is named in the error
// (ErrTooLarge); the others are.
func (s *State) SaveAlerts(ctx context.Context, t *Term, recs []engine.AlertRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := make(map[string]engine.AlertRecord, len(recs))
	for _, r := range recs {
		cur[s.alertKey(r)] = r
	}
	var errs []error
	var ops []op
	for _, k := range slices.Sorted(maps.Keys(cur)) {
		r := cur[k]
		h := alertHash(r)
		if w, ok := s.written[k]; ok && w == h {
			continue
		}
		b, err := json.Marshal(r)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", k, err))
			continue
		}
		if len(b) > maxValueBytes {
			errs = append(errs, tooLarge(k, len(b)))
			continue
		}
		ops = append(ops, op{key: k, val: b, hash: h})
	}
	ops = append(ops, s.stale(s.alertsPrefix(), func(k string) bool { _, ok := cur[k]; return ok })...)
	if err := s.commit(ctx, t, ops); err != nil {
		return errors.Join(append([]error{err}, errs...)...)
	}
	return errors.Join(errs...)
}

func tooLarge(what string, n int) error {
	return fmt.Errorf("%s: %w: %d bytes, at most %d", what, ErrTooLarge, n, maxValueBytes)
}

// op is one write of a save.
type op struct {
	key string
	val []byte // the value of a put
	del bool
	// hash is the content's hash, remembered once the txn commits.
	hash uint64
	// layout is remembered for a delivery key once its put commits.
	layout *layout
}

func (o op) size() int { return len(o.key) + len(o.val) + opOverhead }

// stale returns deletes, in key order, for the keys under prefix that are
// written and not kept.
func (s *State) stale(prefix string, keep func(string) bool) []op {
	var ks []string
	for k := range s.written {
		if strings.HasPrefix(k, prefix) && !keep(k) {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	ops := make([]op, len(ks))
	for i, k := range ks {
		ops[i] = op{key: k, del: true}
	}
	return ops
}

// commit sends ops in order, in guarded txns of at most maxTxnOps ops and
// maxTxnBytes, and records each txn's writes once it commits. Every txn
// is guarded on its own: a leader deposed between two txns has its
// earlier ones applied and the rest refused (ErrNotLeader). Callers order
// ops so that any such prefix leaves each record whole (deliveries.go).
func (s *State) commit(ctx context.Context, t *Term, ops []op) error {
	base := len(t.key) + opOverhead
	for len(ops) > 0 {
		n, size := 0, base
		for n < len(ops) && n < maxTxnOps && (n == 0 || size+ops[n].size() <= maxTxnBytes) {
			size += ops[n].size()
			n++
		}
		batch := ops[:n]
		ops = ops[n:]
		txn := make([]clientv3.Op, len(batch))
		for i, o := range batch {
			if o.del {
				txn[i] = clientv3.OpDelete(o.key)
			} else {
				txn[i] = clientv3.OpPut(o.key, string(o.val))
			}
		}
		resp, err := s.cli.Txn(ctx).If(t.Guard()).Then(txn...).Commit()
		if err != nil {
			// The txn may or may not have been applied: a put's key is
			// taken as there with unknown content, so the next save
			// writes it again if it is still wanted and deletes it if
			// not; a delete is sent again.
			for _, o := range batch {
				if !o.del {
					s.written[o.key] = unknown
				}
			}
			return fmt.Errorf("save state: %w", err)
		}
		s.txns.Add(1)
		if !resp.Succeeded {
			// The key is gone or another's: end the term, so this replica
			// stops acting and campaigns again.
			t.cancel(ErrNotLeader)
			return ErrNotLeader
		}
		for _, o := range batch {
			if o.del {
				delete(s.written, o.key)
				delete(s.layouts, o.key)
				s.deletes.Add(1)
				continue
			}
			s.written[o.key] = o.hash
			if o.layout != nil {
				s.layouts[o.key] = *o.layout
			}
			s.puts.Add(1)
			s.bytes.Add(uint64(len(o.key) + len(o.val)))
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
	// What decides whether the next leader pages, holds or resolves; the
	// values that change at every evaluation (Value, Values, Segments,
	// LastTrue, Annotations) are left out, so writes follow state changes.
	w(r.Across)
	w(strings.Join(r.SegmentBy, "\xff"))
	w(timeKey(r.KeepSince))
	w(strconv.FormatBool(r.Flapping))
	w(timeKey(r.FlapSince))
	w(strconv.FormatBool(r.Missing))
	for _, c := range r.Changes {
		w(timeKey(c))
	}
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
