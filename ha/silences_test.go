package ha_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-alerts/vigil/ha"
	"github.com/vigil-alerts/vigil/silences"
)

// silenceReplica is one replica's side of silences: its own etcd client,
// store and sync, with Run going until the test ends (or stop).
type silenceReplica struct {
	st   *silences.Store
	sync *ha.SilenceSync
	stop func() error // cancels Run and waits for it
}

func startSilences(t *testing.T, cli *clientv3.Client) *silenceReplica {
	t.Helper()
	r := &silenceReplica{st: silences.NewStore()}
	r.sync = ha.NewSilenceSync(cli, "/test/", r.st, testLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.sync.Run(ctx) }()
	var once sync.Once
	var err error
	r.stop = func() error {
		once.Do(func() { cancel(); err = <-done })
		return err
	}
	t.Cleanup(func() { _ = r.stop() })
	return r
}

// testLogger writes to the test's log, shown when it fails.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, nil))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// maintenance is what an SRE types: mute host for two hours from base.
func maintenance(t *testing.T, host string) silences.Silence {
	t.Helper()
	m, err := silences.NewMatcher("host", silences.OpEqual, host)
	if err != nil {
		t.Fatal(err)
	}
	return silences.Silence{Matchers: []silences.Matcher{m}, EndsAt: base.Add(2 * time.Hour),
		CreatedBy: "sre@example.net", Comment: "replacing a disk on " + host}
}

// add is the API's create on one replica: Store.Add, then Save.
func add(t *testing.T, r *silenceReplica, s silences.Silence, now time.Time) silences.Silence {
	t.Helper()
	s, err := r.st.Add(s, now)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.sync.Save(ctx, s); err != nil {
		t.Fatal(err)
	}
	return s
}

// holds reports whether st has a silence with that ID, updated at that
// time (any version when at is zero).
func holds(st *silences.Store, id string, at time.Time) bool {
	s, ok := st.Get(id)
	return ok && (at.IsZero() || s.UpdatedAt.Equal(at))
}

func lacks(st *silences.Store, id string) bool { _, ok := st.Get(id); return !ok }

func put(t *testing.T, cli *clientv3.Client, key, val string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, key, val); err != nil {
		t.Fatal(err)
	}
}

// A silence made on one replica reaches the other, and so do an expiry
// and a deletion; what was stored before Run is loaded; values that do
// not decode, or that no store takes, are left out, at load and after.
func TestSilencesSharedBetweenReplicas(t *testing.T) {
	ep := startEtcd(t)
	admin := newClient(t, ep)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	// Stored before any replica runs: one silence, and two values no
	// replica can use.
	early := ha.NewSilenceSync(admin, "/test/", silences.NewStore(), nil)
	pre, err := silences.NewStore().Add(maintenance(t, "db-1"), base)
	if err != nil {
		t.Fatal(err)
	}
	if err := early.Save(ctx, pre); err != nil {
		t.Fatal(err)
	}
	put(t, admin, "/test/silences/broken", `{"id":"broken","matchers":[`)
	put(t, admin, "/test/silences/nomatchers", `{"id":"nomatchers","starts_at":"2026-03-01T12:00:00Z","ends_at":"2026-03-01T14:00:00Z","created_by":"x","comment":"y"}`)

	a := startSilences(t, newClient(t, ep))
	b := startSilences(t, newClient(t, ep))
	waitFor(t, 5*time.Second, "both synced", func() bool { return a.sync.Synced() && b.sync.Synced() })
	for name, r := range map[string]*silenceReplica{"a": a, "b": b} {
		if got := r.st.List(); len(got) != 1 || got[0].ID != pre.ID || !got[0].UpdatedAt.Equal(pre.UpdatedAt) {
			t.Errorf("%s loaded %+v, want only %s", name, got, pre.ID)
		}
		if s := r.sync.Stats(); s.Skipped != 2 || s.Loads != 1 {
			t.Errorf("%s: %+v, want 1 load with 2 values skipped", name, s)
		}
	}

	// Created on a, seen on b; expired on b, seen on a.
	s1 := add(t, a, maintenance(t, "web-1"), base.Add(time.Minute))
	waitFor(t, 5*time.Second, "a's silence on b", func() bool { return holds(b.st, s1.ID, s1.UpdatedAt) })
	exp, err := b.st.Expire(s1.ID, base.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.sync.Save(ctx, exp); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "b's expiry on a", func() bool { return holds(a.st, s1.ID, exp.UpdatedAt) })
	if got, _ := a.st.Get(s1.ID); got.State(base.Add(3*time.Minute)) != silences.StateExpired {
		t.Errorf("on a after b expired it: %+v", got)
	}

	// A value that stops decoding takes the silence out of every store;
	// the watch goes on.
	s2 := add(t, b, maintenance(t, "web-2"), base.Add(3*time.Minute))
	waitFor(t, 5*time.Second, "b's silence on a", func() bool { return holds(a.st, s2.ID, s2.UpdatedAt) })
	put(t, admin, "/test/silences/"+s2.ID, "garbage")
	waitFor(t, 5*time.Second, "the broken silence out of both stores", func() bool { return lacks(a.st, s2.ID) && lacks(b.st, s2.ID) })
	s3 := add(t, a, maintenance(t, "web-3"), base.Add(4*time.Minute))
	waitFor(t, 5*time.Second, "a silence after a broken one", func() bool { return holds(b.st, s3.ID, s3.UpdatedAt) })

	// The leader's GC deletes; every store follows.
	if err := a.sync.Delete(ctx, s1.ID, pre.ID, s1.ID, "never-was"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "deletions on both", func() bool {
		return lacks(a.st, s1.ID) && lacks(b.st, s1.ID) && lacks(a.st, pre.ID) && lacks(b.st, pre.ID)
	})
	for name, r := range map[string]*silenceReplica{"a": a, "b": b} {
		if got := r.st.List(); len(got) != 1 || got[0].ID != s3.ID {
			t.Errorf("%s holds %v at the end, want only %s", name, got, s3.ID)
		}
		if s := r.sync.Stats(); s.Skipped != 3 || s.Failures != 0 || s.Loads != 1 {
			t.Errorf("%s: %+v, want 3 values skipped, no failure, 1 load", name, s)
		}
	}
}

// stored reads the silence at id from etcd, with the key's revision.
func stored(t *testing.T, cli *clientv3.Client, id string) (silences.Silence, int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/test/silences/"+id)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 {
		t.Fatalf("%s: not stored", id)
	}
	var s silences.Silence
	if err := json.Unmarshal(resp.Kvs[0].Value, &s); err != nil {
		t.Fatal(err)
	}
	return s, resp.Kvs[0].ModRevision
}

// A replica whose clock is behind (or that had not seen the latest
// version) cannot overwrite a newer version of a silence with an older
// one: its save is refused and its store gets the stored version back.
func TestSilenceSaveKeepsTheNewerVersion(t *testing.T) {
	ep := startEtcd(t)
	admin := newClient(t, ep)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stA, stB := silences.NewStore(), silences.NewStore()
	a := ha.NewSilenceSync(newClient(t, ep), "/test/", stA, testLogger(t))
	b := ha.NewSilenceSync(newClient(t, ep), "/test/", stB, testLogger(t))

	v1, err := stA.Add(maintenance(t, "web-1"), base)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Save(ctx, v1); err != nil {
		t.Fatal(err)
	}
	// b extends it at +2m; a, a minute behind, expires it at +1m.
	if err := stB.Put(v1); err != nil {
		t.Fatal(err)
	}
	longer := v1
	longer.EndsAt = v1.EndsAt.Add(time.Hour)
	v2, err := stB.Add(longer, base.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Save(ctx, v2); err != nil {
		t.Fatal(err)
	}
	older, err := stA.Expire(v1.ID, base.Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	err = a.Save(ctx, older)
	if !errors.Is(err, ha.ErrSilenceOutdated) {
		t.Fatalf("save of a version updated before the stored one: %v, want ErrSilenceOutdated", err)
	}
	t.Logf("refused: %v", err)
	got, rev := stored(t, admin, v1.ID)
	if !got.UpdatedAt.Equal(v2.UpdatedAt) || !got.EndsAt.Equal(v2.EndsAt) {
		t.Errorf("etcd holds %+v, want b's version %+v", got, v2)
	}
	if local, _ := stA.Get(v1.ID); !local.UpdatedAt.Equal(v2.UpdatedAt) || !local.EndsAt.Equal(v2.EndsAt) {
		t.Errorf("a's store holds %+v after the refusal, want the stored version %+v", local, v2)
	}
	if s := a.Stats(); s.Refused != 1 {
		t.Errorf("a: %+v, want 1 refused", s)
	}

	// Saving what is stored writes nothing.
	if err := b.Save(ctx, v2); err != nil {
		t.Fatal(err)
	}
	if _, again := stored(t, admin, v1.ID); again != rev {
		t.Errorf("saving the stored version again wrote revision %d (was %d)", again, rev)
	}
	// The same UpdatedAt with other content: the last writer wins.
	tie := v2
	tie.Comment = "replacing two disks"
	if err := a.Save(ctx, tie); err != nil {
		t.Fatalf("save with an equal UpdatedAt: %v", err)
	}
	if got, _ := stored(t, admin, v1.ID); got.Comment != tie.Comment {
		t.Errorf("etcd holds comment %q, want the last writer's %q", got.Comment, tie.Comment)
	}
}

// Two replicas saving many versions of one silence at once, in any
// order: etcd ends with the one updated last, and every refusal is
// ErrSilenceOutdated.
func TestConcurrentSilenceSavesKeepTheLatest(t *testing.T) {
	ep := startEtcd(t)
	admin := newClient(t, ep)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	syncs := []*ha.SilenceSync{
		ha.NewSilenceSync(newClient(t, ep), "/test/", silences.NewStore(), nil),
		ha.NewSilenceSync(newClient(t, ep), "/test/", silences.NewStore(), nil),
	}
	first, err := silences.NewStore().Add(maintenance(t, "web-1"), base)
	if err != nil {
		t.Fatal(err)
	}
	const versions = 40
	order := rand.Perm(versions)
	var wg sync.WaitGroup
	var refused atomic.Int64
	for i, k := range order {
		v := first
		v.UpdatedAt = base.Add(time.Duration(k) * time.Second)
		v.Comment = fmt.Sprintf("version %d", k)
		wg.Go(func() {
			err := syncs[i%2].Save(ctx, v)
			switch {
			case errors.Is(err, ha.ErrSilenceOutdated):
				refused.Add(1)
			case err != nil:
				t.Errorf("version %d: %v", k, err)
			}
		})
	}
	wg.Wait()
	got, _ := stored(t, admin, first.ID)
	if want := fmt.Sprintf("version %d", versions-1); got.Comment != want {
		t.Errorf("etcd holds %q, want %q", got.Comment, want)
	}
	t.Logf("%d saves of one silence from two replicas at once: %d refused as outdated", versions, refused.Load())
}

// afterFirstGet is a KV whose first Get is followed by hook: changes made
// between a replica's load and the start of its watch.
type afterFirstGet struct {
	clientv3.KV
	done *atomic.Bool
	hook func()
}

func (k afterFirstGet) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := k.KV.Get(ctx, key, opts...)
	if err == nil && k.done.CompareAndSwap(false, true) {
		k.hook()
	}
	return resp, err
}

// etcd compacts past the revision a replica's watch starts from (a
// silence added and one deleted, then a compaction, between its load and
// its watch): the watch is refused, the replica reloads, and its store
// has the new silence and not the deleted one.
func TestSilenceSyncReloadsAfterCompaction(t *testing.T) {
	ep := startEtcd(t)
	admin := newClient(t, ep)
	other := startSilences(t, newClient(t, ep))
	gone := add(t, other, maintenance(t, "web-1"), base)
	var fresh silences.Silence
	cli := newClient(t, ep)
	cli.KV = afterFirstGet{KV: cli.KV, done: new(atomic.Bool), hook: func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s, err := other.st.Add(maintenance(t, "web-2"), base.Add(time.Minute))
		if err == nil {
			err = other.sync.Save(ctx, s)
		}
		if err == nil {
			err = other.sync.Delete(ctx, gone.ID)
		}
		var resp *clientv3.GetResponse
		if err == nil {
			resp, err = admin.Get(ctx, "/test/")
		}
		if err == nil {
			_, err = admin.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical())
		}
		if err != nil {
			t.Errorf("between load and watch: %v", err)
		}
		fresh = s
	}}
	r := startSilences(t, cli)
	waitFor(t, 5*time.Second, "the store caught up after the compaction", func() bool {
		return r.sync.Stats().Loads == 2 && lacks(r.st, gone.ID) && holds(r.st, fresh.ID, fresh.UpdatedAt)
	})
	if s := r.sync.Stats(); s.Failures != 1 {
		t.Errorf("%+v, want the compaction counted as 1 failure", s)
	}
	// And it watches again.
	s3 := add(t, other, maintenance(t, "web-3"), base.Add(2*time.Minute))
	waitFor(t, 5*time.Second, "a silence after the reload", func() bool { return holds(r.st, s3.ID, s3.UpdatedAt) })
}

// cutter is a TCP proxy to etcd that can cut every connection through it
// and refuse new ones: a replica cut off from etcd by the network.
type cutter struct {
	l      net.Listener
	target string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startCutter(t *testing.T, endpoint string) *cutter {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &cutter{l: l, target: strings.TrimPrefix(endpoint, "http://"), conns: map[net.Conn]bool{}}
	c.wg.Go(c.serve)
	t.Cleanup(func() { l.Close(); c.cut(); c.wg.Wait() })
	return c
}

func (c *cutter) URL() string { return "http://" + c.l.Addr().String() }

func (c *cutter) serve() {
	for {
		in, err := c.l.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", c.target)
		c.mu.Lock()
		if err != nil || c.down {
			c.mu.Unlock()
			in.Close()
			if out != nil {
				out.Close()
			}
			continue
		}
		c.conns[in], c.conns[out] = true, true
		c.mu.Unlock()
		pipe := func(dst, src net.Conn) {
			_, _ = io.Copy(dst, src)
			dst.Close()
			src.Close()
		}
		c.wg.Go(func() { pipe(in, out) })
		c.wg.Go(func() { pipe(out, in) })
	}
}

// cut closes every connection and refuses new ones until restore.
func (c *cutter) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.down = true
	for conn := range c.conns {
		conn.Close()
	}
	clear(c.conns)
}

func (c *cutter) restore() {
	c.mu.Lock()
	c.down = false
	c.mu.Unlock()
}

// A replica is cut off from etcd. Meanwhile another replica adds a
// silence and deletes one, and etcd compacts past what the cut-off
// replica's watch had seen: when the network is back, its watch cannot
// resume, it reloads, and its store has both changes. Cut off again, a
// silence made on it cannot be saved and is dropped once etcd answers (the
// store holds what etcd holds), and nothing else is lost.
func TestSilenceSyncAfterEtcdUnreachable(t *testing.T) {
	ep := startEtcd(t)
	admin := newClient(t, ep)
	link := startCutter(t, ep)
	a, b := startSilences(t, newClient(t, link.URL())), startSilences(t, newClient(t, ep))
	gone := add(t, b, maintenance(t, "web-1"), base)
	waitFor(t, 5*time.Second, "b's silence on a", func() bool { return holds(a.st, gone.ID, gone.UpdatedAt) })

	link.cut()
	cutAt := time.Now()
	fresh := add(t, b, maintenance(t, "web-2"), base.Add(time.Minute))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.sync.Delete(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	resp, err := admin.Get(ctx, "/test/")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	if !holds(a.st, gone.ID, gone.UpdatedAt) || !lacks(a.st, fresh.ID) {
		t.Fatal("a saw changes while cut off")
	}
	link.restore()
	took := waitFor(t, 10*time.Second, "a in step after the network is back", func() bool {
		return lacks(a.st, gone.ID) && holds(a.st, fresh.ID, fresh.UpdatedAt)
	})
	st := a.sync.Stats()
	t.Logf("cut off with a compaction: in step %v after the network was back (%v after the cut); %+v", took, time.Since(cutAt), st)
	if st.Failures < 1 || st.Loads < 2 {
		t.Errorf("%+v: want the broken watch counted and a reload", st)
	}

	link.cut()
	cutAt = time.Now()
	local, err := a.st.Add(maintenance(t, "web-3"), base.Add(2*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	sctx, scancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	err = a.sync.Save(sctx, local)
	scancel()
	if err == nil {
		t.Fatal("saved a silence with etcd unreachable")
	}
	t.Logf("save with etcd unreachable: %v", err)
	link.restore()
	took = waitFor(t, 10*time.Second, "a's unsaved silence dropped", func() bool {
		return lacks(a.st, local.ID) && holds(a.st, fresh.ID, fresh.UpdatedAt)
	})
	t.Logf("unsaved silence dropped %v after the network was back (%v after the cut); %+v", took, time.Since(cutAt), a.sync.Stats())
	after := add(t, b, maintenance(t, "web-4"), base.Add(3*time.Minute))
	waitFor(t, 5*time.Second, "a watches again", func() bool { return holds(a.st, after.ID, after.UpdatedAt) })
}

// Run returns promptly when its context is cancelled: while it watches,
// and while etcd cannot be reached (it is loading or waiting to retry),
// in which case it never reports synced.
func TestSilenceSyncStopsWhenCancelled(t *testing.T) {
	ep := startEtcd(t)
	r := startSilences(t, newClient(t, ep))
	waitFor(t, 5*time.Second, "synced", r.sync.Synced)
	if err := r.sync.Run(context.Background()); err == nil {
		t.Error("a second Run was accepted")
	}
	stopWithin(t, r, time.Second)

	// An endpoint nobody listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + l.Addr().String()
	l.Close()
	u := startSilences(t, newClient(t, dead))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	if err := u.sync.Save(ctx, maintenanceAt(t, "web-1")); err == nil {
		t.Error("saved with etcd unreachable")
	}
	cancel()
	if u.sync.Synced() {
		t.Error("synced with etcd unreachable")
	}
	stopWithin(t, u, time.Second)
}

func maintenanceAt(t *testing.T, host string) silences.Silence {
	s, err := silences.NewStore().Add(maintenance(t, host), base)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func stopWithin(t *testing.T, r *silenceReplica, within time.Duration) {
	t.Helper()
	start := time.Now()
	if err := r.stop(); err != nil {
		t.Errorf("Run returned %v", err)
	}
	if d := time.Since(start); d > within {
		t.Errorf("Run took %v to return after its context was cancelled", d)
	}
}
