package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/vigil-alerts/vigil/config"
)

// runDaemon is `vigil run`: only here are signals handled. SIGTERM and
// SIGINT stop collection, let deliveries finish within a bound, save state
// and exit 0; SIGHUP reloads.
func runDaemon(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfgPath := fs.String("config", "vigil.yaml", "config file")
	logFlags := addLogFlags(fs, slog.LevelInfo)
	bound := fs.Duration("shutdown.delivery-timeout", 10*time.Second, "how long a stop waits for in-flight notifications")
	externalURL := fs.String("web.external-url", "",
		"the URL under which Vigil is reached, for links in notifications (generatorURL, externalURL); default http://<hostname>:<port>/ of http.address")
	webOpts := addWebFlags(fs)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	logger := logFlags.logger(stderr)
	d, err := newDaemon(daemonOptions{ConfigPath: *cfgPath, Logger: logger, Console: stdout, DeliveryBound: *bound, Web: *webOpts, ExternalURL: *externalURL})
	if err != nil {
		printLoadError(stderr, err)
		return 1
	}
	return serve(context.Background(), d, logger, stderr)
}

// serve starts d and runs it until SIGTERM or SIGINT (or ctx ends), then
// stops it: exit status 0 even when deliveries ran out of time, which is
// logged.
func serve(ctx context.Context, d *daemon, logger *slog.Logger, stderr io.Writer) int {
	sig, stop := notifySignals()
	defer stop()
	if err := d.Start(); err != nil {
		fmt.Fprintln(stderr, err)
		d.Stop()
		return 1
	}
	return runUntilSignal(ctx, d, logger, sig)
}

// notifySignals subscribes to the signals the daemon handles.
func notifySignals() (<-chan os.Signal, func()) {
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
	return sig, func() { signal.Stop(sig) }
}

// runUntilSignal reloads on SIGHUP and stops d on SIGTERM or SIGINT (or
// when ctx ends).
func runUntilSignal(ctx context.Context, d *daemon, logger *slog.Logger, sig <-chan os.Signal) int {
	for {
		select {
		case s := <-sig:
			if s == syscall.SIGHUP {
				d.Reload("SIGHUP")
				continue
			}
			logger.Info("shutting down", "signal", s.String())
		case <-ctx.Done():
			logger.Info("shutting down", "cause", context.Cause(ctx))
		}
		if err := d.Stop(); err != nil {
			logger.Error("shutdown incomplete", "err", err)
		}
		return 0
	}
}

// logFlags are --log.level and --log.format, as Prometheus' promslog
// flags: both are checked while parsing, so a bad value is a usage error.
type logFlags struct {
	level  slog.Level
	format string
}

// addLogFlags adds --log.level (default level) and --log.format to fs.
func addLogFlags(fs *flag.FlagSet, level slog.Level) *logFlags {
	lf := &logFlags{level: level, format: "logfmt"}
	fs.TextVar(&lf.level, "log.level", level, "log `level`: debug, info, warn or error")
	fs.Func("log.format", "log `format`: logfmt or json (default logfmt)", func(v string) error {
		if v != "logfmt" && v != "json" {
			return fmt.Errorf("%q is not logfmt or json", v)
		}
		lf.format = v
		return nil
	})
	return lf
}

// logger writes to w in the chosen format.
func (lf *logFlags) logger(w io.Writer) *slog.Logger {
	o := &slog.HandlerOptions{Level: lf.level}
	if lf.format == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

// printLoadError prints config and rule errors one per line, then a count.
func printLoadError(w io.Writer, err error) {
	fmt.Fprintln(w, err)
	var ce config.Errors
	if errors.As(err, &ce) {
		fmt.Fprintf(w, "%d error(s) in the config\n", len(ce))
	}
}
