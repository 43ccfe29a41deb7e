package ha_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/vigil-alerts/vigil/engine"
	"github.com/vigil-alerts/vigil/ha"
	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/notifiers"
)

// The bounds docs/ha.md promises: no txn request over 1 MiB, no value
// over 256 KiB.
const (
	txnBound   = 1 << 20
	valueBound = 256 << 10
)

// startEtcd starts a one-member etcd that refuses any request over
// txnBound (plus 1 KiB for the request header etcd counts with it), so a
// txn over the bound fails the test instead of passing under etcd's
// default 1.5 MiB.
func startEtcd(t *testing.T) string {
	t.Helper()
	cfg := embed.NewConfig()
	cfg.Name = "solo"
	cfg.Dir = t.TempDir()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.TickMs, cfg.ElectionMs = 10, 100
	cfg.MaxRequestBytes = txnBound + 1024
	any := url.URL{Scheme: "http", Host: "127.0.0.1:0"}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{any}, []url.URL{any}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{any}, []url.URL{any}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		t.Fatal("etcd not ready")
	}
	return "http://" + e.Clients[0].Addr().String()
}

func newClient(t *testing.T, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// leadAlone runs an elector on its own client until the test ends and
// returns it once it leads.
func leadAlone(t *testing.T, endpoint string) *ha.Elector {
	t.Helper()
	el, err := ha.NewElector(newClient(t, endpoint), ha.ElectorOptions{Name: "solo", Prefix: "/test/", TTL: 5})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = el.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, 10*time.Second, "leading", el.Leading)
	return el
}

// hostDown is the alert of a per-host rule for host i, with the labels
// and annotations such a rule carries (about 900 bytes of JSON).
func hostDown(i int) model.Alert {
	host := fmt.Sprintf("web-%04d.fra1.example.net", i)
	seg := model.Labels{"host": host}
	return model.Alert{
		Fingerprint: model.Fingerprint("HostDown", seg),
		Rule:        "HostDown", Group: "hosts", Severity: "critical",
		Description: "A host stopped answering its node exporter.",
		State:       model.StateFiring,
		Labels: model.Labels{"alertname": "HostDown", "severity": "critical", "host": host, "datacenter": "fra1",
			"env": "prod", "team": "infra", "service": "web", "instance": host + ":9100"},
		Annotations: map[string]string{
			"summary":     host + " has not answered for 2 minutes",
			"description": fmt.Sprintf("node_exporter on %s (rack r%02d) has been unreachable since the last two scrapes; check the host's power and network, then the exporter's systemd unit.", host, i%40),
			"runbook_url": "https://runbooks.example.net/infra/host-down?host=" + host,
		},
		Segment:    seg,
		Notify:     []string{"pager"},
		ActiveAt:   base.Add(-5 * time.Minute),
		FiredAt:    base.Add(-3 * time.Minute),
		LastEvalAt: base,
	}
}

// hostsGroup is the delivery record of HostDown firing on n hosts, all in
// one group (group_by: [env]), as Dispatcher.ExportState gives it.
func hostsGroup(n int) notifiers.DeliveryRecord {
	r := notifiers.DeliveryRecord{Channel: "pager", Group: "HostDown\xffprod", LastSent: base, NextFlush: base.Add(5 * time.Minute)}
	for i := range n {
		r.Sent = append(r.Sent, hostDown(i))
	}
	sort.Slice(r.Sent, func(i, j int) bool { return r.Sent[i].Fingerprint < r.Sent[j].Fingerprint })
	return r
}

func smallGroup() notifiers.DeliveryRecord {
	a := hostDown(0)
	a.Rule, a.Fingerprint = "DiskFull", model.Fingerprint("DiskFull", a.Segment)
	return notifiers.DeliveryRecord{Channel: "pager", Group: "DiskFull", Sent: []model.Alert{a}, LastSent: base}
}

// sameJSON compares what Load returned with what was saved, as etcd holds
// them (JSON: times without monotonic readings).
func sameJSON(t *testing.T, what string, got, want any) {
	t.Helper()
	g, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	w, err := json.Marshal(want)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(g, w) {
		i := 0
		for i < len(g) && i < len(w) && g[i] == w[i] {
			i++
		}
		lo := max(0, i-200)
		t.Errorf("%s: got %d bytes of JSON, want %d; first difference at %d:\ngot  ...%s\nwant ...%s",
			what, len(g), len(w), i, g[lo:min(len(g), i+200)], w[lo:min(len(w), i+200)])
	}
}

func minus(a, b ha.WriteStats) ha.WriteStats {
	return ha.WriteStats{Puts: a.Puts - b.Puts, Deletes: a.Deletes - b.Deletes, Txns: a.Txns - b.Txns, Bytes: a.Bytes - b.Bytes}
}

// deliveryKeys returns every key under the deliveries prefix with the size
// of its value.
func deliveryKeys(t *testing.T, cli *clientv3.Client) map[string]int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/test/deliveries/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, kv := range resp.Kvs {
		out[string(kv.Key)] = len(kv.Value)
	}
	return out
}

// A group of 3,000 alerts (one rule firing on 3,000 hosts, one channel) is
// shared: it is saved within etcd's request limit, another replica loads
// exactly what was saved, a change to one alert writes a few keys, and a
// group that shrinks leaves nothing behind.
func TestLargeGroupIsShared(t *testing.T) {
	ep := startEtcd(t)
	term := leadAlone(t, ep).Term()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st := ha.NewState(newClient(t, ep), "/test/")
	recs := []notifiers.DeliveryRecord{smallGroup(), hostsGroup(3000)}
	raw, _ := json.Marshal(recs[1])
	if per := len(raw) / 3000; per < 500 || per > 1500 {
		t.Fatalf("%d bytes of JSON per alert; the test wants realistic alerts of several hundred bytes", per)
	}

	if err := st.SaveDeliveries(ctx, term, recs); err != nil {
		t.Fatalf("save of a %d-byte group: %v", len(raw), err)
	}
	initial := st.Stats()
	keys := deliveryKeys(t, newClient(t, ep))
	for k, n := range keys {
		if n > valueBound {
			t.Errorf("%s holds %d bytes, over the %d-byte bound", k, n, valueBound)
		}
	}
	t.Logf("3,000 alerts (%d bytes of JSON): %+v, %d keys", len(raw), initial, len(keys))

	other := ha.NewState(newClient(t, ep), "/test/")
	_, got, err := other.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "loaded on another client", got, recs)
	// The next leader's first save of what it loaded writes nothing.
	if err := other.SaveDeliveries(ctx, term, got); err != nil {
		t.Fatal(err)
	}
	if s := other.Stats(); s != (ha.WriteStats{}) {
		t.Errorf("saving what was loaded wrote %+v", s)
	}

	// One host recovers and the group's resolution message goes out.
	changed := recs[1]
	changed.Sent = append([]model.Alert(nil), recs[1].Sent...)
	changed.Sent[1234].State = model.StateResolved
	changed.Sent[1234].ResolvedAt = base.Add(time.Minute)
	changed.LastSent = base.Add(time.Minute)
	recs[1] = changed
	before := st.Stats()
	if err := st.SaveDeliveries(ctx, term, recs); err != nil {
		t.Fatal(err)
	}
	one := minus(st.Stats(), before)
	t.Logf("one alert resolved: %+v", one)
	// Its part under a new name, the head naming it, the old part gone.
	if one.Puts != 2 || one.Deletes != 1 || one.Bytes > 64<<10 {
		t.Errorf("a change to one alert of 3,000 wrote %+v, want 2 puts (part and head) and 1 delete, under 64 KiB", one)
	}
	if _, got, err = ha.NewState(newClient(t, ep), "/test/").Load(ctx); err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "loaded after one alert resolved", got, recs)

	// 2,990 hosts recover and are forgotten.
	recs[1].Sent = recs[1].Sent[:10]
	before = st.Stats()
	if err := st.SaveDeliveries(ctx, term, recs); err != nil {
		t.Fatal(err)
	}
	t.Logf("shrunk to 10 alerts: %+v", minus(st.Stats(), before))
	_, got, err = ha.NewState(newClient(t, ep), "/test/").Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || len(got[1].Sent) != 10 {
		t.Fatalf("after shrinking: %d records, want 2 with 10 alerts in the second", len(got))
	}
	sameJSON(t, "loaded after shrinking", got, recs)
	if keys := deliveryKeys(t, newClient(t, ep)); len(keys) != 2 {
		t.Errorf("after shrinking to 10 alerts etcd holds %d delivery keys, want 2 (one per group): %v", len(keys), keys)
	}

	// Both groups are over.
	if err := st.SaveDeliveries(ctx, term, nil); err != nil {
		t.Fatal(err)
	}
	if keys := deliveryKeys(t, newClient(t, ep)); len(keys) != 0 {
		t.Errorf("after every group ended etcd holds %v", keys)
	}
}

// revokeAfterTxn is a KV whose first Txn commit after arm() is followed by
// revoking the leader's lease: the leader is deposed between two txns of
// one save.
type revokeAfterTxn struct {
	clientv3.KV
	armed  *atomic.Bool
	revoke func()
}

func (k revokeAfterTxn) Txn(ctx context.Context) clientv3.Txn {
	return hookTxn{Txn: k.KV.Txn(ctx), k: k}
}

type hookTxn struct {
	clientv3.Txn
	k revokeAfterTxn
}

func (h hookTxn) If(cs ...clientv3.Cmp) clientv3.Txn { return hookTxn{h.Txn.If(cs...), h.k} }
func (h hookTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	return hookTxn{h.Txn.Then(ops...), h.k}
}
func (h hookTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	return hookTxn{h.Txn.Else(ops...), h.k}
}

func (h hookTxn) Commit() (*clientv3.TxnResponse, error) {
	resp, err := h.Txn.Commit()
	if err == nil && h.k.armed.CompareAndSwap(true, false) {
		h.k.revoke()
	}
	return resp, err
}

// A leader deposed in the middle of a save that takes several txns has
// the rest refused; the next leader loads the group as it was before that
// save, whole, and its first save removes what the refused one left.
func TestDeposedDuringMultiTxnSave(t *testing.T) {
	ep := startEtcd(t)
	el := leadAlone(t, ep)
	term := el.Term()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	admin := newClient(t, ep)
	cli := newClient(t, ep)
	var armed atomic.Bool
	cli.KV = revokeAfterTxn{KV: cli.KV, armed: &armed, revoke: func() {
		if _, err := admin.Revoke(ctx, term.Lease()); err != nil {
			t.Errorf("revoke: %v", err)
		}
	}}
	st := ha.NewState(cli, "/test/")
	v1 := []notifiers.DeliveryRecord{hostsGroup(3000)}
	if err := st.SaveDeliveries(ctx, term, v1); err != nil {
		t.Fatal(err)
	}

	// Every host recovers at once: every part changes, several txns.
	v2 := hostsGroup(3000)
	for i := range v2.Sent {
		v2.Sent[i].State = model.StateResolved
	}
	v2.LastSent = base.Add(time.Minute)
	armed.Store(true)
	before := st.Stats()
	err := st.SaveDeliveries(ctx, term, []notifiers.DeliveryRecord{v2})
	if !errors.Is(err, ha.ErrNotLeader) {
		t.Fatalf("save by a leader deposed after its first txn: %v, want ErrNotLeader", err)
	}
	t.Logf("refused save: %+v committed before the refusal", minus(st.Stats(), before))
	if term.Context().Err() == nil {
		t.Error("the deposed leader's term goes on")
	}

	next := ha.NewState(newClient(t, ep), "/test/")
	_, got, err := next.Load(ctx)
	if err != nil {
		t.Fatalf("load after an interrupted save: %v", err)
	}
	sameJSON(t, "loaded after an interrupted save", got, v1)

	waitFor(t, 10*time.Second, "a new term", func() bool { n := el.Term(); return n != nil && n != term })
	left := len(deliveryKeys(t, admin))
	if err := next.SaveDeliveries(ctx, el.Term(), got); err != nil {
		t.Fatal(err)
	}
	cleaned := next.Stats()
	t.Logf("next leader's first save: %+v (%d keys before)", cleaned, left)
	if cleaned.Puts != 0 || int(cleaned.Deletes) >= left || cleaned.Deletes == 0 {
		t.Errorf("next leader's first save wrote %+v with %d keys in etcd, want only deletes of the refused save's parts", cleaned, left)
	}
	if _, again, err := ha.NewState(admin, "/test/").Load(ctx); err != nil {
		t.Fatal(err)
	} else {
		sameJSON(t, "loaded after the cleanup", again, v1)
	}
}

// A group of a channel with group_by is keyed by the rule and the label
// values with 0xff between them, which JSON cannot carry: the next leader
// still gets the group under its own key, so the dispatcher's live group
// is the restored one and nobody is paged again.
func TestGroupByGroupLoadsUnderItsKey(t *testing.T) {
	ep := startEtcd(t)
	term := leadAlone(t, ep).Term()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rec := smallGroup()
	rec.Group = "DiskFull\xffprod\xfffra1"
	if err := ha.NewState(newClient(t, ep), "/test/").SaveDeliveries(ctx, term, []notifiers.DeliveryRecord{rec}); err != nil {
		t.Fatal(err)
	}
	next := ha.NewState(newClient(t, ep), "/test/")
	_, got, err := next.Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Group != rec.Group || got[0].Channel != rec.Channel {
		t.Fatalf("loaded %+v, want the group %q of channel %q", got, rec.Group, rec.Channel)
	}
	if err := next.SaveDeliveries(ctx, term, got); err != nil {
		t.Fatal(err)
	}
	if s := next.Stats(); s != (ha.WriteStats{}) {
		t.Errorf("the next leader's save of the group it loaded wrote %+v", s)
	}
}

// A record too large for one etcd value even on its own is named in the
// error; the other records of the save are written.
func TestRecordTooLargeNamesItsKey(t *testing.T) {
	ep := startEtcd(t)
	term := leadAlone(t, ep).Term()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st := ha.NewState(newClient(t, ep), "/test/")
	huge := strings.Repeat("stack trace line\n", 20000) // 340 KB

	fine := engine.AlertRecord{Rule: "Fine", Fingerprint: "f1", State: "firing", ActiveAt: base}
	big := engine.AlertRecord{Rule: "Crash", Fingerprint: "f2", State: "firing", ActiveAt: base, Annotations: map[string]string{"log": huge}}
	err := st.SaveAlerts(ctx, term, []engine.AlertRecord{big, fine})
	if !errors.Is(err, ha.ErrTooLarge) || !strings.Contains(err.Error(), "/test/alerts/Crash/f2") {
		t.Errorf("save of a 340 KB alert record: %v, want ErrTooLarge naming /test/alerts/Crash/f2", err)
	}
	t.Logf("alert record: %v", err)

	a := hostDown(1)
	a.Annotations["log"] = huge
	bigGroup := notifiers.DeliveryRecord{Channel: "pager", Group: "Crash", Sent: []model.Alert{a}}
	fineGroup := smallGroup()
	err = st.SaveDeliveries(ctx, term, []notifiers.DeliveryRecord{bigGroup, fineGroup})
	if !errors.Is(err, ha.ErrTooLarge) || !strings.Contains(err.Error(), "/test/deliveries/pager/Crash: alert "+a.Fingerprint) {
		t.Errorf("save of a group with a 340 KB alert: %v, want ErrTooLarge naming the group's key and the alert", err)
	}
	t.Logf("delivery record: %v", err)

	alerts, deliveries, err := ha.NewState(newClient(t, ep), "/test/").Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	sameJSON(t, "alert records", alerts, []engine.AlertRecord{fine})
	sameJSON(t, "delivery records", deliveries, []notifiers.DeliveryRecord{fineGroup})
}
