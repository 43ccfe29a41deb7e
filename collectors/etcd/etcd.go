// Package etcd collects the health of etcd v3 members: Status and
// MemberList over each member's own long-lived gRPC client, and the
// member's /metrics page for peer round-trip times, traffic, proposals and
// disk latencies. docs/metrics.md lists every metric and its source.
package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/connectivity"
	"google.golang.org/grpc/status"

	"github.com/vigil-alerts/vigil/collectors/prom"
	"github.com/vigil-alerts/vigil/internal/redact"
	"github.com/vigil-alerts/vigil/internal/zapslog"
	"github.com/vigil-alerts/vigil/model"
)

// Member is one etcd member to watch.
type Member struct {
	// Endpoint is the member's client URL, e.g. https://10.0.0.1:2379.
	Endpoint string
	// MetricsURL is the member's /metrics page; empty means Endpoint +
	// "/metrics", which every member serves on its client port.
	MetricsURL string
}

// Config configures a Scraper.
type Config struct {
	Members []Member
	// Timeout bounds connecting and, with Username, authenticating.
	Timeout time.Duration
	// TLS is used for both gRPC and /metrics when set.
	TLS      *tls.Config
	Username string
	Password string
	// SkipMetricsPage turns off reading /metrics, for members whose
	// metrics port is not reachable from Vigil.
	SkipMetricsPage bool
	// ReconnectMaxDelay caps the wait between the gRPC client's attempts
	// to reconnect to a member that is down; zero means
	// DefaultReconnectMaxDelay. gRPC's own default grows to 120 s.
	ReconnectMaxDelay time.Duration
	// Logger receives the etcd client's own logs (internal/zapslog maps
	// their levels); nil discards them.
	Logger *slog.Logger
}

// Reconnection back-off. gRPC's default (1 s, x1.6, up to 120 s) would
// leave a member that came back after a long outage reported down for up
// to two more minutes. Vigil's caps the wait at a few seconds, and every
// Scrape of a member in TRANSIENT_FAILURE also cuts the wait short (see
// status), so a recovered member is seen by the first collection after.
const (
	DefaultReconnectMaxDelay = 2 * time.Second
	reconnectBaseDelay       = 200 * time.Millisecond
	reconnectMultiplier      = 1.6
	reconnectJitter          = 0.2
	// reconnectWait bounds how long a collection waits for a prompted
	// reconnection to a member that was down; it is what a collection of a
	// member that is still down costs beyond the refused connection.
	reconnectWait = 250 * time.Millisecond
)

// Scraper collects one member per target index. It keeps one gRPC client
// per member for its whole life: dialling per poll costs ~10x the request.
type Scraper struct {
	cfg     Config
	http    *http.Client
	members []*member

	// The cluster's member list, from the member with the highest raft
	// index in the latest collection that got one: the inventory rules
	// expect segments from (see Inventory).
	listMu    sync.Mutex
	list      []*pb.Member
	listIndex uint64
	listTime  time.Time
	// sel is the page's families rules need (SetMetrics); nil: all of them.
	sel atomic.Pointer[pageSelection]
}

type pageSelection struct {
	families *prom.Selection
	skip     bool // no metric read comes from the page
}

// SetMetrics says which of the collector's metrics are read: the page is
// then parsed for their families only, and not fetched at all when none
// comes from it. all restores everything. Safe while scraping.
func (s *Scraper) SetMetrics(all bool, metrics []string) {
	if all {
		s.sel.Store(nil)
		return
	}
	fams := PageFamilies(metrics)
	s.sel.Store(&pageSelection{families: prom.NewSelection(fams), skip: len(fams) == 0})
}

// LabelMemberName is the label every sample of a member carries once its
// name is known (from its own member list, or another member's listing
// its client URL), and that the inventory names members by.
const (
	LabelMemberName = "etcd.member.name"
	LabelMemberID   = "etcd.member.id"
)

type member struct {
	Member
	mu       sync.Mutex
	cli      *clientv3.Client
	closed   bool
	prev     *page // last /metrics page, for rates
	prevTime time.Time
	name     string // the member's name in the cluster; guarded by Scraper.listMu
}

// New validates cfg and prepares a scraper. It connects lazily, so a member
// that is down at start is reported by Collect rather than failing Vigil.
func New(cfg Config) (*Scraper, error) {
	if len(cfg.Members) == 0 {
		return nil, errors.New("no members")
	}
	if cfg.Timeout <= 0 {
		return nil, errors.New("timeout must be positive")
	}
	if (cfg.Username == "") != (cfg.Password == "") {
		return nil, errors.New("username and password go together")
	}
	if cfg.ReconnectMaxDelay < 0 {
		return nil, errors.New("reconnect max delay must not be negative")
	}
	if cfg.ReconnectMaxDelay == 0 {
		cfg.ReconnectMaxDelay = DefaultReconnectMaxDelay
	}
	s := &Scraper{cfg: cfg}
	var errs []error
	for i, m := range cfg.Members {
		if !strings.HasPrefix(m.Endpoint, "http://") && !strings.HasPrefix(m.Endpoint, "https://") {
			errs = append(errs, fmt.Errorf("member %d: endpoint %q must start with http:// or https://", i, m.Endpoint))
		}
		if m.MetricsURL == "" {
			m.MetricsURL = strings.TrimSuffix(m.Endpoint, "/") + "/metrics"
		}
		s.members = append(s.members, &member{Member: m})
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// A copy: the transport sets NextProtos in its config on first use,
	// while each gRPC client reads (clones) the original.
	tr.TLSClientConfig = cfg.TLS.Clone()
	tr.MaxIdleConnsPerHost = 2
	// HTTP/1.1 only: one GET per collection gains nothing from HTTP/2, and
	// over HTTP/2 a member rejecting the client certificate surfaces as
	// "http2: client conn could not be established" instead of the TLS
	// alert ("tls: certificate required").
	var protos http.Protocols
	protos.SetHTTP1(true)
	tr.Protocols = &protos
	s.http = &http.Client{Transport: tr}
	return s, nil
}

// Close closes every member's client. Collect after Close fails.
func (s *Scraper) Close() error {
	var errs []error
	for _, m := range s.members {
		m.mu.Lock()
		if m.cli != nil {
			errs = append(errs, m.cli.Close())
			m.cli = nil
		}
		m.closed = true
		m.mu.Unlock()
	}
	s.http.CloseIdleConnections()
	return errors.Join(errs...)
}

// Scrape collects member i. A member that does not answer Status within
// ctx yields etcd.can_connect 0 and an error.
func (s *Scraper) Scrape(ctx context.Context, i int, now time.Time) ([]model.Sample, error) {
	m := s.members[i]
	var (
		wg              sync.WaitGroup
		pageSamples     []model.Sample
		pageErr         error
		quota           float64
		statusSamples   []model.Sample
		statusErr       error
		statusQuota     float64
		statusDBSize    float64
		statusConnected bool
	)
	sel := s.sel.Load()
	if !s.cfg.SkipMetricsPage && (sel == nil || !sel.skip) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pageSamples, quota, pageErr = s.scrapePage(ctx, m, now, sel)
		}()
	}
	statusSamples, statusQuota, statusDBSize, statusErr = s.status(ctx, m, now)
	statusConnected = statusErr == nil
	wg.Wait()

	out := statusSamples
	if statusConnected {
		if statusQuota == 0 {
			statusQuota = quota // etcd before 3.6 does not report it in Status
		}
		if statusQuota > 0 {
			out = append(out,
				model.Sample{Metric: "etcd.db.quota", Value: statusQuota},
				model.Sample{Metric: "etcd.db.quota_used_ratio", Value: statusDBSize / statusQuota})
		}
	}
	out = append(out, pageSamples...)
	name := s.nameOf(m)
	for j := range out {
		out[j].Time = now
		if name != "" {
			ls := make(model.Labels, len(out[j].Labels)+1)
			maps.Copy(ls, out[j].Labels)
			ls[LabelMemberName] = name
			out[j].Labels = ls
		}
	}
	var errs []error
	if statusErr != nil {
		errs = append(errs, fmt.Errorf("status %s: %w", m.Endpoint, statusErr))
	}
	if pageErr != nil {
		errs = append(errs, fmt.Errorf("metrics %s: %w", m.MetricsURL, pageErr))
	}
	return out, errors.Join(errs...)
}

// client returns the member's client, creating it on first use. Creation
// happens outside the lock: with a username it authenticates, which can
// take up to the timeout when the member is down.
func (s *Scraper) client(m *member) (*clientv3.Client, error) {
	m.mu.Lock()
	cli, closed := m.cli, m.closed
	m.mu.Unlock()
	if closed {
		return nil, errors.New("collector closed")
	}
	if cli != nil {
		return cli, nil
	}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:            []string{m.Endpoint},
		DialTimeout:          s.cfg.Timeout,
		DialKeepAliveTime:    30 * time.Second,
		DialKeepAliveTimeout: s.cfg.Timeout,
		TLS:                  s.cfg.TLS,
		Username:             s.cfg.Username,
		Password:             s.cfg.Password,
		Logger:               s.clientLogger(m),
		DialOptions:          s.dialOptions(),
	})
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed || m.cli != nil {
		// Closed meanwhile, or a concurrent Collect won the race.
		cli.Close()
		if m.closed {
			return nil, errors.New("collector closed")
		}
		return m.cli, nil
	}
	m.cli = cli
	return cli, nil
}

// clientLogger is the etcd client's logger for member m.
func (s *Scraper) clientLogger(m *member) *zap.Logger {
	if s.cfg.Logger == nil {
		return zap.NewNop()
	}
	return zapslog.New(s.cfg.Logger.With("client", "etcd", "endpoint", redact.ShowURL(m.Endpoint)))
}

// dialOptions are appended after clientv3's own, so they take precedence.
func (s *Scraper) dialOptions() []grpc.DialOption {
	maxDelay := s.cfg.ReconnectMaxDelay
	return []grpc.DialOption{
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff: backoff.Config{
				BaseDelay:  min(reconnectBaseDelay, maxDelay),
				Multiplier: reconnectMultiplier,
				Jitter:     reconnectJitter,
				MaxDelay:   maxDelay,
			},
			// One connection attempt may take as long as a collection
			// (gRPC's default is 20 s), so a member that accepts and hangs
			// is retried at the next collection rather than much later.
			MinConnectTimeout: s.cfg.Timeout,
		}),
	}
}

func (s *Scraper) status(ctx context.Context, m *member, now time.Time) (out []model.Sample, quota, dbSize float64, err error) {
	down := []model.Sample{{Metric: "etcd.can_connect", Value: 0}}
	cli, err := s.client(m)
	if err != nil {
		return down, 0, 0, err
	}
	conn := cli.ActiveConnection()
	mc := pb.NewMaintenanceClient(conn)
	// Status straight on the client's own connection: the client's
	// Maintenance.Status dials a new connection for every call.
	var st *pb.StatusResponse
	start := time.Now()
	if conn.GetState() == connectivity.TransientFailure {
		// The last attempt failed and the client is waiting out its
		// back-off: attempt now, so that a member that is back is seen by
		// this collection rather than a later one. The attempt's failure
		// is not observable (the connection stays in TRANSIENT_FAILURE
		// until it is READY), so wait a moment for its success; failing
		// that, ask again failing fast, for the connection's error.
		conn.ResetConnectBackoff()
		wctx, cancel := context.WithTimeout(ctx, min(reconnectWait, s.cfg.Timeout/4))
		st, err = mc.Status(wctx, &pb.StatusRequest{}, grpc.WaitForReady(true))
		cancel()
		if err != nil && ctx.Err() == nil {
			start = time.Now()
			st, err = mc.Status(ctx, &pb.StatusRequest{})
		}
	} else {
		st, err = mc.Status(ctx, &pb.StatusRequest{})
	}
	latency := time.Since(start) // with a reconnection, includes it
	if err != nil {
		return down, 0, 0, s.tlsReason(ctx, m, err)
	}
	b := func(v bool) float64 {
		if v {
			return 1
		}
		return 0
	}
	self := st.GetHeader().GetMemberId()
	out = []model.Sample{
		{Metric: "etcd.can_connect", Value: 1},
		{Metric: "etcd.latency", Value: latency.Seconds()},
		{Metric: "etcd.is_leader", Value: b(st.Leader != 0 && st.Leader == self)},
		{Metric: "etcd.leader.id", Value: float64(st.Leader), Labels: model.Labels{"leader": formatID(st.Leader)}},
		{Metric: "etcd.member.id", Value: float64(self), Labels: model.Labels{"member": formatID(self)}},
		{Metric: "etcd.is_learner", Value: b(st.IsLearner)},
		{Metric: "etcd.raft.term", Value: float64(st.RaftTerm)},
		{Metric: "etcd.raft.index", Value: float64(st.RaftIndex)},
		{Metric: "etcd.raft.applied_index", Value: float64(st.RaftAppliedIndex)},
		{Metric: "etcd.db.size", Value: float64(st.DbSize)},
		{Metric: "etcd.db.size_in_use", Value: float64(st.DbSizeInUse)},
		{Metric: "etcd.alarms", Value: float64(len(st.Errors))},
	}
	// Serializable: a member cut off from quorum still says what it knows.
	ml, err := cli.MemberList(ctx, clientv3.WithSerializable())
	if err != nil {
		return out, float64(st.DbSizeQuota), float64(st.DbSize), fmt.Errorf("member list: %w", err)
	}
	s.noteMembers(m, ml.Members, self, st.RaftIndex, now)
	learners := 0
	for _, mm := range ml.Members {
		if mm.IsLearner {
			learners++
		}
	}
	out = append(out,
		model.Sample{Metric: "etcd.members", Value: float64(len(ml.Members))},
		model.Sample{Metric: "etcd.learners", Value: float64(learners)})
	return out, float64(st.DbSizeQuota), float64(st.DbSize), nil
}

func (s *Scraper) scrapePage(ctx context.Context, m *member, now time.Time, sel *pageSelection) ([]model.Sample, float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.MetricsURL, nil)
	if err != nil {
		return nil, 0, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("HTTP status %s", resp.Status)
	}
	var fams *prom.Selection
	if sel != nil {
		fams = sel.families
	}
	p, err := parsePage(resp.Body, fams)
	if err != nil {
		return nil, 0, err
	}
	m.mu.Lock()
	prev, prevTime := m.prev, m.prevTime
	if now.After(m.prevTime) {
		m.prev, m.prevTime = p, now
	}
	m.mu.Unlock()
	dt := 0.0
	if prev != nil {
		dt = now.Sub(prevTime).Seconds()
	}
	if dt <= 0 {
		prev = nil
	}
	return derive(p, prev, dt), p.values[quotaFamily], nil
}

// tlsReason adds the member's TLS alert to a connection error that lacks
// it. With TLS 1.3 a member rejects a client certificate only after the
// client's side of the handshake is done, so gRPC, which writes at once,
// may report just "broken pipe". A separate handshake followed by a read
// receives the alert; a member that accepts the certificate says nothing,
// since it waits for the client to speak first.
func (s *Scraper) tlsReason(ctx context.Context, m *member, err error) error {
	if s.cfg.TLS == nil || status.Code(err) != codes.Unavailable || strings.Contains(err.Error(), "tls:") {
		return err
	}
	u, perr := url.Parse(m.Endpoint)
	if perr != nil || u.Scheme != "https" {
		return err
	}
	cfg := s.cfg.TLS.Clone()
	if cfg.ServerName == "" {
		cfg.ServerName = u.Hostname()
	}
	ctx, cancel := context.WithTimeout(ctx, min(reconnectWait, s.cfg.Timeout/4))
	defer cancel()
	conn, derr := (&tls.Dialer{Config: cfg}).DialContext(ctx, "tcp", u.Host)
	if derr == nil {
		defer conn.Close()
		deadline, _ := ctx.Deadline()
		conn.SetReadDeadline(deadline)
		_, derr = conn.Read(make([]byte, 1))
	}
	if derr != nil && (strings.Contains(derr.Error(), "tls:") || strings.Contains(derr.Error(), "x509:")) {
		return fmt.Errorf("%w (TLS: %v)", err, derr)
	}
	return err
}

// noteMembers records a member list m got: the names of the members the
// scraper watches, and the list itself if it is the freshest of this
// collection (a member cut off from quorum may answer with an old one).
func (s *Scraper) noteMembers(m *member, list []*pb.Member, self, raftIndex uint64, now time.Time) {
	s.listMu.Lock()
	defer s.listMu.Unlock()
	if now.After(s.listTime) || now.Equal(s.listTime) && raftIndex > s.listIndex {
		s.list, s.listIndex, s.listTime = list, raftIndex, now
	}
	for _, mm := range list {
		if mm.Name == "" {
			continue // added, not started yet
		}
		if mm.ID == self {
			m.name = mm.Name
			continue
		}
		for _, w := range s.members {
			if w.name == "" && slices.ContainsFunc(mm.ClientURLs, func(u string) bool { return sameURL(u, w.Endpoint) }) {
				w.name = mm.Name
			}
		}
	}
}

func sameURL(a, b string) bool { return strings.TrimSuffix(a, "/") == strings.TrimSuffix(b, "/") }

func (s *Scraper) nameOf(m *member) string {
	s.listMu.Lock()
	defer s.listMu.Unlock()
	return m.name
}

// Inventory returns the cluster's members from the freshest member list
// seen, each labelled with its name (when it has started) and ID, and the
// index of the target that watches it, or -1 for a member Vigil is not
// pointed at. ok is false until a collection got a member list; after
// that the last list stays, so a cluster silent as a whole is still
// expected.
func (s *Scraper) Inventory() (members []model.Labels, targets []int, ok bool) {
	s.listMu.Lock()
	defer s.listMu.Unlock()
	if s.listTime.IsZero() {
		return nil, nil, false
	}
	for _, mm := range s.list {
		ls := model.Labels{LabelMemberID: formatID(mm.ID)}
		if mm.Name != "" {
			ls[LabelMemberName] = mm.Name
		}
		target := -1
		for i, w := range s.members {
			if mm.Name != "" && w.name == mm.Name || slices.ContainsFunc(mm.ClientURLs, func(u string) bool { return sameURL(u, w.Endpoint) }) {
				target = i
				break
			}
		}
		members, targets = append(members, ls), append(targets, target)
	}
	return members, targets, true
}
