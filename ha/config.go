package ha

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/internal/zapslog"
)

// Defaults, applied in WithDefaults and nowhere else.
const (
	DefaultPrefix      = "/vigil/"
	DefaultSessionTTL  = 10 * time.Second
	DefaultDialTimeout = 5 * time.Second
)

// Config is the `ha:` section of Vigil's config. Without it Vigil runs
// alone. It names environment variables and files, never secrets, so it
// is safe to print.
type Config struct {
	// Endpoints are etcd client URLs (http:// or https://); the client
	// fails over between them.
	Endpoints []string `yaml:"endpoints"`
	// TLS is the same block as a collector's `tls:`.
	TLS      *collectors.TLSConfig `yaml:"tls"`
	Username string                `yaml:"username"`
	// PasswordEnv or PasswordFile name where the password is read from.
	PasswordEnv  string `yaml:"password_env"`
	PasswordFile string `yaml:"password_file"`
	// Prefix is where the election and the shared state live (default
	// "/vigil/"). Replicas that share a prefix share alerts; two Vigil
	// deployments watching different things need different prefixes.
	Prefix string `yaml:"prefix"`
	// SessionTTL is the lease of the leader's session, in whole seconds
	// (default 10s): a leader that dies is replaced within it, and a
	// leader that cannot renew it stops acting within it.
	SessionTTL collectors.Duration `yaml:"session_ttl"`
	// Name identifies this replica in the election and on /api/v1/status;
	// the default is the host name (the pod name in Kubernetes).
	Name string `yaml:"name"`
	// DialTimeout bounds connecting to etcd (default 5s).
	DialTimeout collectors.Duration `yaml:"dial_timeout"`
}

// WithDefaults returns c with every default applied.
func (c Config) WithDefaults() Config {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		c.Prefix += "/"
	}
	if c.SessionTTL == 0 {
		c.SessionTTL = collectors.Duration(DefaultSessionTTL)
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = collectors.Duration(DefaultDialTimeout)
	}
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	return c
}

// Validate reports every mistake at once, each naming its field.
func (c Config) Validate() error {
	var errs []error
	if len(c.Endpoints) == 0 {
		errs = append(errs, errors.New("endpoints: at least one etcd endpoint is required"))
	}
	for i, ep := range c.Endpoints {
		if !strings.HasPrefix(ep, "http://") && !strings.HasPrefix(ep, "https://") {
			errs = append(errs, fmt.Errorf("endpoints[%d]: %q must start with http:// or https://", i, ep))
		}
	}
	ttl := time.Duration(c.SessionTTL)
	if ttl != 0 && (ttl < time.Second || ttl%time.Second != 0) {
		errs = append(errs, fmt.Errorf("session_ttl: %v must be a whole number of seconds, at least 1s (etcd leases count seconds)", ttl))
	}
	if c.PasswordEnv != "" && c.PasswordFile != "" {
		errs = append(errs, errors.New("password_env and password_file are mutually exclusive"))
	}
	if (c.Username == "") != (c.PasswordEnv == "" && c.PasswordFile == "") {
		errs = append(errs, errors.New("username and password_env/password_file go together"))
	}
	if c.TLS != nil && (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		errs = append(errs, errors.New("tls: cert_file and key_file go together"))
	}
	return errors.Join(errs...)
}

// TTL is the session TTL in whole seconds, as etcd leases take it.
func (c Config) TTL() int {
	return int(time.Duration(c.WithDefaults().SessionTTL) / time.Second)
}

// NewClient validates c and opens one etcd client over every endpoint;
// lookupEnv replaces os.LookupEnv (nil for the real one); logger receives
// the client's own logs (nil discards them). The client
// connects lazily: an etcd that is down at start is a replica that does
// not lead yet, not a replica that does not start.
func (c Config) NewClient(lookupEnv func(string) (string, bool), logger *slog.Logger) (*clientv3.Client, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	c = c.WithDefaults()
	if lookupEnv == nil {
		lookupEnv = os.LookupEnv
	}
	cc := clientv3.Config{
		Endpoints:   c.Endpoints,
		DialTimeout: time.Duration(c.DialTimeout),
		// Keepalive probes find a dead member well within a short TTL, so
		// the client moves to another endpoint before the lease runs out.
		DialKeepAliveTime:    time.Second,
		DialKeepAliveTimeout: time.Second,
		Logger:               zapslog.New(logger),
		Username:             c.Username,
	}
	if c.Username != "" {
		pw, err := password(c, lookupEnv)
		if err != nil {
			return nil, err
		}
		cc.Password = pw
	}
	if c.TLS != nil {
		t, err := c.TLS.Load()
		if err != nil {
			return nil, err
		}
		cc.TLS = t
	}
	cli, err := clientv3.New(cc)
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}
	return cli, nil
}

func password(c Config, lookupEnv func(string) (string, bool)) (string, error) {
	if c.PasswordEnv != "" {
		v, ok := lookupEnv(c.PasswordEnv)
		if !ok || strings.TrimSpace(v) == "" {
			return "", fmt.Errorf("password_env: environment variable %s is not set or empty", c.PasswordEnv)
		}
		return strings.TrimSpace(v), nil
	}
	b, err := os.ReadFile(c.PasswordFile)
	if err != nil {
		return "", fmt.Errorf("password_file: %w", err)
	}
	v := strings.TrimSpace(string(b))
	if v == "" {
		return "", fmt.Errorf("password_file: %s is empty", c.PasswordFile)
	}
	return v, nil
}
