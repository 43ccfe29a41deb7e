package prom

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

var now0 = time.Unix(1700000000, 0)

func sampleKey(s model.Sample) string { return s.Metric + s.Labels.String() + fmt.Sprint(s.Value) }

func keys(ss []model.Sample) []string {
	out := make([]string, 0, len(ss))
	for _, s := range ss {
		out = append(out, sampleKey(s))
	}
	slices.Sort(out)
	return out
}

// TestSelectionReadsWhatAFullParseReads checks, for every sample name of
// a real etcd page and of both test pages, that reading the page for that
// name alone yields exactly the samples of that name a full parse yields:
// the pre-filter never loses a histogram's or summary's lines, and never
// lets another name through.
func TestSelectionReadsWhatAFullParseReads(t *testing.T) {
	etcdPage, err := os.ReadFile("../etcd/testdata/metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	pages := []struct {
		name, contentType, body string
	}{
		{"etcd", "text/plain; version=0.0.4", string(etcdPage)},
		{"text", "text/plain; version=0.0.4", textPage},
		{"openmetrics", "application/openmetrics-text; version=1.0.0", openMetricsPage},
	}
	for _, pg := range pages {
		t.Run(pg.name, func(t *testing.T) {
			h := http.Header{"Content-Type": {pg.contentType}}
			all, err := Read(strings.NewReader(pg.body), h, nil, 0, now0)
			if err != nil {
				t.Fatal(err)
			}
			byName := map[string][]model.Sample{}
			for _, s := range all {
				byName[s.Metric] = append(byName[s.Metric], s)
			}
			if pg.name == "etcd" && len(byName) < 100 {
				t.Fatalf("only %d names on the etcd page", len(byName))
			}
			for name, want := range byName {
				got, err := Read(strings.NewReader(pg.body), h, NewSelection([]string{name}), 0, now0)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				if !slices.Equal(keys(got), keys(want)) {
					t.Fatalf("read for %s:\n got %v\nwant %v", name, keys(got), keys(want))
				}
			}
			none, err := Read(strings.NewReader(pg.body), h, NewSelection(nil), 0, now0)
			if err != nil || len(none) != 0 {
				t.Fatalf("empty selection: %d samples, %v", len(none), err)
			}
		})
	}
}

// TestFilterSkipsUnreadFamilies checks the parser never sees the lines of
// a family no rule reads, including a line that would not even parse.
func TestFilterSkipsUnreadFamilies(t *testing.T) {
	page := textPage + "broken_family{this is not a sample\n" + strings.Repeat("x", 200<<10) + "_long 1\n"
	h := http.Header{"Content-Type": {"text/plain; version=0.0.4"}}
	got, err := Read(strings.NewReader(page), h, NewSelection([]string{"etcd_server_has_leader"}), 0, now0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Value != 1 {
		t.Fatalf("got %v", got)
	}
	if _, err := Read(strings.NewReader(page), h, nil, 0, now0); err == nil {
		t.Fatal("the broken line parses when everything is read")
	}
	var buf bytes.Buffer
	buf.ReadFrom(Filter(strings.NewReader(page), NewSelection([]string{"go_gc_duration_seconds_sum"})))
	want := "# TYPE go_gc_duration_seconds summary\ngo_gc_duration_seconds{quantile=\"0.5\"} 0.0001\ngo_gc_duration_seconds_sum 0.5\ngo_gc_duration_seconds_count 7\n"
	if buf.String() != want {
		t.Fatalf("filtered page:\n%s\nwant:\n%s", buf.String(), want)
	}
}

// TestSampleLimit checks a page over the limit fails whole, with
// ErrSampleLimit, counted after the selection, and one at the limit
// passes.
func TestSampleLimit(t *testing.T) {
	var b strings.Builder
	b.WriteString("# TYPE many gauge\n")
	for i := range 1000 {
		fmt.Fprintf(&b, "many{i=\"%d\"} %d\n", i, i)
	}
	b.WriteString("few 1\n")
	page := b.String()
	h := http.Header{}
	if _, err := Read(strings.NewReader(page), h, nil, 1000, now0); !errors.Is(err, ErrSampleLimit) {
		t.Fatalf("1001 samples, limit 1000: err %v", err)
	}
	got, err := Read(strings.NewReader(page), h, nil, 1001, now0)
	if err != nil || len(got) != 1001 {
		t.Fatalf("at the limit: %d samples, %v", len(got), err)
	}
	got, err = Read(strings.NewReader(page), h, NewSelection([]string{"few"}), 1, now0)
	if err != nil || len(got) != 1 {
		t.Fatalf("unread families count against the limit: %d samples, %v", len(got), err)
	}

	url := serve(t, "text/plain; version=0.0.4", page)
	s, err := New(Config{URLs: []string{url}, SampleLimit: 10})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Scrape(context.Background(), 0, now0); !errors.Is(err, ErrSampleLimit) || !strings.Contains(err.Error(), "more than 10 samples") {
		t.Fatalf("scrape: %v", err)
	}
	s.SetMetrics(false, []string{"few"})
	if got, err := s.Scrape(context.Background(), 0, now0); err != nil || len(got) != 1 || got[0].Metric != "few" {
		t.Fatalf("selected scrape: %v %v", got, err)
	}
}
