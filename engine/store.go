package engine

import (
	"encoding/binary"
	"hash/maphash"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/rules"
)

// Store keeps the recent samples of every series, for as long as the
// longest rule window needs and no longer, so memory is bounded by the
// rules, not by uptime.
type Store struct {
	mu        sync.RWMutex
	retention int64 // nanoseconds
	// seriesRetention is how long a series that stopped reporting is
	// remembered, without samples, so its segment still exists and
	// no_data: alerting keeps paging for a host that vanished.
	seriesRetention int64
	// maxSeries, when above 0, bounds the series held: a new series beyond
	// it is refused (counted in refused), as Prometheus' sample_limit
	// bounds a scrape, so a target's label explosion cannot exhaust memory.
	maxSeries int
	refused   uint64
	// bySum finds a series by the hash of its metric and labels, and
	// collided the rare series whose hash another series already has: a
	// key string per series cost more than a tenth of the store.
	seed     maphash.Seed
	hash     func(string, model.Labels) uint64 // s.sum; tests make series collide
	bySum    map[uint64]*series
	collided map[string]*series
	// labelSets shares one copy of each distinct label set: the metrics of
	// a host carry the same labels, and a copy per series scattered the
	// series across memory. Each counts the series using it, so GC
	// forgets one when its last series goes, without looking at the rest.
	labelSets map[string]*sharedLabels
	// list holds series in creation order; rule indexes scan only what was
	// added since their last look. Removals bump epoch, which makes them
	// rebuild.
	list  []*series
	epoch uint64
	// version changes with every Append, so cached aggregates know when
	// samples arrived between two rules evaluated at the same time.
	version uint64
	// first is the time of the oldest sample ever appended (when hasData):
	// a window reaching back before it is not covered by data, since the
	// store (the process) started after the window began.
	first   int64
	hasData bool
	// Series and their values are carved from slabs kept per metric, so
	// that one metric's series across a fleet sit together in memory: the
	// order evaluation reads them in (one aggregate over all segments).
	slabs map[string]*slab
	// recent is the timeline that last took a new time: a series new in
	// a collection joins the timeline its collection's other series are on.
	recent *timeline
	// inventories are the last inventory of each source: a source that
	// fails to report one keeps its last, so a cluster that went silent
	// as a whole is still expected.
	inventories map[string]model.Inventory
}

// SetInventory replaces the inventory of inv.Source.
func (s *Store) SetInventory(inv model.Inventory) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.inventories == nil {
		s.inventories = map[string]model.Inventory{}
	}
	s.inventories[inv.Source] = inv
}

// Inventory returns the last inventory of source.
func (s *Store) Inventory(source string) (model.Inventory, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	inv, ok := s.inventories[source]
	return inv, ok
}

type slab struct {
	series []series
	vals   []float64
	live   int // series of the metric in the store; at 0 the slab goes
	chunk  int // series per chunk: grows from 8 to slabSeries
}

const (
	slabSeries  = 256
	firstPoints = 8
)

func (s *Store) slabOf(metric string) *slab {
	sl := s.slabs[metric]
	if sl == nil {
		sl = &slab{}
		s.slabs[metric] = sl
	}
	return sl
}

func (s *Store) newSeries(metric string, ls model.Labels) *series {
	sl := s.slabOf(metric)
	if len(sl.series) == 0 {
		// Start small, so a metric with a few series costs little.
		sl.chunk = min(max(2*sl.chunk, 8), slabSeries)
		sl.series = make([]series, sl.chunk)
	}
	sl.live++
	sr := &sl.series[0]
	sl.series = sl.series[1:]
	sr.metric, sr.labels, sr.tl = metric, s.internLabels(ls), noTimes
	sr.vals = s.values(sl, firstPoints)
	return sr
}

// values returns room for n values from the metric's slab. Series of a
// metric grow together (one collection appends to all of them), so their
// new arrays land side by side too.
func (s *Store) values(sl *slab, n int) []float64 {
	if len(sl.vals) < n {
		sl.vals = make([]float64, n*max(sl.chunk, 8))
	}
	v := sl.vals[:0:n]
	sl.vals = sl.vals[n:]
	return v
}

type series struct {
	metric string
	labels model.Labels
	last   int64 // time of the newest sample ever appended
	// The samples are vals (ascending time) at the times tl.ts[lo:]: a
	// value costs 8 bytes, its time is shared with the collection's other
	// series.
	tl   *timeline
	lo   int
	vals []float64
}

// times returns the times of sr.vals, index for index.
func (sr *series) times() []int64 {
	return sr.tl.ts[sr.lo : sr.lo+len(sr.vals)]
}

// noTimes is the timeline of a series without samples, never written:
// with it, reading a series' times needs no test for nil (window stays
// small enough to be inlined in evaluation's loops).
var noTimes = &timeline{}

// timeline is a run of ascending sample times shared by series. A
// collection stamps all its samples with one time, so its series share
// one copy of their times rather than holding one each (16 bytes a sample
// become 8). Times are only ever appended, so each series' view
// ts[lo:lo+n] stays valid while the timeline grows: the first series to
// receive time t appends it, the others find t already there.
type timeline struct {
	ts []int64
	// next is where series go that cannot take their next time here (the
	// timeline is full, or it went on with another time): next.ts starts
	// with a copy of ts[shift:upto].
	next        *timeline
	shift, upto int
}

// NewStore returns a store keeping samples for retention.
func NewStore(retention time.Duration) *Store {
	s := &Store{retention: int64(retention), seriesRetention: int64(DefaultSeriesRetention), seed: maphash.MakeSeed(), bySum: map[uint64]*series{}, collided: map[string]*series{}, slabs: map[string]*slab{}, labelSets: map[string]*sharedLabels{}}
	s.hash = s.sum
	return s
}

// DefaultSeriesRetention is how long a series that stopped reporting is
// remembered until SetSeriesRetention is called (the daemon sets it to
// SeriesRetentionFor its rules).
const DefaultSeriesRetention = time.Hour

// SetSeriesRetention sets how long after its last sample a series is
// remembered before it, its segment and any alert on it are forgotten
// (never sooner than its samples leave the retention).
func (s *Store) SetSeriesRetention(d time.Duration) {
	s.mu.Lock()
	s.seriesRetention = int64(d)
	s.mu.Unlock()
}

// DefaultSeriesSlack is the slack of SeriesRetentionFor when nothing
// configures it (the daemon's store.retention_slack default).
const DefaultSeriesSlack = 5 * time.Minute

// SeriesRetentionFor is how long a series that stopped reporting should
// be remembered under rs: the longest any rule still acts on a vanished
// segment, plus slack. Its segment goes without data one window after its
// last sample, a no_data or keep_state alert then needs `for` to fire, and
// a firing one is held keep_firing_for more; forgetting the segment
// earlier would cut those short.
func SeriesRetentionFor(rs *rules.RuleSet, slack time.Duration) time.Duration {
	reach := rs.MaxWindow
	for _, r := range rs.Rules() {
		reach = max(reach, r.Window+r.For+r.KeepFiringFor)
	}
	return reach + slack
}

// SeriesRetention returns how long a series that stopped reporting is
// remembered.
func (s *Store) SeriesRetention() time.Duration {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return time.Duration(s.seriesRetention)
}

// SetMaxSeries bounds the series held (0: no bound). Beyond it, samples
// of new series are refused while series already held keep updating; a
// lower bound than the series held drops none, it only refuses new ones
// until enough have been forgotten.
func (s *Store) SetMaxSeries(n int) {
	s.mu.Lock()
	s.maxSeries = n
	s.mu.Unlock()
}

// SeriesLimits returns the series held, the bound (0: none), and how many
// samples of new series were refused since the store was made.
func (s *Store) SeriesLimits() (held, maxSeries int, refused uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return len(s.list), s.maxSeries, s.refused
}

// SetRetention changes how long samples are kept (the engine sets it from
// the rules' longest window).
func (s *Store) SetRetention(d time.Duration) {
	s.mu.Lock()
	s.retention = int64(d)
	s.mu.Unlock()
}

// Retention returns how long samples are kept.
func (s *Store) Retention() time.Duration {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return time.Duration(s.retention)
}

// sum hashes metric and ls: the labels' hashes are added, so that map
// order does not matter and no sorted copy is needed.
func (s *Store) sum(metric string, ls model.Labels) uint64 {
	var h maphash.Hash
	h.SetSeed(s.seed)
	var labels uint64
	for k, v := range ls {
		h.Reset()
		h.WriteString(k)
		h.WriteByte(0xfe)
		h.WriteString(v)
		labels += h.Sum64()
	}
	h.Reset()
	h.WriteString(metric)
	h.WriteByte(0xff)
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], labels)
	h.Write(b[:])
	return h.Sum64()
}

// lookup returns the series of metric and ls, if held, and their hash.
func (s *Store) lookup(metric string, ls model.Labels) (*series, uint64) {
	sum := s.hash(metric, ls)
	if sr := s.bySum[sum]; sr != nil && sr.metric == metric && maps.Equal(sr.labels, ls) {
		return sr, sum
	}
	if len(s.collided) > 0 {
		return s.collided[seriesKey(metric, ls)], sum
	}
	return nil, sum
}

// forget removes sr from the lookup.
func (s *Store) forget(sr *series) {
	sum := s.hash(sr.metric, sr.labels)
	if s.bySum[sum] == sr {
		delete(s.bySum, sum)
		return
	}
	delete(s.collided, seriesKey(sr.metric, sr.labels))
}

func seriesKey(metric string, ls model.Labels) string {
	var b strings.Builder
	b.WriteString(metric)
	writeLabels(&b, ls)
	return b.String()
}

func writeLabels(b *strings.Builder, ls model.Labels) {
	for _, k := range ls.Names() {
		b.WriteByte(0xff)
		b.WriteString(k)
		b.WriteByte(0xfe)
		b.WriteString(ls[k])
	}
}

// internLabels returns the shared copy of ls; the caller holds s.mu.
func (s *Store) internLabels(ls model.Labels) model.Labels {
	var b strings.Builder
	writeLabels(&b, ls)
	sh := s.labelSets[b.String()]
	if sh == nil {
		sh = &sharedLabels{ls: ls.Copy()}
		s.labelSets[b.String()] = sh
	}
	sh.refs++
	return sh.ls
}

type sharedLabels struct {
	ls   model.Labels
	refs int // series using ls
}

// releaseLabels drops a series' use of its shared label set; the caller
// holds s.mu.
func (s *Store) releaseLabels(ls model.Labels) {
	var b strings.Builder
	writeLabels(&b, ls)
	if sh := s.labelSets[b.String()]; sh != nil {
		if sh.refs--; sh.refs <= 0 {
			delete(s.labelSets, b.String())
		}
	}
}

// Append adds samples. A sample at a time the series already has replaces
// that value; before adding, samples older than the retention behind the
// newer of the series' newest and the new sample are trimmed. NaN samples
// are dropped.
func (s *Store) Append(samples ...model.Sample) { s.append(true, samples) }

// AppendOwn is Append for Vigil's own series (a collector's health, the
// store's size): max_series never refuses them, so a target that filled
// the store, even one first seen after it filled, still shows its health.
// Their number is bounded by the config, not by what targets send.
func (s *Store) AppendOwn(samples ...model.Sample) { s.append(false, samples) }

func (s *Store) append(bounded bool, samples []model.Sample) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version++
	for _, smp := range samples {
		if math.IsNaN(smp.Value) {
			// A NaN (a summary quantile with no observations) says
			// nothing; kept, it would blank every aggregate of its window.
			continue
		}
		sr, sum := s.lookup(smp.Metric, smp.Labels)
		if sr == nil {
			if bounded && s.maxSeries > 0 && len(s.list) >= s.maxSeries {
				s.refused++
				continue
			}
			sr = s.newSeries(smp.Metric, smp.Labels)
			if s.bySum[sum] == nil {
				s.bySum[sum] = sr
			} else {
				s.collided[seriesKey(smp.Metric, smp.Labels)] = sr
			}
			s.list = append(s.list, sr)
		}
		t := smp.Time.UnixNano()
		if t < s.first || !s.hasData {
			s.first, s.hasData = t, true
		}
		// Trim first: in steady state a series then never outgrows its
		// array, and never moves.
		if ts := sr.times(); len(ts) > 0 {
			sr.trim(max(ts[len(ts)-1], t) - s.retention)
		}
		if len(sr.vals) == cap(sr.vals) {
			grown := s.values(s.slabOf(sr.metric), s.grownCap(sr.times()))
			sr.vals = append(grown, sr.vals...)
		}
		s.add(sr, t, smp.Value)
		sr.last = max(sr.last, t)
	}
}

// grownCap is the new capacity of a full array of samples at times ts:
// double, but no more than a full window at the series' own sample
// spacing (plus slack for jitter). Doubling alone would leave a series
// reporting every 10 s under an 11-minute retention (66 points) with room
// for 128, nearly half of the store's memory unused.
func (s *Store) grownCap(ts []int64) int {
	n := len(ts)
	c := 2 * n
	if n < 2 {
		return max(c, firstPoints)
	}
	spacing := (ts[n-1] - ts[0]) / int64(n-1)
	if spacing <= 0 {
		return c
	}
	if full := s.retention/spacing + 1; full < int64(c) {
		c = int(full + full/16 + 2)
		if c <= n {
			// The estimate was wrong (spacing shrank): grow by a quarter,
			// so a run of wrong estimates does not copy at every sample.
			c = n + max(n/4, 1)
		}
	}
	return c
}

// add puts the sample (t, v) into sr, which has room for one more value.
func (s *Store) add(sr *series, t int64, v float64) {
	ts := sr.times()
	n := len(ts)
	if n == 0 || t > ts[n-1] {
		s.extend(sr, t)
		sr.vals = append(sr.vals, v)
		return
	}
	i := sort.Search(n, func(i int) bool { return ts[i] >= t })
	if ts[i] == t {
		sr.vals[i] = v
		return
	}
	// A time between two the series has: no other series is likely to
	// share it, so the series takes a timeline of its own.
	own := make([]int64, 0, max(n+1, s.grownCap(ts)))
	own = append(append(append(own, ts[:i]...), t), ts[i:]...)
	sr.tl, sr.lo = &timeline{ts: own}, 0
	sr.vals = slices.Insert(sr.vals, i, v)
}

// extend makes t, newer than any of sr's times, the time of its next
// value: on its timeline when the slot after its times is t or free, else
// on the timeline another series of the same collection moved to, else on
// a new one, which those after it then follow.
func (s *Store) extend(sr *series, t int64) {
	n := len(sr.vals)
	if n == 0 {
		// A new series, or one all of whose samples were trimmed: join
		// the timeline the collection's other series just took t onto,
		// or, when series come one by one with their history (a test,
		// a replay), the one the series before took it onto.
		if tl := s.recent; tl != nil {
			if i, ok := slices.BinarySearch(tl.ts, t); ok {
				sr.tl, sr.lo = tl, i
				return
			}
		}
		sr.tl, sr.lo = &timeline{ts: append(make([]int64, 0, firstPoints), t)}, 0
		s.recent = sr.tl
		return
	}
	tl, lo := sr.tl, sr.lo
	for {
		hi := lo + n
		switch {
		case hi < len(tl.ts) && tl.ts[hi] == t:
			sr.tl, sr.lo = tl, lo
			return
		case hi == len(tl.ts) && hi < cap(tl.ts):
			tl.ts = append(tl.ts, t)
			sr.tl, sr.lo = tl, lo
			s.recent = tl
			return
		}
		if tl.next == nil || lo < tl.shift || hi > tl.upto {
			break
		}
		tl, lo = tl.next, lo-tl.shift
	}
	ts := tl.ts[lo : lo+n]
	// A series that left its collection's timeline (for a late sample,
	// since trimmed) holds the same times again: rejoin it rather than
	// copy them.
	if r := s.recent; r != tl && r != nil {
		if i, ok := slices.BinarySearch(r.ts, ts[0]); ok && i+n <= len(r.ts) && slices.Equal(r.ts[i:i+n], ts) {
			switch {
			case i+n < len(r.ts) && r.ts[i+n] == t:
				sr.tl, sr.lo = r, i
				return
			case i+n == len(r.ts) && i+n < cap(r.ts):
				r.ts = append(r.ts, t)
				sr.tl, sr.lo = r, i
				return
			}
		}
	}
	// Room for a quarter window beyond the series' window: a shared
	// timeline is then copied once a quarter window, by one series of the
	// collection (the others follow), and a series alone on its times
	// keeps little spare room.
	c := s.grownCap(ts)
	moved := make([]int64, n, max(n+1, c+c/4))
	copy(moved, ts)
	next := &timeline{ts: append(moved, t)}
	tl.next, tl.shift, tl.upto = next, lo, lo+n
	sr.tl, sr.lo = next, 0
	s.recent = next
}

// trim drops samples at or before cutoff.
func (sr *series) trim(cutoff int64) {
	ts := sr.times()
	i := 0
	for i < len(ts) && ts[i] <= cutoff {
		i++
	}
	if i == 0 {
		return
	}
	// Copy down rather than reslice, so the backing array does not creep
	// forward and grow forever.
	n := copy(sr.vals, sr.vals[i:])
	sr.vals = sr.vals[:n]
	sr.lo += i
	if n == 0 {
		sr.tl, sr.lo = noTimes, 0 // let an old timeline go
	}
}

// GC drops samples older than the retention before now and series left
// empty, so series that stopped reporting do not stay forever.
func (s *Store) GC(now time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cutoff := now.UnixNano() - s.retention
	forget := now.UnixNano() - s.seriesRetention
	kept := s.list[:0]
	removed := false
	for _, sr := range s.list {
		sr.trim(cutoff)
		if len(sr.vals) == 0 && sr.last <= forget {
			s.forget(sr)
			s.releaseLabels(sr.labels)
			if sl := s.slabs[sr.metric]; sl != nil {
				if sl.live--; sl.live <= 0 {
					delete(s.slabs, sr.metric) // the last series: let the chunks go
				}
			}
			// Drop what the series points to, so its chunk can be freed
			// once its neighbours go too.
			sr.vals, sr.tl, sr.labels = nil, noTimes, nil
			removed = true
			continue
		}
		kept = append(kept, sr)
	}
	clear(s.list[len(kept):])
	s.list = kept
	if removed {
		s.epoch++
	}
}

// Stats reports the number of series and samples held.
func (s *Store) Stats() (seriesCount, samples int) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	for _, sr := range s.list {
		samples += len(sr.vals)
	}
	return len(s.list), samples
}

// SeriesBy counts the series held per value of label (series without it
// are not counted): the daemon's vigil_collector_series, by collector.
func (s *Store) SeriesBy(label string) map[string]int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := map[string]int{}
	for _, sr := range s.list {
		if v, ok := sr.labels[label]; ok {
			out[v]++
		}
	}
	return out
}

// CountSamples returns the number of samples of metric held, for tests
// and diagnostics.
func (s *Store) CountSamples(metric string) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, sr := range s.list {
		if sr.metric == metric {
			n += len(sr.vals)
		}
	}
	return n
}
