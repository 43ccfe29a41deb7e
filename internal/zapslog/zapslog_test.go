package zapslog_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"go.uber.org/zap"

	"github.com/vigil-alerts/vigil/internal/zapslog"
)

// Each zap level arrives at its mapped slog level, with the logger's and
// the call's fields as attributes; what the slog level filters out is not
// written.
func TestLevelsAndFields(t *testing.T) {
	var buf bytes.Buffer
	zl := zapslog.New(slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	zl = zl.Named("lease").With(zap.String("endpoint", "http://e:2379"))
	zl.Debug("d")
	zl.Info("i", zap.Int("n", 3))
	zl.Warn("w", zap.Error(errors.New("keepalive lost")))
	zl.Error("e")
	zl.Warn("retrying of unary invoker failed") // every failed call: demoted
	want := []struct{ msg, level string }{{"d", "DEBUG"}, {"i", "DEBUG"}, {"w", "INFO"}, {"e", "ERROR"},
		{"retrying of unary invoker failed", "DEBUG"}}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("want %d lines, got:\n%s", len(want), buf.String())
	}
	for i, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatal(err)
		}
		if m["msg"] != want[i].msg || m["level"] != want[i].level || m["endpoint"] != "http://e:2379" || m["logger"] != "lease" {
			t.Errorf("line %d: %s", i, l)
		}
	}
	contains := func(s string) {
		if !strings.Contains(buf.String(), s) {
			t.Errorf("log lacks %s:\n%s", s, buf.String())
		}
	}
	contains(`"n":3`)
	contains(`"error":"keepalive lost"`)

	buf.Reset()
	zl = zapslog.New(slog.New(slog.NewJSONHandler(&buf, nil))) // info
	zl.Info("i")
	zl.Warn("retrying of unary invoker failed")
	zl.Warn("w")
	if got := strings.Count(buf.String(), "\n"); got != 1 || !strings.Contains(buf.String(), `"msg":"w"`) {
		t.Errorf("at info, want only the warning:\n%s", buf.String())
	}
}
