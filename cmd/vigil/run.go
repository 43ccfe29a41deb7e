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
	logLevel := fs.String("log.level", "info", "debug, info, warn or error")
	bound := fs.Duration("shutdown.delivery-timeout", 10*time.Second, "how long a stop waits for in-flight notifications")
	externalURL := fs.String("web.external-url", "",
		"the URL under which Vigil is reached, for links in notifications (generatorURL, externalURL); default http://<hostname>:<port>/ of http.address")
	webOpts := addWebFlags(fs)
	if code, ok := parseFlags(fs, args, stdout, stderr); !ok {
		return code
	}
	logger, err := newLogger(stderr, *logLevel)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 2
	}
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

func newLogger(w io.Writer, level string) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("log.level: %w", err)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l})), nil
}

// printLoadError prints config and rule errors one per line, then a count.
func printLoadError(w io.Writer, err error) {
	fmt.Fprintln(w, err)
	var ce config.Errors
	if errors.As(err, &ce) {
		fmt.Fprintf(w, "%d error(s) in the config\n", len(ce))
	}
}
