package ha

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"hash/fnv"
	"maps"
	"math/bits"
	"net/url"
	"slices"
	"sort"
	"strings"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
)

// A delivery record lists every alert its receiver got, so one group of a
// per-host rule firing on thousands of hosts is megabytes of JSON: more
// than etcd takes in one request. Such a record is split:
//
//	<prefix>deliveries/<channel>/<group>               the head
//	<prefix>deliveries/<channel>/<group>/<i>-<hash>    part i: alerts of bucket i
//
// The head is the record's channel, group and times with the number of
// buckets and the names of its non-empty parts. An alert's bucket is the
// top bits of the FNV-1a hash of its fingerprint, so it stays in its part
// while others come and go: a change to one alert rewrites one part and
// the head. A small record (up to partBytes, give or take the factor of
// two by which a layout is kept, see pickBuckets) is one value, the head
// holding Sent itself, as before records were split.
//
// A part's name ends with the hash of what it holds (fingerprints and
// states), so a changed part is a new key. A save writes the new parts,
// then the head that names them, then deletes the parts no head names any
// more. A leader deposed midway, with its txns applied only up to some
// point, leaves every record whole: the old head with its old parts, or
// the new head with its new parts. Parts no head names are ignored by
// Load and deleted by the next leader's first save.

const (
	// partBytes is what a split record's parts aim at: the number of
	// buckets is the smallest power of two that makes the average part
	// at most this (a part may be up to maxValueBytes). Smaller parts
	// make a one-alert change cheaper to write; more parts make the
	// head's list of names longer. 64 KiB is about 90 alerts of 700
	// bytes, and the head of a 3,000-alert group lists about 64 names
	// (1.5 KiB).
	partBytes = 64 << 10
	// maxParts bounds the head's list (about 100 KiB at 4,096 names),
	// so a group of up to about 256 MiB of JSON can be stored.
	maxParts = 4096
)

// deliveryHead is the value at a delivery record's key: the whole record
// when it fits in one value (no Parts), or its channel, group and times
// with the names of the parts that hold Sent.
type deliveryHead struct {
	notifiers.DeliveryRecord
	Buckets int      `json:"buckets,omitempty"`
	Parts   []string `json:"parts,omitempty"`
}

// MarshalJSON adds buckets and parts to the record's own JSON, which an
// embedded type's MarshalJSON would otherwise replace whole.
func (h deliveryHead) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(h.DeliveryRecord)
	if err != nil || (h.Buckets == 0 && len(h.Parts) == 0) {
		return b, err
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m["buckets"], err = json.Marshal(h.Buckets); err != nil {
		return nil, err
	}
	if m["parts"], err = json.Marshal(h.Parts); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// UnmarshalJSON reads what MarshalJSON wrote.
func (h *deliveryHead) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &h.DeliveryRecord); err != nil {
		return err
	}
	var extra struct {
		Buckets int      `json:"buckets"`
		Parts   []string `json:"parts"`
	}
	if err := json.Unmarshal(b, &extra); err != nil {
		return err
	}
	h.Buckets, h.Parts = extra.Buckets, extra.Parts
	return nil
}

// deliveryPart is the value of one part: some of the record's Sent, in
// fingerprint order.
type deliveryPart struct {
	Sent []model.Alert `json:"sent"`
}

// layout is how a delivery record is stored.
type layout struct {
	buckets int      // 1: one value, no parts
	parts   []string // the parts' keys
}

// SaveDeliveries writes the delivery records that changed since the last
// save or load and deletes those that are gone, under t's guard. A record
// with one alert too large for a value on its own is not written (what is
// stored of it stays) and is named in the error (ErrTooLarge); the others
// are.
func (s *State) SaveDeliveries(ctx context.Context, t *Term, recs []notifiers.DeliveryRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := make(map[string]notifiers.DeliveryRecord, len(recs))
	for _, r := range recs {
		cur[s.deliveryKey(r)] = r
	}
	keep := map[string]bool{}
	var errs []error
	var parts, heads []op
	for _, k := range slices.Sorted(maps.Keys(cur)) {
		r := cur[k]
		keep[k] = true
		h := deliveryHash(r)
		if w, ok := s.written[k]; ok && w == h {
			for _, p := range s.layouts[k].parts {
				keep[p] = true
			}
			continue
		}
		head, ps, l, err := s.splitDelivery(k, r)
		if err != nil {
			errs = append(errs, err)
			for _, p := range s.layouts[k].parts {
				keep[p] = true
			}
			continue
		}
		for _, p := range ps {
			keep[p.key] = true
			if w, ok := s.written[p.key]; !ok || w != p.hash {
				parts = append(parts, p)
			}
		}
		heads = append(heads, op{key: k, val: head, hash: h, layout: &l})
	}
	// Parts before the heads that name them; heads deleted before their
	// parts. Keys of a split record have one more "/" than heads.
	ops := append(parts, heads...)
	dels := s.stale(s.deliveriesPrefix(), func(k string) bool { return keep[k] })
	sort.SliceStable(dels, func(i, j int) bool { return !s.isPart(dels[i].key) && s.isPart(dels[j].key) })
	ops = append(ops, dels...)
	if err := s.commit(ctx, t, ops); err != nil {
		return errors.Join(append([]error{err}, errs...)...)
	}
	return errors.Join(errs...)
}

func (s *State) isPart(key string) bool {
	return strings.Count(key[len(s.deliveriesPrefix()):], "/") == 2
}

// splitDelivery encodes r for key: the head's value, the parts (none when
// r fits in one value) and the layout, keeping the layout last written
// while it still fits and is within a factor of two of the ideal, so a
// group that hovers around a boundary is not reshuffled at every save.
func (s *State) splitDelivery(key string, r notifiers.DeliveryRecord) ([]byte, []op, layout, error) {
	sent := r.Sent
	if !sort.SliceIsSorted(sent, func(i, j int) bool { return sent[i].Fingerprint < sent[j].Fingerprint }) {
		sent = append([]model.Alert(nil), sent...)
		sort.SliceStable(sent, func(i, j int) bool { return sent[i].Fingerprint < sent[j].Fingerprint })
	}
	bare := r
	bare.Sent = nil
	fixed, err := json.Marshal(deliveryHead{DeliveryRecord: bare})
	if err != nil {
		return nil, nil, layout{}, fmt.Errorf("%s: %w", key, err)
	}
	enc := make([][]byte, len(sent))
	hs := make([]uint64, len(sent))
	total := len(fixed) + len(`,"sent":[]`)
	for i, a := range sent {
		b, err := json.Marshal(a)
		if err != nil {
			return nil, nil, layout{}, fmt.Errorf("%s: alert %s: %w", key, a.Fingerprint, err)
		}
		if n := len(b) + len(`{"sent":[]}`); n > maxValueBytes {
			return nil, nil, layout{}, tooLarge(fmt.Sprintf("%s: alert %s", key, a.Fingerprint), n)
		}
		enc[i] = b
		hs[i] = fnv64a(a.Fingerprint)
		total += len(b) + 1
	}
	n, err := pickBuckets(hs, enc, total, s.layouts[key].buckets)
	if err != nil {
		return nil, nil, layout{}, fmt.Errorf("%s: %w", key, err)
	}
	if n == 1 {
		r.Sent = sent
		head, err := json.Marshal(deliveryHead{DeliveryRecord: r})
		if err != nil {
			return nil, nil, layout{}, fmt.Errorf("%s: %w", key, err)
		}
		return head, nil, layout{buckets: 1}, nil
	}
	byBucket := make([][]int, n)
	for i, h := range hs {
		b := bucket(h, n)
		byBucket[b] = append(byBucket[b], i)
	}
	l := layout{buckets: n}
	var names []string
	var parts []op
	for b, idx := range byBucket {
		if len(idx) == 0 {
			continue
		}
		val := []byte(`{"sent":[`)
		ph := newPartHasher()
		for j, i := range idx {
			if j > 0 {
				val = append(val, ',')
			}
			val = append(val, enc[i]...)
			ph.add(sent[i])
		}
		val = append(val, "]}"...)
		name := fmt.Sprintf("%d-%016x", b, ph.sum())
		names = append(names, name)
		l.parts = append(l.parts, key+"/"+name)
		parts = append(parts, op{key: key + "/" + name, val: val, hash: ph.sum()})
	}
	head, err := json.Marshal(deliveryHead{DeliveryRecord: bare, Buckets: n, Parts: names})
	if err != nil {
		return nil, nil, layout{}, fmt.Errorf("%s: %w", key, err)
	}
	if len(head) > maxValueBytes {
		return nil, nil, layout{}, tooLarge(key, len(head))
	}
	return head, parts, l, nil
}

// pickBuckets returns the number of buckets (a power of two; 1 for one
// value) for alerts with fingerprint hashes hs and encodings enc, total
// bytes as one value: prev if it fits and is within a factor of two of
// the ideal (the fewest with an average part of at most partBytes), else
// the ideal, doubled until every part fits in maxValueBytes.
func pickBuckets(hs []uint64, enc [][]byte, total, prev int) (int, error) {
	fits := func(n int) bool {
		if n == 1 {
			return total <= maxValueBytes
		}
		sums := make([]int, n)
		for i, h := range hs {
			b := bucket(h, n)
			sums[b] += len(enc[i]) + 1
			if sums[b]+len(`{"sent":[]}`) > maxValueBytes {
				return false
			}
		}
		return true
	}
	ideal := 1
	for ideal*partBytes < total {
		ideal *= 2
	}
	if prev > 0 && prev >= ideal/2 && prev <= ideal*2 && prev <= maxParts && fits(prev) {
		return prev, nil
	}
	for n := ideal; n <= maxParts; n *= 2 {
		if fits(n) {
			return n, nil
		}
	}
	return 0, fmt.Errorf("%w: %d bytes of alerts do not fit in %d parts of %d bytes", ErrTooLarge, total, maxParts, maxValueBytes)
}

// bucket is the top log2(n) bits of h: doubling n splits each bucket in
// two and leaves every alert in one of the halves of its old bucket.
func bucket(h uint64, n int) int {
	if n <= 1 {
		return 0
	}
	return int(h >> (64 - bits.TrailingZeros(uint(n))))
}

func fnv64a(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// partHasher hashes what a part holds the way deliveryHash does a record:
// fingerprints and states, not the alerts' changing values.
type partHasher struct{ h hash.Hash64 }

func newPartHasher() partHasher { return partHasher{fnv.New64a()} }

func (p partHasher) add(a model.Alert) {
	p.h.Write([]byte(a.Fingerprint))
	p.h.Write([]byte{0xff})
	p.h.Write([]byte(a.State.String()))
	p.h.Write([]byte{0xff})
}

func (p partHasher) sum() uint64 { return p.h.Sum64() }

// loadDeliveries assembles the records from the keys under the deliveries
// prefix and notes in written what each key holds. Parts no head names are
// noted as unknown, so the next save deletes them.
func (s *State) loadDeliveries(kvs []*mvccpb.KeyValue, written map[string]uint64) ([]notifiers.DeliveryRecord, map[string]layout, []error) {
	var errs []error
	parts := map[string][]byte{}
	var heads []*mvccpb.KeyValue
	for _, kv := range kvs {
		switch k := string(kv.Key); strings.Count(k[len(s.deliveriesPrefix()):], "/") {
		case 1:
			heads = append(heads, kv)
		case 2:
			parts[k] = kv.Value
			written[k] = unknown
		default:
			errs = append(errs, fmt.Errorf("%s: not a delivery record's key", k))
		}
	}
	var out []notifiers.DeliveryRecord
	layouts := map[string]layout{}
	for _, kv := range heads {
		k := string(kv.Key)
		r, l, hashes, err := assemble(k, kv.Value, parts)
		if err == nil {
			r.Channel, r.Group, err = s.deliveryNames(k)
		}
		if err != nil {
			errs = append(errs, err)
			written[k] = unknown
			continue
		}
		out = append(out, r)
		written[k] = deliveryHash(r)
		layouts[k] = l
		for pk, h := range hashes {
			written[pk] = h
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Channel != out[j].Channel {
			return out[i].Channel < out[j].Channel
		}
		return out[i].Group < out[j].Group
	})
	return out, layouts, errs
}

// deliveryNames is the inverse of deliveryKey. A record's channel and
// group are taken from its key, not its JSON: a group key holds 0xff
// between the group_by values, which is not UTF-8, and encoding/json
// writes it as U+FFFD, a group the dispatcher never makes.
func (s *State) deliveryNames(key string) (channel, group string, err error) {
	ch, grp, _ := strings.Cut(key[len(s.deliveriesPrefix()):], "/")
	if channel, err = url.PathUnescape(ch); err == nil {
		group, err = url.PathUnescape(grp)
	}
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", key, err)
	}
	return channel, group, nil
}

// assemble decodes the record at key from its head and the parts it names,
// with the hash of each part.
func assemble(key string, val []byte, parts map[string][]byte) (notifiers.DeliveryRecord, layout, map[string]uint64, error) {
	var h deliveryHead
	if err := json.Unmarshal(val, &h); err != nil {
		return notifiers.DeliveryRecord{}, layout{}, nil, fmt.Errorf("%s: %w", key, err)
	}
	r := h.DeliveryRecord
	if len(h.Parts) == 0 {
		return r, layout{buckets: 1}, nil, nil
	}
	l := layout{buckets: h.Buckets}
	hashes := map[string]uint64{}
	for _, name := range h.Parts {
		pk := key + "/" + name
		v, ok := parts[pk]
		if !ok {
			return notifiers.DeliveryRecord{}, layout{}, nil, fmt.Errorf("%s: part %s is missing", key, name)
		}
		var p deliveryPart
		if err := json.Unmarshal(v, &p); err != nil {
			return notifiers.DeliveryRecord{}, layout{}, nil, fmt.Errorf("%s: %w", pk, err)
		}
		ph := newPartHasher()
		for _, a := range p.Sent {
			ph.add(a)
		}
		hashes[pk] = ph.sum()
		l.parts = append(l.parts, pk)
		r.Sent = append(r.Sent, p.Sent...)
	}
	sort.SliceStable(r.Sent, func(i, j int) bool { return r.Sent[i].Fingerprint < r.Sent[j].Fingerprint })
	return r, l, hashes, nil
}
