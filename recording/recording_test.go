package recording

import (
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

var t0 = time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC)

func collection(k int) []model.Sample {
	var out []model.Sample
	for m := 1; m <= 3; m++ {
		ls := model.Labels{"host.mac": fmt.Sprintf("m%d", m), "cluster": "c1"}
		out = append(out,
			model.Sample{Metric: "etcd.can_connect", Labels: ls, Value: 1, Time: t0.Add(time.Duration(k) * 15 * time.Second)},
			model.Sample{Metric: "etcd.txn.total", Labels: ls, Value: float64(100*k + m), Time: t0.Add(time.Duration(k) * 15 * time.Second)})
	}
	return out
}

func TestRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	var want []model.Sample
	for k := 0; k < 100; k++ {
		c := collection(k)
		want = append(want, c...)
		if err := w.Write(c...); err != nil {
			t.Fatal(err)
		}
	}
	odd := []model.Sample{
		{Metric: "odd name \"quoted\"", Labels: model.Labels{"a b": "x\ny"}, Value: math.Inf(-1), Time: t0.Add(time.Hour)},
		{Metric: "nolabels", Value: 0.1, Time: t0.Add(time.Hour)},
	}
	want = append(want, odd...)
	if err := w.Write(odd...); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	var got []model.Sample
	if err := Read(bytes.NewReader(buf.Bytes()), func(s model.Sample) error { got = append(got, s); return nil }); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("read back %d samples, differ from the %d written; first: %+v vs %+v", len(got), len(want), got[0], want[0])
	}
	// Compact: 600 samples of 6 series in a few bytes each.
	if per := float64(buf.Len()) / float64(len(want)); per > 4 {
		t.Errorf("%.1f bytes per sample, want at most 4", per)
	}
}

// A recording being written when the process dies ends mid-stream: what
// was flushed before the cut is read back, and the cut is reported.
func TestTruncatedKeepsPrefix(t *testing.T) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	for k := 0; k < 10; k++ {
		w.Write(collection(k)...)
		w.Flush()
	}
	flushed := buf.Len()
	w.Write(collection(10)...)
	w.Close()
	cut := buf.Bytes()[:flushed+5]
	n := 0
	err := Read(bytes.NewReader(cut), func(model.Sample) error { n++; return nil })
	if !errors.Is(err, ErrTruncated) {
		t.Fatalf("err = %v, want ErrTruncated", err)
	}
	if n != 60 {
		t.Fatalf("read %d samples before the cut, want the 60 flushed", n)
	}
}

func gz(s string) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func TestBadInputNamesTheLine(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"plain text", "not a recording"},
		{"", "empty recording"},
		{"vigil-recording 2\n", "line 1: want"},
		{"vigil-recording 1\nT 5\n7 1\n", "line 3: unknown series id"},
		{"vigil-recording 1\nS 1 \"m\" {}\n1 1\n", "line 3: sample before any T line"},
		{"vigil-recording 1\nS 2 \"m\" {}\n", "line 2: series id"},
		{"vigil-recording 1\nS 1 \"m\" {\"a\":1}\n", "line 2: series 1: labels"},
		{"vigil-recording 1\nS 1 \"m\" {}\nT x\n", "line 3: time"},
		{"vigil-recording 1\nS 1 \"m\" {}\nT 1\n1 abc\n", "line 4: value"},
		{"vigil-recording 1\n" + strings.Repeat("x", MaxLine+1) + "\n", "line 2: bufio.Scanner: token too long"},
	} {
		in := gz(c.in)
		if c.in == "plain text" {
			in = []byte(c.in)
		}
		err := Read(bytes.NewReader(in), func(model.Sample) error { return nil })
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%.30q: err = %v, want %q", c.in, err, c.want)
		}
	}
}

// The recorder keeps a directory within its size and age bounds and what
// it keeps reads back in time order.
func TestRecorderBounds(t *testing.T) {
	dir := t.TempDir()
	r, err := NewRecorder(dir, Bounds{MaxAge: 2 * time.Hour, FileSpan: 30 * time.Minute, MaxSize: 1 << 30})
	if err != nil {
		t.Fatal(err)
	}
	const steps = 6 * 60 * 4 // 6 hours at 15 s
	for k := 0; k < steps; k++ {
		if err := r.Record(collection(k)); err != nil {
			t.Fatal(err)
		}
	}
	r.Close()
	samples, warn, err := Load(dir)
	if err != nil || len(warn) > 0 {
		t.Fatal(err, warn)
	}
	first, last := samples[0].Time, samples[len(samples)-1].Time
	if want := t0.Add((steps - 1) * 15 * time.Second); !last.Equal(want) {
		t.Fatalf("last sample at %s, want %s", last, want)
	}
	// Files are pruned as a new one opens: up to two file spans beyond
	// max_age remain (the open file and the one that just aged out).
	if span := last.Sub(first); span > 3*time.Hour || span < 2*time.Hour {
		t.Fatalf("kept %s of data, want 2h (max_age) to 3h (plus two files)", span)
	}

	// Size: a small budget keeps only the newest files.
	dir2 := t.TempDir()
	r2, _ := NewRecorder(dir2, Bounds{MaxSize: 8 << 10, FileSpan: 10 * time.Minute})
	for k := 0; k < steps; k++ {
		r2.Record(collection(k))
	}
	r2.Close()
	var total int64
	files, _ := Files(dir2)
	for _, f := range files {
		fi, _ := os.Stat(f)
		total += fi.Size()
	}
	if total > 8<<10 {
		t.Fatalf("%d bytes on disk, want at most the 8 KiB max_size", total)
	}
	samples, _, err = Load(dir2)
	if err != nil || !samples[len(samples)-1].Time.Equal(t0.Add((steps-1)*15*time.Second)) {
		t.Fatalf("the newest data must be kept: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir2, "x")); err == nil {
		t.Fatal("unexpected file")
	}
}

func FuzzRead(f *testing.F) {
	var buf bytes.Buffer
	w, _ := NewWriter(&buf)
	w.Write(collection(0)...)
	w.Close()
	f.Add(buf.Bytes())
	f.Add(gz("vigil-recording 1\nS 1 \"m\" {\"a\":\"b\"}\nT 5\n1 NaN\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		Read(bytes.NewReader(b), func(s model.Sample) error {
			if s.Metric == "" {
				t.Fatal("sample with no metric")
			}
			n++
			return nil
		})
	})
}
