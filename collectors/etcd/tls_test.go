package etcd_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/vigil-alerts/vigil/collectors"
	"github.com/vigil-alerts/vigil/model"
)

// pki is a throw-away CA that signs certificates into a directory.
type pki struct {
	t    *testing.T
	dir  string
	name string
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	File string // the CA certificate, PEM
}

var serial int64

func newKey(t *testing.T) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newCA(t *testing.T, dir, name string) *pki {
	t.Helper()
	key := newKey(t)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(serial),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	p := &pki{t: t, dir: dir, name: name, cert: cert, key: key}
	p.File = p.write(name+".pem", "CERTIFICATE", der)
	return p
}

func (p *pki) write(name, typ string, der []byte) string {
	p.t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// issue signs a leaf certificate for 127.0.0.1 and returns its certificate
// and key files.
func (p *pki) issue(name string, usage ...x509.ExtKeyUsage) (certFile, keyFile string) {
	p.t.Helper()
	key := newKey(p.t)
	serial++
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: name},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  usage,
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		p.t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		p.t.Fatal(err)
	}
	return p.write(p.name+"-"+name+".pem", "CERTIFICATE", der), p.write(p.name+"-"+name+"-key.pem", "PRIVATE KEY", kder)
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startTLSMember starts one embedded member serving its client port (gRPC
// and /metrics) over TLS, requiring a client certificate signed by ca.
func startTLSMember(t *testing.T, ca *pki) string {
	t.Helper()
	// The server certificate is also the client certificate of etcd's own
	// gRPC gateway, hence both usages.
	cert, key := ca.issue("server", x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth)
	cu := url.URL{Scheme: "https", Host: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
	cfg := embed.NewConfig()
	cfg.Name = "tls"
	cfg.Dir = t.TempDir()
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	cfg.TickMs, cfg.ElectionMs = 10, 100
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	cfg.ClientTLSInfo = transport.TLSInfo{
		CertFile:       cert,
		KeyFile:        key,
		TrustedCAFile:  ca.File,
		ClientCertAuth: true,
	}
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close) // exactly once
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		t.Fatal(err)
	case <-time.After(20 * time.Second):
		t.Fatal("TLS member not ready")
	}
	return cu.String()
}

// buildFromYAML decodes a collectors file strictly, as Vigil does, and
// builds it.
func buildFromYAML(t *testing.T, src string) *collectors.TargetCollector {
	t.Helper()
	var f struct {
		Collectors []collectors.Config `yaml:"collectors"`
	}
	if err := yaml.UnmarshalWithOptions([]byte(src), &f, yaml.Strict()); err != nil {
		t.Fatalf("%s\n%s", yaml.FormatError(err, false, true), src)
	}
	cs, err := collectors.Build(f.Collectors, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := cs[0].(*collectors.TargetCollector)
	t.Cleanup(func() { c.Close() })
	return c
}

func sampleValue(samples []model.Sample, metric string) (float64, bool) {
	for _, s := range samples {
		if s.Metric == metric {
			return s.Value, true
		}
	}
	return 0, false
}

// TestTLSClientCertificates runs the collector, configured by YAML as in
// docs/collectors.md, against a member that requires client certificates.
func TestTLSClientCertificates(t *testing.T) {
	dir := t.TempDir()
	ca := newCA(t, dir, "ca")
	other := newCA(t, dir, "other-ca")
	endpoint := startTLSMember(t, ca)
	clientCert, clientKey := ca.issue("vigil", x509.ExtKeyUsageClientAuth)
	strangerCert, strangerKey := other.issue("vigil", x509.ExtKeyUsageClientAuth)

	const timeout = 2 * time.Second
	config := func(tls string) string {
		return fmt.Sprintf(`collectors:
  - name: etcd
    type: etcd
    interval: 15s
    timeout: %v
    tls:
%s
    targets:
      - name: etcd-1
        address: %s
        tags: {host.hostName: etcd-1}
`, timeout, tls, endpoint)
	}

	t.Run("client certificate", func(t *testing.T) {
		t.Parallel()
		c := buildFromYAML(t, config(fmt.Sprintf(`      ca_file: %s
      cert_file: %s
      key_file: %s`, ca.File, clientCert, clientKey)))
		// Two collections: the page's rates need a previous page.
		var samples []model.Sample
		for i := range 2 {
			var err error
			samples, err = c.Collect(context.Background(), time.Unix(int64(100+i), 0))
			if err != nil {
				t.Fatalf("collection %d: %v", i, err)
			}
		}
		for metric, want := range map[string]float64{
			"etcd.can_connect":   1,
			"etcd.is_leader":     1, // a single member leads itself
			"etcd.members":       1,
			"etcd.has_leader":    1, // from /metrics, also over TLS
			"vigil.collector.up": 1,
		} {
			if v, ok := sampleValue(samples, metric); !ok || v != want {
				t.Errorf("%s = %v (present %v), want %v", metric, v, ok, want)
			}
		}
		for _, metric := range []string{"etcd.raft.term", "etcd.raft.index", "etcd.db.size", "etcd.member.id", "etcd.latency", "etcd.self.recv.pkgrate"} {
			if _, ok := sampleValue(samples, metric); !ok {
				t.Errorf("no %s", metric)
			}
		}
		if n := c.Stats().Errors; n != 0 {
			t.Errorf("%d errors counted", n)
		}
	})

	for _, tc := range []struct {
		name, tls string
		// The reason must be in the error, for the gRPC and the page fetch.
		reason []string
	}{
		{
			name:   "no client certificate",
			tls:    "      ca_file: " + ca.File,
			reason: []string{"certificate required"},
		},
		{
			name: "wrong CA",
			tls: fmt.Sprintf(`      ca_file: %s
      cert_file: %s
      key_file: %s`, other.File, clientCert, clientKey),
			reason: []string{"certificate signed by unknown authority"},
		},
		{
			name: "client certificate from another CA",
			tls: fmt.Sprintf(`      ca_file: %s
      cert_file: %s
      key_file: %s`, ca.File, strangerCert, strangerKey),
			// Go's TLS client sends no certificate that does not chain to a
			// CA the member asks for, so the member sees none.
			reason: []string{"certificate required"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := buildFromYAML(t, config(tc.tls))
			start := time.Now()
			samples, err := c.Collect(context.Background(), time.Unix(100, 0))
			took := time.Since(start)
			if took > timeout+500*time.Millisecond {
				t.Errorf("took %v with a %v timeout", took, timeout)
			}
			if err == nil {
				t.Fatal("no error")
			}
			t.Logf("took %v: %v", took, err)
			if v, ok := sampleValue(samples, "etcd.can_connect"); !ok || v != 0 {
				t.Errorf("etcd.can_connect = %v (present %v), want 0", v, ok)
			}
			if v, _ := sampleValue(samples, "vigil.collector.up"); v != 0 {
				t.Errorf("vigil.collector.up = %v", v)
			}
			if v, _ := sampleValue(samples, "vigil.collector.errors"); v != 1 {
				t.Errorf("vigil.collector.errors = %v", v)
			}
			if n := c.Stats().TargetErrs["etcd-1"]; n != 1 {
				t.Errorf("%d errors counted for etcd-1", n)
			}
			msg := err.Error()
			for _, part := range []string{"status " + endpoint, "metrics " + endpoint + "/metrics"} {
				i := strings.Index(msg, part)
				if i < 0 {
					t.Errorf("error does not mention %q: %v", part, err)
					continue
				}
				line, _, _ := strings.Cut(msg[i:], "\n")
				for _, r := range tc.reason {
					if !strings.Contains(line, r) {
						t.Errorf("%s: error does not say %q: %s", part, r, line)
					}
				}
			}
		})
	}
}
