// Package probe checks reachability the way a client would: a TCP connect
// or an HTTP GET. Failing to connect is the measurement (probe.can_connect
// 0), not a collector error, as with Prometheus' blackbox exporter; only a
// probe that cannot be attempted is an error.
package probe

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vigil-alerts/vigil/model"
)

// Metric and label names; docs/metrics.md describes them.
const (
	MetricCanConnect = "probe.can_connect" // 1 connected (HTTP: got a response), 0 not
	MetricLatency    = "probe.latency"     // seconds to connect (TCP) or to the response headers (HTTP)
	MetricStatusCode = "probe.http.status_code"
	LabelProtocol    = "probe.protocol" // "tcp" or "http"
)

// maxDrain bounds how much of an HTTP body is read so the connection can
// be reused; the body's content is not checked.
const maxDrain = 64 << 10

// Config configures a Scraper.
type Config struct {
	// Addresses, one per target: "host:port" or "tcp://host:port" for a TCP
	// connect, "http://..." or "https://..." for an HTTP GET.
	Addresses []string
	TLS       *tls.Config // for https
}

type target struct {
	protocol string // "tcp" or "http"
	addr     string // host:port for tcp, URL for http
}

// Scraper probes one address per target index.
type Scraper struct {
	targets []target
	http    *http.Client
	dialer  net.Dialer
}

// New validates every address.
func New(cfg Config) (*Scraper, error) {
	if len(cfg.Addresses) == 0 {
		return nil, errors.New("no addresses")
	}
	s := &Scraper{}
	var errs []error
	for _, a := range cfg.Addresses {
		t, err := parseAddress(a)
		if err != nil {
			errs = append(errs, err)
		}
		s.targets = append(s.targets, t)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg.TLS
	// A fresh connection per probe: reusing one would hide the connect
	// failures and latency the probe exists to see.
	tr.DisableKeepAlives = true
	s.http = &http.Client{
		Transport: tr,
		// Report the redirect itself; following it would probe another target.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return s, nil
}

func parseAddress(a string) (target, error) {
	switch {
	case strings.HasPrefix(a, "http://"), strings.HasPrefix(a, "https://"):
		u, err := url.Parse(a)
		if err != nil || u.Host == "" {
			return target{}, fmt.Errorf("address %q: not a URL", a)
		}
		return target{"http", a}, nil
	default:
		hp := strings.TrimPrefix(a, "tcp://")
		if _, port, err := net.SplitHostPort(hp); err != nil || port == "" {
			return target{}, fmt.Errorf("address %q: want host:port, tcp://host:port or an http(s) URL", a)
		}
		return target{"tcp", hp}, nil
	}
}

// Protocol returns "tcp" or "http" for an address New accepts.
func Protocol(address string) string {
	t, _ := parseAddress(address)
	return t.protocol
}

// Scrape probes target i once, within ctx.
func (s *Scraper) Scrape(ctx context.Context, i int, now time.Time) ([]model.Sample, error) {
	t := s.targets[i]
	ls := model.Labels{LabelProtocol: t.protocol}
	sample := func(metric string, v float64) model.Sample {
		return model.Sample{Metric: metric, Labels: ls, Value: v, Time: now}
	}
	down := []model.Sample{sample(MetricCanConnect, 0)}
	start := time.Now()
	if t.protocol == "tcp" {
		conn, err := s.dialer.DialContext(ctx, "tcp", t.addr)
		if err != nil {
			return down, nil
		}
		latency := time.Since(start)
		conn.Close()
		return []model.Sample{sample(MetricCanConnect, 1), sample(MetricLatency, latency.Seconds())}, nil
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, t.addr, nil)
	if err != nil {
		return down, err
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return down, nil
	}
	latency := time.Since(start)
	io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	resp.Body.Close()
	return []model.Sample{
		sample(MetricCanConnect, 1),
		sample(MetricLatency, latency.Seconds()),
		sample(MetricStatusCode, float64(resp.StatusCode)),
	}, nil
}

// Close releases idle connections.
func (s *Scraper) Close() error {
	s.http.CloseIdleConnections()
	return nil
}
