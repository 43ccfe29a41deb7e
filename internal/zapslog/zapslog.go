// Package zapslog forwards the etcd client's zap logs to Vigil's slog
// logger, so that they are not lost and share its format, level and
// redaction. zap's own go.uber.org/zap/exp/zapslog goes the other way
// (a slog.Handler writing to zap).
package zapslog

import (
	"context"
	"log/slog"
	"sort"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// New is a zap logger writing to l, or a no-op logger when l is nil.
// Levels map one step down, except errors (Level); the client's per-call
// retry warnings go to Debug (demoted).
func New(l *slog.Logger) *zap.Logger {
	if l == nil {
		return zap.NewNop()
	}
	return zap.New(&core{h: l.Handler()})
}

// Level is the slog level a zap level is logged at: Error (and above)
// stays Error, Warn is Info, Info and Debug are Debug. The client's
// warnings are about its own retries and connections, whose consequence
// Vigil reports in its own terms (a target failing, leadership lost).
func Level(l zapcore.Level) slog.Level {
	switch {
	case l >= zapcore.ErrorLevel:
		return slog.LevelError
	case l >= zapcore.WarnLevel:
		return slog.LevelInfo
	default:
		return slog.LevelDebug
	}
}

// demoted are the client's warnings logged at Debug whatever their level:
// one comes with every failed call to a member that is down, that is with
// every collection, while the collector logs the outage once when it
// starts and once when it ends.
var demoted = map[string]bool{
	"retrying of unary invoker failed": true,
	"retrying RecvMsg":                 true,
}

func level(e zapcore.Entry) slog.Level {
	if demoted[e.Message] {
		return slog.LevelDebug
	}
	return Level(e.Level)
}

// core is a zapcore.Core over a slog.Handler.
type core struct {
	h slog.Handler
}

// Enabled is true when the level could be logged; Check decides with the
// message, which may demote it.
func (c *core) Enabled(l zapcore.Level) bool {
	return c.h.Enabled(context.Background(), Level(l))
}

func (c *core) With(fields []zapcore.Field) zapcore.Core {
	return &core{h: c.h.WithAttrs(attrs(fields))}
}

func (c *core) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.h.Enabled(context.Background(), level(e)) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c *core) Write(e zapcore.Entry, fields []zapcore.Field) error {
	r := slog.NewRecord(e.Time, level(e), e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	r.AddAttrs(attrs(fields)...)
	return c.h.Handle(context.Background(), r)
}

func (c *core) Sync() error { return nil }

// attrs encodes zap fields as slog attributes, in name order.
func attrs(fields []zapcore.Field) []slog.Attr {
	if len(fields) == 0 {
		return nil
	}
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range fields {
		f.AddTo(enc)
	}
	out := make([]slog.Attr, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		out = append(out, slog.Any(k, v))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
