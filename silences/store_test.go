package silences_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/silences"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func matchers(ss ...string) []silences.Matcher {
	out := make([]silences.Matcher, len(ss))
	for i, s := range ss {
		out[i] = must(silences.ParseMatcher(s))
	}
	return out
}

// maintenance is the silence of the package doc: one host, two hours.
func maintenance(m ...string) silences.Silence {
	if len(m) == 0 {
		m = []string{"host.mac=00:00:5e:00:00:01"}
	}
	return silences.Silence{Matchers: matchers(m...), EndsAt: t0.Add(2 * time.Hour),
		CreatedBy: "alice", Comment: "replacing disk"}
}

func TestValidate(t *testing.T) {
	good := maintenance()
	good.StartsAt = t0
	if err := good.Validate(); err != nil {
		t.Fatalf("good silence: %v", err)
	}
	bad := func(f func(*silences.Silence)) silences.Silence {
		s := good
		s.Matchers = slices.Clone(s.Matchers)
		f(&s)
		return s
	}
	for _, tc := range []struct {
		name string
		s    silences.Silence
		want []string // each must appear
	}{
		{"no matchers", bad(func(s *silences.Silence) { s.Matchers = nil }), []string{"matchers: at least one"}},
		{"all match empty", bad(func(s *silences.Silence) { s.Matchers = matchers(`host=~".*"`) }), []string{"matchers: every matcher matches the empty string"}},
		{"all match empty, several", bad(func(s *silences.Silence) { s.Matchers = matchers(`cluster!=dev`, `host=""`) }), []string{"matchers: every matcher matches the empty string"}},
		{"bad name", bad(func(s *silences.Silence) {
			s.Matchers = append(s.Matchers, silences.Matcher{Name: "a b", Op: "=", Value: "x"})
		}),
			[]string{`matchers[1]`, `label name "a b" is not valid`}},
		{"bad op", bad(func(s *silences.Silence) { s.Matchers[0].Op = "==" }), []string{`matchers[0]`, `operator "=="`}},
		{"bad regex", bad(func(s *silences.Silence) {
			s.Matchers = append(s.Matchers, silences.Matcher{Name: "host", Op: "=~", Value: "(["})
		}), []string{`matchers[1]`, "regex"}},
		{"no end", bad(func(s *silences.Silence) { s.EndsAt = time.Time{} }), []string{"ends_at: required"}},
		{"ends before start", bad(func(s *silences.Silence) { s.EndsAt = s.StartsAt }), []string{"ends_at:", "not after starts_at"}},
		{"no author", bad(func(s *silences.Silence) { s.CreatedBy = " " }), []string{"created_by: required"}},
		{"no comment", bad(func(s *silences.Silence) { s.Comment = "" }), []string{"comment: required"}},
		{"everything at once", silences.Silence{StartsAt: t0, EndsAt: t0},
			[]string{"matchers:", "ends_at:", "created_by:", "comment:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Validate()
			if err == nil {
				t.Fatal("valid")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	// One matcher that needs a value is enough.
	ok := bad(func(s *silences.Silence) { s.Matchers = matchers(`host=~".*"`, `cluster=prod`) })
	if err := ok.Validate(); err != nil {
		t.Errorf("host=~.* with cluster=prod: %v", err)
	}
}

func TestState(t *testing.T) {
	s := silences.Silence{StartsAt: t0, EndsAt: t0.Add(time.Hour)}
	for _, tc := range []struct {
		at   time.Time
		want string
	}{
		{t0.Add(-time.Nanosecond), "pending"},
		{t0, "active"}, // StartsAt inclusive
		{t0.Add(time.Hour - time.Nanosecond), "active"},
		{t0.Add(time.Hour), "expired"}, // EndsAt exclusive
		{t0.Add(2 * time.Hour), "expired"},
	} {
		if got := s.State(tc.at); got != tc.want {
			t.Errorf("State(%s) = %s, want %s", tc.at, got, tc.want)
		}
	}
}

func TestSilenceJSONRoundTrip(t *testing.T) {
	st := silences.NewStore()
	s, err := st.Add(maintenance(`host.mac=~"00:00:5e:.*"`, `cluster!=dev`), t0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{`"id"`, `"matchers"`, `"starts_at"`, `"ends_at"`, `"created_by"`, `"comment"`, `"updated_at"`} {
		if !strings.Contains(string(b), k) {
			t.Errorf("JSON %s lacks %s", b, k)
		}
	}
	var back silences.Silence
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.ID != s.ID || !back.StartsAt.Equal(s.StartsAt) || !back.EndsAt.Equal(s.EndsAt) ||
		back.CreatedBy != s.CreatedBy || back.Comment != s.Comment || !back.UpdatedAt.Equal(s.UpdatedAt) {
		t.Errorf("round trip: %+v, want %+v", back, s)
	}
	for i := range back.Matchers {
		if back.Matchers[i].String() != s.Matchers[i].String() || !silences.Compiled(back.Matchers[0]) {
			t.Errorf("matcher %d: %s", i, back.Matchers[i])
		}
	}
	if !back.Matches(model.Labels{"host.mac": "00:00:5e:00:00:07", "cluster": "prod"}) {
		t.Errorf("unmarshalled silence does not match")
	}
	// It can be restored as it is.
	other := silences.NewStore()
	if err := other.Put(back); err != nil {
		t.Fatal(err)
	}
	if got, _ := other.Get(s.ID); !reflect.DeepEqual(got.Matchers, back.Matchers) {
		t.Errorf("Put/Get changed the matchers")
	}
}

var idPattern = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestAdd(t *testing.T) {
	st := silences.NewStore()
	s, err := st.Add(maintenance(), t0)
	if err != nil {
		t.Fatal(err)
	}
	if !idPattern.MatchString(s.ID) {
		t.Errorf("ID %q is not 16 hex digits", s.ID)
	}
	if !s.StartsAt.Equal(t0) || !s.UpdatedAt.Equal(t0) {
		t.Errorf("StartsAt %s UpdatedAt %s, want both %s", s.StartsAt, s.UpdatedAt, t0)
	}
	if got, ok := st.Get(s.ID); !ok || got.ID != s.ID {
		t.Errorf("Get(%s) = %+v, %v", s.ID, got, ok)
	}
	if s2, _ := st.Add(maintenance(), t0); s2.ID == s.ID {
		t.Errorf("two silences got the same ID")
	}

	// A start in the past is moved to now; one in the future is kept.
	past := maintenance()
	past.StartsAt = t0.Add(-time.Hour)
	if got, err := st.Add(past, t0); err != nil || !got.StartsAt.Equal(t0) {
		t.Errorf("StartsAt in the past: %s, %v", got.StartsAt, err)
	}
	future := maintenance()
	future.StartsAt = t0.Add(10 * time.Minute)
	if got, err := st.Add(future, t0); err != nil || !got.StartsAt.Equal(future.StartsAt) || got.State(t0) != "pending" {
		t.Errorf("StartsAt in the future: %+v, %v", got, err)
	}

	// Refused: EndsAt not after now; invalid.
	late := maintenance()
	if _, err := st.Add(late, t0.Add(2*time.Hour)); err == nil || !strings.Contains(err.Error(), "ends_at") {
		t.Errorf("EndsAt == now: %v", err)
	}
	v := st.Version()
	if _, err := st.Add(silences.Silence{}, t0); err == nil {
		t.Errorf("empty silence accepted")
	}
	if st.Version() != v {
		t.Errorf("a refused Add changed the version")
	}

	// Changing a silence by ID: extend it; its start stays.
	ext := s
	ext.StartsAt = time.Time{}
	ext.EndsAt = t0.Add(4 * time.Hour)
	got, err := st.Add(ext, t0.Add(time.Hour))
	if err != nil || got.ID != s.ID || !got.StartsAt.Equal(t0) || !got.EndsAt.Equal(ext.EndsAt) || !got.UpdatedAt.Equal(t0.Add(time.Hour)) {
		t.Errorf("extend: %+v, %v", got, err)
	}
	ext.StartsAt = t0 // the same start, given explicitly, is kept too
	if got, err := st.Add(ext, t0.Add(time.Hour)); err != nil || !got.StartsAt.Equal(t0) {
		t.Errorf("extend with its StartsAt: %+v, %v", got, err)
	}
	// An expired one cannot be changed.
	if _, err := st.Expire(s.ID, t0.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	ext.EndsAt = t0.Add(5 * time.Hour)
	if _, err := st.Add(ext, t0.Add(3*time.Hour)); !errors.Is(err, silences.ErrExpired) {
		t.Errorf("changing an expired silence: %v, want ErrExpired", err)
	}
	// A caller-chosen ID is kept.
	named := maintenance()
	named.ID = "maint-42"
	if got, err := st.Add(named, t0); err != nil || got.ID != "maint-42" {
		t.Errorf("caller ID: %+v, %v", got, err)
	}
}

// TestAddOwnsItsCopy: changing the caller's silence (or a matcher's Value
// after ParseMatcher) does not change the stored one.
func TestAddOwnsItsCopy(t *testing.T) {
	st := silences.NewStore()
	in := maintenance(`host=~"web-.*"`)
	s, err := st.Add(in, t0)
	if err != nil {
		t.Fatal(err)
	}
	in.Matchers[0].Value = "db-.*"
	s.Matchers[0].Value = "db-.*"
	ls := model.Labels{"host": "web-1"}
	if ids := st.Mutes(ls, t0); len(ids) != 1 {
		t.Errorf("stored silence changed through the caller's copy")
	}
	// A matcher whose Value was changed by hand is compiled afresh.
	in.ID = ""
	s2, err := st.Add(in, t0)
	if err != nil {
		t.Fatal(err)
	}
	if ids := st.Mutes(model.Labels{"host": "db-1"}, t0); !slices.Equal(ids, []string{s2.ID}) {
		t.Errorf("Mutes(db-1) = %v, want [%s]", ids, s2.ID)
	}
}

func TestExpire(t *testing.T) {
	st := silences.NewStore()
	active := must(st.Add(maintenance(), t0))
	p := maintenance()
	p.StartsAt = t0.Add(time.Hour)
	pending := must(st.Add(p, t0))

	now := t0.Add(10 * time.Minute)
	got, err := st.Expire(active.ID, now)
	if err != nil || !got.EndsAt.Equal(now) || !got.StartsAt.Equal(t0) || !got.UpdatedAt.Equal(now) || got.State(now) != "expired" {
		t.Errorf("Expire(active) = %+v, %v", got, err)
	}
	got, err = st.Expire(pending.ID, now)
	if err != nil || !got.EndsAt.Equal(now) || !got.StartsAt.Equal(now) || got.State(now) != "expired" {
		t.Errorf("Expire(pending) = %+v, %v", got, err)
	}
	v := st.Version()
	again, err := st.Expire(active.ID, now.Add(time.Hour))
	if err != nil || !again.EndsAt.Equal(now) || !again.UpdatedAt.Equal(now) || st.Version() != v {
		t.Errorf("Expire(expired) = %+v, %v; version %d -> %d", again, err, v, st.Version())
	}
	if _, err := st.Expire("nope", now); !errors.Is(err, silences.ErrNotFound) {
		t.Errorf("Expire(unknown) = %v, want ErrNotFound", err)
	}
	if ids := st.Mutes(model.Labels{"host.mac": "00:00:5e:00:00:01"}, now); ids != nil {
		t.Errorf("Mutes after Expire = %v", ids)
	}
}

func TestListOrder(t *testing.T) {
	st := silences.NewStore()
	add := func(id string, start, end time.Duration) {
		s := maintenance()
		s.ID, s.StartsAt, s.EndsAt = id, t0.Add(start), t0.Add(end)
		if err := st.Put(s); err != nil {
			t.Fatal(err)
		}
	}
	add("exp-old", -5*time.Hour, -3*time.Hour)
	add("exp-new", -5*time.Hour, -time.Hour)
	add("exp-new-b", -5*time.Hour, -time.Hour)
	add("act-late", -time.Hour, 3*time.Hour)
	add("act-soon", -time.Hour, time.Hour)
	add("pend", time.Hour, 2*time.Hour)
	add("pend-b", time.Hour, 2*time.Hour)
	add("ends-now", -time.Hour, 0) // expired at t0: EndsAt is exclusive
	want := []string{"act-soon", "pend", "pend-b", "act-late", "ends-now", "exp-new", "exp-new-b", "exp-old"}
	if got := ids(st.ListAt(t0)); !slices.Equal(got, want) {
		t.Errorf("ListAt = %v, want %v", got, want)
	}
	st.Mutes(model.Labels{}, t0) // the store learns the time from its use
	if got := ids(st.List()); !slices.Equal(got, want) {
		t.Errorf("List = %v, want %v", got, want)
	}
}

func ids(ss []silences.Silence) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = s.ID
	}
	return out
}

func TestMutes(t *testing.T) {
	st := silences.NewStore()
	put := func(id string, start time.Duration, m ...string) {
		s := maintenance(m...)
		s.ID, s.StartsAt = id, t0.Add(start)
		if err := st.Put(s); err != nil {
			t.Fatal(err)
		}
	}
	put("host1", 0, "host.mac=00:00:5e:00:00:01")
	put("host1-etcd", 0, "alertname=~Etcd.*", "host.mac=00:00:5e:00:00:01")
	put("prod-not-etcd", 0, "cluster=prod", `alertname!~"Etcd.*"`)
	put("regex-only", 0, `host.mac=~"00:00:5e:00:00:0[12]"`)
	put("later", 10*time.Minute, "host.mac=00:00:5e:00:00:02")
	put("no-rack", 0, `rack=""`, "cluster=prod") // indexed on cluster, not on the empty value

	etcd1 := model.Labels{"alertname": "EtcdMemberUnreachable", "host.mac": "00:00:5e:00:00:01", "cluster": "prod", "rack": "r1"}
	disk2 := model.Labels{"alertname": "DiskFull", "host.mac": "00:00:5e:00:00:02", "cluster": "prod"}
	other := model.Labels{"alertname": "EtcdMemberUnreachable", "host.mac": "00:00:5e:00:00:09", "cluster": "staging"}
	for _, tc := range []struct {
		ls   model.Labels
		at   time.Time
		want []string
	}{
		{etcd1, t0, []string{"host1", "host1-etcd", "regex-only"}},
		{disk2, t0, []string{"no-rack", "prod-not-etcd", "regex-only"}},
		{disk2, t0.Add(10 * time.Minute), []string{"later", "no-rack", "prod-not-etcd", "regex-only"}},
		{other, t0, nil},
		{etcd1, t0.Add(-time.Second), nil},  // all pending
		{etcd1, t0.Add(2 * time.Hour), nil}, // all expired (EndsAt exclusive)
		{model.Labels{}, t0, nil},           // no labels
		{model.Labels{"cluster": "prod"}, t0, []string{"no-rack", "prod-not-etcd"}},
	} {
		if got := st.Mutes(tc.ls, tc.at); !slices.Equal(got, tc.want) {
			t.Errorf("Mutes(%v, %s) = %v, want %v", tc.ls, tc.at.Sub(t0), got, tc.want)
		}
	}
	// Overwriting re-indexes: host1 now mutes host 09 instead.
	s, _ := st.Get("host1")
	s.Matchers = matchers("host.mac=00:00:5e:00:00:09")
	if err := st.Put(s); err != nil {
		t.Fatal(err)
	}
	if got := st.Mutes(other, t0); !slices.Equal(got, []string{"host1"}) {
		t.Errorf("after overwrite: Mutes(other) = %v", got)
	}
	if got := st.Mutes(etcd1, t0); slices.Contains(got, "host1") {
		t.Errorf("after overwrite: host1 still mutes host 01: %v", got)
	}
	st.Delete("host1")
	st.Delete("regex-only")
	st.Delete("unknown")
	if got := st.Mutes(other, t0); got != nil {
		t.Errorf("after Delete: %v", got)
	}
	if got := st.Mutes(etcd1, t0); !slices.Equal(got, []string{"host1-etcd"}) {
		t.Errorf("after Delete: Mutes(etcd1) = %v", got)
	}
}

func TestGC(t *testing.T) {
	st := silences.NewStore()
	a := must(st.Add(maintenance(), t0)) // ends t0+2h
	b := must(st.Add(maintenance(), t0))
	if _, err := st.Expire(b.ID, t0.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	var told []string
	st.Subscribe(func(s silences.Silence, deleted bool) {
		if deleted {
			told = append(told, s.ID)
		}
	})
	v := st.Version()
	if got := st.GC(t0.Add(5*time.Hour), 4*time.Hour); got != nil {
		t.Errorf("GC at exactly retention dropped %v", got)
	}
	if st.Version() != v {
		t.Errorf("a GC that dropped nothing changed the version")
	}
	if got := st.GC(t0.Add(5*time.Hour+time.Nanosecond), 4*time.Hour); !slices.Equal(got, []string{b.ID}) {
		t.Errorf("GC = %v, want [%s]", got, b.ID)
	}
	if st.Version() == v {
		t.Errorf("GC did not change the version")
	}
	if _, ok := st.Get(b.ID); ok {
		t.Errorf("dropped silence still there")
	}
	if got := st.GC(t0.Add(100*time.Hour), 4*time.Hour); !slices.Equal(got, []string{a.ID}) {
		t.Errorf("GC = %v, want [%s]", got, a.ID)
	}
	if !slices.Equal(told, []string{b.ID, a.ID}) {
		t.Errorf("subscriber told of deletions %v", told)
	}
	if n := len(st.ListAt(t0)); n != 0 {
		t.Errorf("%d silences left", n)
	}
}

func TestVersionAndSubscribe(t *testing.T) {
	st := silences.NewStore()
	type note struct {
		id, comment string
		end         time.Time
		deleted     bool
	}
	var notes []note
	st.Subscribe(func(s silences.Silence, deleted bool) {
		notes = append(notes, note{s.ID, s.Comment, s.EndsAt, deleted})
		_ = st.List() // a subscriber may read the store
	})
	seen := map[uint64]bool{st.Version(): true}
	step := func(what string) {
		t.Helper()
		v := st.Version()
		if seen[v] {
			t.Errorf("%s: version %d not new", what, v)
		}
		seen[v] = true
	}
	s := must(st.Add(maintenance(), t0))
	step("Add")
	must(st.Expire(s.ID, t0.Add(time.Minute)))
	step("Expire")
	r := maintenance()
	r.ID, r.StartsAt, r.Comment = "replicated", t0, "from etcd"
	if err := st.Put(r); err != nil {
		t.Fatal(err)
	}
	step("Put")
	st.Delete("replicated")
	step("Delete")
	if err := st.Replace([]silences.Silence{r}); err != nil {
		t.Fatal(err)
	}
	step("Replace")
	want := []note{{s.ID, "replacing disk", t0.Add(2 * time.Hour), false}, {s.ID, "replacing disk", t0.Add(time.Minute), false}}
	if !reflect.DeepEqual(notes, want) {
		t.Errorf("notes = %+v, want %+v (Add and Expire only)", notes, want)
	}
}

func TestPutAndReplaceRefuseInvalid(t *testing.T) {
	st := silences.NewStore()
	good := maintenance()
	good.ID, good.StartsAt = "good", t0
	if err := st.Put(maintenance()); err == nil || !strings.Contains(err.Error(), "id: required") ||
		!strings.Contains(err.Error(), "starts_at: required") {
		t.Errorf("Put without ID and start: %v", err)
	}
	noComment := good
	noComment.Comment = ""
	if err := st.Put(noComment); err == nil || !strings.Contains(err.Error(), `silence "good"`) {
		t.Errorf("Put without comment: %v", err)
	}
	if err := st.Put(good); err != nil {
		t.Fatal(err)
	}
	v := st.Version()
	err := st.Replace([]silences.Silence{good, good, noComment})
	if err == nil || !strings.Contains(err.Error(), "silences[1]: id \"good\" appears twice") ||
		!strings.Contains(err.Error(), "silences[2]") {
		t.Errorf("Replace = %v", err)
	}
	if st.Version() != v || len(st.ListAt(t0)) != 1 {
		t.Errorf("a refused Replace changed the store")
	}
	other := good
	other.ID = "other"
	if err := st.Replace([]silences.Silence{other}); err != nil {
		t.Fatal(err)
	}
	if got := ids(st.ListAt(t0)); !slices.Equal(got, []string{"other"}) {
		t.Errorf("after Replace: %v", got)
	}
}

// TestConcurrentUse is for -race: writers, readers and Mutes together.
func TestConcurrentUse(t *testing.T) {
	st := silences.NewStore()
	var notes sync.Map
	st.Subscribe(func(s silences.Silence, _ bool) { notes.Store(s.ID, true) })
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				now := t0.Add(time.Duration(i) * time.Minute)
				s, err := st.Add(maintenance(fmt.Sprintf("host=h%d-%d", w, i%5)), now)
				if err != nil {
					t.Error(err)
					return
				}
				if i%3 == 0 {
					if _, err := st.Expire(s.ID, now); err != nil {
						t.Error(err)
					}
				}
				r := s
				r.ID = fmt.Sprintf("r%d-%d", w, i)
				_ = st.Put(r)
				if i%7 == 0 {
					st.Delete(r.ID)
				}
				st.GC(now, time.Hour)
			}
		}()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				now := t0.Add(time.Duration(i) * time.Minute)
				st.Mutes(model.Labels{"host": fmt.Sprintf("h%d-%d", w, i%5)}, now)
				st.List()
				st.Get("x")
				st.Version()
			}
		}()
	}
	wg.Wait()
	for _, s := range st.ListAt(t0) {
		if strings.HasPrefix(s.ID, "r") {
			continue
		}
		if _, ok := notes.Load(s.ID); !ok {
			t.Errorf("subscriber not told of %s", s.ID)
		}
	}
}
