package email_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"

	"github.com/vigil-alerts/vigil/notifiers/email"
)

// testCA is a throwaway CA with one server certificate for 127.0.0.1.
type testCA struct {
	pool   *x509.CertPool
	server tls.Certificate
}

func newTestCA(t *testing.T) testCA {
	t.Helper()
	now := time.Now()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vigil test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(caCert)
	return testCA{pool: pool, server: tls.Certificate{Certificate: [][]byte{der, caDER}, PrivateKey: key}}
}

func (ca testCA) serverTLS() *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{ca.server}, MinVersion: tls.VersionTLS12}
}

// clientTLS is what an operator passes via notifiers.WithEmailTLSConfig:
// a private CA, and no ServerName since one config serves every channel.
func (ca testCA) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: ca.pool, MinVersion: tls.VersionTLS12}
}

func newTLSServer(be *backend) *smtp.Server {
	srv := smtp.NewServer(be)
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = false // AUTH only once the connection is encrypted
	srv.ReadTimeout, srv.WriteTimeout = 5*time.Second, 5*time.Second
	srv.ErrorLog = log.New(io.Discard, "", 0) // failed handshakes are the point of some tests
	return srv
}

// startSTARTTLS serves plain SMTP that offers STARTTLS and AUTH only after it.
func startSTARTTLS(t *testing.T, be *backend, ca testCA) string {
	t.Helper()
	srv := newTLSServer(be)
	srv.TLSConfig = ca.serverTLS()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l) //nolint:errcheck // returns on Close
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// startImplicitTLS serves SMTP inside TLS from the first byte (port 465 style).
func startImplicitTLS(t *testing.T, be *backend, ca testCA) string {
	t.Helper()
	srv := newTLSServer(be)
	l, err := tls.Listen("tcp", "127.0.0.1:0", ca.serverTLS())
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l) //nolint:errcheck // returns on Close
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

const testPassword = "s3cret-pw"

// tlsNotifier takes the password from a file (starttls) or an env var
// (implicit), so both secret sources are exercised over TLS.
func tlsNotifier(t *testing.T, addr, mode string, clientTLS *tls.Config) *email.Notifier {
	t.Helper()
	cfg := email.Config{Smarthost: addr, TLS: mode, Auth: "plain", Username: "vigil",
		From: "vigil@example.com", To: []string{"oncall@example.com"}, Cc: []string{"lead@example.com"},
		Headers: map[string]string{"X-Vigil-Env": "test"}, Timeout: 3 * time.Second}
	opts := email.Options{TLSConfig: clientTLS, LookupEnv: func(string) (string, bool) { return "", false }}
	if mode == email.TLSStartTLS {
		cfg.PasswordFile = filepath.Join(t.TempDir(), "smtp-password")
		if err := os.WriteFile(cfg.PasswordFile, []byte(testPassword+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	} else {
		cfg.PasswordEnv = "VIGIL_SMTP_PASSWORD"
		opts.LookupEnv = func(k string) (string, bool) {
			if k == cfg.PasswordEnv {
				return testPassword, true
			}
			return "", false
		}
	}
	n, err := email.New(cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

var tlsModes = []struct {
	mode  string
	start func(*testing.T, *backend, testCA) string
}{
	{email.TLSStartTLS, startSTARTTLS},
	{email.TLSImplicit, startImplicitTLS},
}

func TestTLSDelivery(t *testing.T) {
	ca := newTestCA(t)
	for _, tc := range tlsModes {
		t.Run(tc.mode, func(t *testing.T) {
			be := &backend{}
			n := tlsNotifier(t, tc.start(t, be, ca), tc.mode, ca.clientTLS())
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if retry, err := n.Notify(ctx, alerts()...); err != nil {
				t.Fatalf("Notify: retry=%v %v", retry, err)
			}
			mails := be.mails()
			if len(mails) != 1 {
				t.Fatalf("got %d mails", len(mails))
			}
			st := mails[0].tls
			if st == nil {
				t.Fatal("server saw AUTH on a plaintext connection")
			}
			if !st.HandshakeComplete || st.Version < tls.VersionTLS12 {
				t.Errorf("TLS state at AUTH: handshake=%v version=%x", st.HandshakeComplete, st.Version)
			}
			if all, plain := be.authCounts(); all != 1 || plain != 0 {
				t.Errorf("auths=%d plaintext=%d, want 1 and 0", all, plain)
			}
			checkMail(t, mails[0])
		})
	}
}

func TestTLSUntrustedCA(t *testing.T) {
	ca, other := newTestCA(t), newTestCA(t)
	for _, tc := range tlsModes {
		t.Run(tc.mode, func(t *testing.T) {
			be := &backend{}
			n := tlsNotifier(t, tc.start(t, be, ca), tc.mode, other.clientTLS())
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			start := time.Now()
			retry, err := n.Notify(ctx, alerts()...)
			if err == nil {
				t.Fatal("sent to a server whose certificate is not trusted")
			}
			t.Logf("error: %v", err)
			if retry {
				t.Errorf("retry=true for an untrusted certificate; it will not fix itself: %v", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("failure took %v", d)
			}
			msg := err.Error()
			if !strings.Contains(msg, "certificate") || !strings.Contains(msg, "unknown authority") {
				t.Errorf("error does not say the certificate is untrusted: %v", err)
			}
			if strings.Contains(msg, testPassword) {
				t.Errorf("password in error: %v", err)
			}
			if all, _ := be.authCounts(); all != 0 || len(be.mails()) != 0 {
				t.Errorf("server saw %d auths and %d mails", all, len(be.mails()))
			}
		})
	}
}

// A server that does not offer STARTTLS (or an attacker stripping it) must
// not get the password in plain text when tls is starttls.
func TestSTARTTLSRequired(t *testing.T) {
	be := &backend{}
	n := tlsNotifier(t, startSMTP(t, be), email.TLSStartTLS, newTestCA(t).clientTLS())
	_, err := n.Notify(context.Background(), alerts()...)
	if err == nil || !strings.Contains(err.Error(), "STARTTLS") {
		t.Errorf("err = %v, want a STARTTLS error", err)
	}
	if err != nil && strings.Contains(err.Error(), testPassword) {
		t.Errorf("password in error: %v", err)
	}
	if all, _ := be.authCounts(); all != 0 || len(be.mails()) != 0 {
		t.Errorf("server saw %d auths and %d mails without TLS", all, len(be.mails()))
	}
}
