package silences_test

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/silences"
)

// Each limit refuses the silence that passes it, names the limit, and
// leaves the store unchanged; a change of an existing silence is not one
// more.
func TestLimits(t *testing.T) {
	st := silences.NewStore()
	st.SetLimits(silences.Limits{MaxSilences: 2, MaxSizeBytes: 600, MaxDuration: 24 * time.Hour})
	a := must(st.Add(maintenance(), t0))
	must(st.Add(maintenance("host.mac=00:00:5e:00:00:02"), t0))

	_, err := st.Add(maintenance("host.mac=00:00:5e:00:00:03"), t0)
	if !errors.Is(err, silences.ErrTooMany) || !strings.Contains(err.Error(), "2 active and pending already, the limit is 2") {
		t.Errorf("third silence: %v, want ErrTooMany naming the limit", err)
	}
	// Changing one that exists is not one more.
	ext := a
	ext.EndsAt = t0.Add(3 * time.Hour)
	if _, err := st.Add(ext, t0); err != nil {
		t.Errorf("extending a silence at the count limit: %v", err)
	}
	// An expired silence frees its place.
	must(st.Expire(a.ID, t0.Add(time.Minute)))
	if _, err := st.Add(maintenance("host.mac=00:00:5e:00:00:03"), t0.Add(time.Minute)); err != nil {
		t.Errorf("after expiring one: %v", err)
	}

	// Creating and expiring in a loop stops at twice the limit: expired
	// silences are kept a day, and must not grow without bound.
	var loopErr error
	churn := silences.NewStoreWith(silences.Limits{MaxSilences: 2})
	for i := range 10 {
		s, err := churn.Add(maintenance(fmt.Sprintf("host.mac=00:00:5e:00:01:%02d", i)), t0.Add(time.Minute))
		if err != nil {
			loopErr = err
			break
		}
		must(churn.Expire(s.ID, t0.Add(time.Minute)))
	}
	if !errors.Is(loopErr, silences.ErrTooMany) || !strings.Contains(loopErr.Error(), "expired ones included") || len(churn.List()) != 4 {
		t.Errorf("create-and-expire loop: %v with %d kept, want ErrTooMany at 4 kept", loopErr, len(churn.List()))
	}

	big := maintenance("host.mac=00:00:5e:00:00:04")
	big.Comment = strings.Repeat("x", 600)
	if _, err := silences.NewStoreWith(silences.Limits{MaxSizeBytes: 600}).Add(big, t0); !errors.Is(err, silences.ErrTooBig) || !strings.Contains(err.Error(), "more than the limit of 600") {
		t.Errorf("big silence: %v, want ErrTooBig naming the limit", err)
	}

	long := maintenance("host.mac=00:00:5e:00:00:05")
	long.EndsAt = t0.Add(24*time.Hour + time.Second)
	lst := silences.NewStoreWith(silences.Limits{MaxDuration: 24 * time.Hour})
	if _, err := lst.Add(long, t0); !errors.Is(err, silences.ErrTooLong) || !strings.Contains(err.Error(), "24h0m1s, more than the limit of 24h0m0s") {
		t.Errorf("long silence: %v, want ErrTooLong naming the limit", err)
	}
	// A pending silence is measured from its start, a change from now.
	later := long
	later.StartsAt, later.EndsAt = t0.Add(48*time.Hour), t0.Add(72*time.Hour)
	p := must(lst.Add(later, t0))
	p.EndsAt = t0.Add(95 * time.Hour) // 23h01m from now, 47h from its start
	if _, err := lst.Add(p, t0.Add(72*time.Hour-time.Minute)); err != nil {
		t.Errorf("extending a silence by less than the limit from now: %v", err)
	}
	if n := len(lst.List()); n != 1 {
		t.Errorf("refused silences were stored: %d listed", n)
	}
}

// Prepare answers what Add would store and stores nothing; Add of its
// answer stores exactly that.
func TestPrepare(t *testing.T) {
	st := silences.NewStore()
	p := must(st.Prepare(maintenance(), t0))
	if p.ID == "" || !p.StartsAt.Equal(t0) || !p.UpdatedAt.Equal(t0) {
		t.Fatalf("prepared %+v", p)
	}
	if len(st.List()) != 0 {
		t.Fatal("Prepare stored the silence")
	}
	got := must(st.Add(p, t0))
	if got.ID != p.ID || !got.StartsAt.Equal(p.StartsAt) || !got.EndsAt.Equal(p.EndsAt) {
		t.Errorf("Add of a prepared silence changed it: %+v, prepared %+v", got, p)
	}
	e, changed, err := st.PrepareExpire(p.ID, t0.Add(time.Minute))
	if err != nil || !changed || !e.EndsAt.Equal(t0.Add(time.Minute)) {
		t.Fatalf("PrepareExpire: %+v %v %v", e, changed, err)
	}
	if s, _ := st.Get(p.ID); s.State(t0.Add(time.Minute)) != silences.StateActive {
		t.Error("PrepareExpire expired the silence")
	}
	must(st.Expire(p.ID, t0.Add(time.Minute)))
	if _, changed, _ := st.PrepareExpire(p.ID, t0.Add(2*time.Minute)); changed {
		t.Error("PrepareExpire of an expired silence says it changes")
	}
	if _, _, err := st.PrepareExpire("nosuch", t0); !errors.Is(err, silences.ErrNotFound) {
		t.Errorf("PrepareExpire of an unknown id: %v", err)
	}
}

// A silence that would match every alert of the rules is recognised by
// matching, whatever its spelling; one that leaves out any alert is not.
func TestMutesAll(t *testing.T) {
	spaces := []silences.AlertSpace{
		{Fixed: model.Labels{"alertname": "EtcdMemberDown", "severity": "critical", "team": "storage"}, Present: []string{"host.mac"}},
		{Fixed: model.Labels{"alertname": "EtcdNoLeader", "severity": "high"}},
		{Fixed: model.Labels{"alertname": "DiskFull", "severity": "medium", "team": "storage"}, Present: []string{"host.mac"}},
	}
	for _, tc := range []struct {
		matchers []string
		all      bool
	}{
		{[]string{`alertname=~".+"`}, true},
		{[]string{`alertname=~".*"`}, true},
		{[]string{`alertname!=""`}, true},
		{[]string{`alertname!~"x"`}, true},
		{[]string{`alertname=~"Etcd.*|Disk.*"`}, true},
		{[]string{`severity=~"critical|high|medium|low|info"`}, true},
		{[]string{`severity!="low"`}, true},
		{[]string{`alertname=~".+"`, `host=~".*"`}, true},
		{[]string{`host!="__impossible__"`}, true},
		{[]string{`host=~".*"`, `cluster!~"dev"`}, true},
		{[]string{`alertname!="EtcdNoLeader"`}, false},
		{[]string{`alertname="EtcdMemberDown"`}, false},
		{[]string{`severity=~"critical|high"`}, false},
		{[]string{`team="storage"`}, false},
		{[]string{`alertname=~".+"`, `host="m1"`}, false},
		{[]string{`host=~"m.*"`}, false},
		{[]string{`host=~".+"`}, false}, // EtcdNoLeader alerts have no host
		{[]string{`host.mac=~".+"`}, false},
		{[]string{`host.mac=~"[0-9a-f]+"`}, false},
	} {
		s := maintenance(tc.matchers...)
		if got := s.MutesAll(spaces); got != tc.all {
			t.Errorf("%v: MutesAll %v, want %v", tc.matchers, got, tc.all)
		}
	}
	// A label every alert has, with any value: =~".+" and !="" restrict
	// nothing there.
	segmented := []silences.AlertSpace{spaces[0], spaces[2]}
	for _, m := range []string{`host.mac=~".+"`, `host.mac!=""`} {
		if !maintenance(m).MutesAll(segmented) {
			t.Errorf("%s on rules that all segment by host.mac: not recognised as muting all", m)
		}
	}
	for _, m := range []string{`host.mac="02:00:00:00:00:01"`, `host.mac=~"0.*"`, `host.mac=~"[0-9a-f:]+"`, `host.mac!~".*probe.*"`} {
		if maintenance(m).MutesAll(segmented) {
			t.Errorf("%s on rules that all segment by host.mac: taken as muting all", m)
		}
	}
	if maintenance(`alertname=~".+"`).MutesAll(nil) {
		t.Error("MutesAll with no rules is true")
	}
}

// A silence expired at the instant it starts (a pending one expired
// early) can be restored: a restart must not refuse what Expire made.
func TestExpiredAtStartRestores(t *testing.T) {
	st := silences.NewStore()
	s := must(st.Add(maintenance(), t0))
	e := must(st.Expire(s.ID, t0))
	if !e.EndsAt.Equal(e.StartsAt) {
		t.Fatalf("expired at start: %v .. %v", e.StartsAt, e.EndsAt)
	}
	other := must(st.Add(maintenance("host.mac=00:00:5e:00:00:02"), t0))
	again := silences.NewStore()
	if err := again.Replace(st.List()); err != nil {
		t.Fatalf("Replace: %v", err)
	}
	if err := again.Put(e); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got, ok := again.Get(other.ID); !ok || got.State(t0) != silences.StateActive {
		t.Error("the other silence was not restored")
	}
	bad := e
	bad.EndsAt = bad.StartsAt.Add(-time.Second)
	if err := again.Put(bad); err == nil {
		t.Error("Put of a silence ending before it starts: no error")
	}
}

// Adds racing for the last places never pass the count limit: the count
// and the insert are one step.
func TestLimitUnderConcurrentAdds(t *testing.T) {
	// More Ps than cores make the Adds interleave even on a small machine.
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(8))
	st := silences.NewStoreWith(silences.Limits{MaxSilences: 10})
	var wg sync.WaitGroup
	var mu sync.Mutex
	refused := 0
	start := make(chan struct{})
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := st.Add(maintenance(fmt.Sprintf("host.mac=00:00:5e:00:%02x:%02x", i/256, i%256)), t0)
			if errors.Is(err, silences.ErrTooMany) {
				mu.Lock()
				refused++
				mu.Unlock()
			} else if err != nil {
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if n := len(st.List()); n != 10 || refused != 190 {
		t.Errorf("%d stored, %d refused; want 10 and 190", n, refused)
	}
}
