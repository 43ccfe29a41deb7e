package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// The HTTP guards, tried as an attacker would: anonymous, cross-site,
// wrong password, oversized; and as an operator would: over TLS with basic
// auth, with a client certificate, with vigil silence.

// newSecuredHarness is newHarness with web options of the test's choosing
// (none: the default `vigil run`) and an http section edited by httpExtra
// (lines added under `http:`).
func newSecuredHarness(t *testing.T, web webOptions, httpExtra string) *harness {
	t.Helper()
	dir := t.TempDir()
	h := harnessIn(t, dir, web)
	h.write("rules/etcd.yaml", upRule)
	h.write("vigil.yaml", strings.Replace(baseConfig(sharedEtcd(t), ""), "  address: 127.0.0.1:0\n",
		"  address: 127.0.0.1:0\n"+httpExtra, 1))
	h.start()
	return h
}

// send makes one request with client and returns the status and body.
func send(t *testing.T, client *http.Client, req *http.Request) (int, string) {
	t.Helper()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// short keeps a failure message readable when a body is large.
func short(s string) string {
	if len(s) > 300 {
		return s[:300] + "..."
	}
	return s
}

func newRequest(t *testing.T, method, url, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	return req
}

// silenceCount is how many silences the daemon holds, read from its store,
// not its API, so a refused write is seen not to have happened.
func silenceCount(h *harness) int { return len(h.d.sil.List()) }

// With the default config and flags, anyone may read but no one may write:
// the silence is not created, the reload does not happen, and both the
// API and vigil silence say how to enable writes.
func TestWritesOffByDefault(t *testing.T) {
	h := newSecuredHarness(t, webOptions{}, "")
	base := "http://" + h.d.Addr()

	code, out := send(t, http.DefaultClient, newRequest(t, "POST", base+"/api/v1/silences", maintenance))
	if code != http.StatusForbidden || !strings.Contains(out, "--web.enable-unauthenticated-writes") ||
		!strings.Contains(out, "--web.config.file") {
		t.Errorf("anonymous POST of a silence: %d %q, want 403 saying how to enable writes", code, short(out))
	}
	if n := silenceCount(h); n != 0 {
		t.Fatalf("a refused POST created %d silence(s)", n)
	}
	// Basic auth means nothing where no users are configured.
	req := newRequest(t, "POST", base+"/api/v1/silences", maintenance)
	req.SetBasicAuth("admin", "admin")
	if code, _ := send(t, http.DefaultClient, req); code != http.StatusForbidden {
		t.Errorf("POST with made-up basic auth: %d, want 403", code)
	}
	if code, _ := send(t, http.DefaultClient, newRequest(t, "DELETE", base+"/api/v1/silences/x", "")); code != http.StatusForbidden {
		t.Errorf("anonymous DELETE: %d, want 403", code)
	}

	h.d.watch.Close() // only the POST could load the new rule
	h.write("rules/more.yaml", strings.NewReplacer("MemberUp", "Other", "name: members", "name: other").Replace(upRule))
	if code, _ := send(t, http.DefaultClient, newRequest(t, "POST", base+"/-/reload", "")); code != http.StatusForbidden {
		t.Errorf("anonymous POST /-/reload: %d, want 403", code)
	}
	if h.hasRule("Other") {
		t.Error("a refused POST /-/reload reloaded")
	}

	h.tick(1) // ready after the first collection
	for _, p := range []string{"/", "/api/v1/silences", "/api/v1/alerts", "/metrics", "/healthz", "/readyz"} {
		if code, _ := h.get(p, ""); code != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", p, code)
		}
	}

	var stdout, stderr bytes.Buffer
	code = run([]string{"silence", "add", "--url", base, "--for", "1h", "--comment", "maintenance", `host.hostName="m0"`}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "--web.enable-unauthenticated-writes") ||
		!strings.Contains(stderr.String(), "--user NAME --password-file FILE") {
		t.Errorf("vigil silence add against a Vigil without authentication: exit %d\n%s", code, stderr.String())
	}
	if n := silenceCount(h); n != 0 {
		t.Fatalf("vigil silence add created %d silence(s)", n)
	}
}

// A page on another site cannot write, even through a browser that holds
// the bearer token or basic auth; Vigil's own origin and non-browser
// clients can.
func TestCrossSiteWritesRefused(t *testing.T) {
	tokenFile := filepath.Join(t.TempDir(), "token")
	os.WriteFile(tokenFile, []byte("t0ken\n"), 0o600)
	h := newSecuredHarness(t, webOptions{}, "  bearer_token_file: "+tokenFile+"\n")
	url := "http://" + h.d.Addr() + "/api/v1/silences"

	for _, tc := range []struct {
		name    string
		headers map[string]string
	}{
		{"Sec-Fetch-Site cross-site", map[string]string{"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}},
		{"Sec-Fetch-Site same-site", map[string]string{"Sec-Fetch-Site": "same-site", "Origin": "https://other.vigil.example"}},
		{"foreign Origin, no Sec-Fetch-Site", map[string]string{"Origin": "https://evil.example"}},
	} {
		req := newRequest(t, "POST", url, maintenance)
		req.Header.Set("Content-Type", "text/plain") // a form or fetch needs no preflight for it
		req.Header.Set("Authorization", "Bearer t0ken")
		for k, v := range tc.headers {
			req.Header.Set(k, v)
		}
		if code, out := send(t, http.DefaultClient, req); code != http.StatusForbidden {
			t.Errorf("%s: %d %q, want 403", tc.name, code, short(out))
		}
	}
	if n := silenceCount(h); n != 0 {
		t.Fatalf("cross-site POSTs created %d silence(s)", n)
	}

	req := newRequest(t, "POST", url, maintenance)
	req.Header.Set("Authorization", "Bearer t0ken")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if code, out := send(t, http.DefaultClient, req); code != http.StatusCreated {
		t.Fatalf("same-origin POST with the token: %d %s", code, short(out))
	}
	req = newRequest(t, "POST", url, maintenance)
	if code, _ := send(t, http.DefaultClient, req); code != http.StatusUnauthorized {
		t.Errorf("POST without the token: %d, want 401", code)
	}
	if n := silenceCount(h); n != 1 {
		t.Errorf("%d silences, want the one same-origin POST's", n)
	}
}

// pki is a CA with a server certificate for 127.0.0.1 and a client
// certificate, written as PEM files.
type pki struct {
	dir                                 string
	caFile, certFile, keyFile           string
	clientCertFile, clientKeyFile       string
	otherClientCert, otherClientKeyFile string // signed by another CA
	pool                                *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	p := &pki{dir: t.TempDir()}
	caKey, caCert, caDER := newCA(t, "vigil test CA")
	p.caFile = p.writePEM(t, "ca.crt", "CERTIFICATE", caDER)
	p.pool = x509.NewCertPool()
	p.pool.AddCert(caCert)
	p.certFile, p.keyFile = p.leaf(t, "server", caCert, caKey, x509.ExtKeyUsageServerAuth)
	p.clientCertFile, p.clientKeyFile = p.leaf(t, "client", caCert, caKey, x509.ExtKeyUsageClientAuth)
	otherKey, otherCert, _ := newCA(t, "another CA")
	p.otherClientCert, p.otherClientKeyFile = p.leaf(t, "other", otherCert, otherKey, x509.ExtKeyUsageClientAuth)
	return p
}

func newCA(t *testing.T, name string) (*ecdsa.PrivateKey, *x509.Certificate, []byte) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return key, cert, der
}

func (p *pki) leaf(t *testing.T, name string, ca *x509.Certificate, caKey *ecdsa.PrivateKey, usage x509.ExtKeyUsage) (string, string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return p.writePEM(t, name+".crt", "CERTIFICATE", der), p.writePEM(t, name+".key", "EC PRIVATE KEY", keyDER)
}

func (p *pki) writePEM(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(p.dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// client is a real TLS client trusting the test CA, with the given
// client certificate, if any.
func (p *pki) client(t *testing.T, certFile, keyFile string) *http.Client {
	t.Helper()
	tc := &tls.Config{RootCAs: p.pool}
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: tc}}
}

// Over TLS with basic auth from a web config: the right password writes,
// a wrong one or none does not; vigil silence does the same with its flags.
func TestTLSBasicAuthWrites(t *testing.T) {
	p := newPKI(t)
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	webCfg := filepath.Join(p.dir, "web.yml")
	os.WriteFile(webCfg, []byte("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"+
		"basic_auth_users:\n  alice: "+string(hash)+"\n"), 0o600)
	h := newSecuredHarness(t, webOptions{ConfigFile: webCfg}, "")
	url := "https://" + h.d.Addr() + "/api/v1/silences"
	client := p.client(t, "", "")

	if _, err := http.Get(url); err == nil {
		t.Error("plain HTTP client: no TLS error against a TLS Vigil")
	}
	for _, tc := range []struct {
		name, user, pass string
	}{{"no credentials", "", ""}, {"wrong password", "alice", "guess"}, {"unknown user", "mallory", "s3cret pass"}} {
		req := newRequest(t, "POST", url, maintenance)
		if tc.user != "" {
			req.SetBasicAuth(tc.user, tc.pass)
		}
		if code, _ := send(t, client, req); code != http.StatusUnauthorized {
			t.Errorf("%s: %d, want 401", tc.name, code)
		}
	}
	if n := silenceCount(h); n != 0 {
		t.Fatalf("refused POSTs created %d silence(s)", n)
	}
	if code, _ := send(t, client, newRequest(t, "GET", url, "")); code != http.StatusUnauthorized {
		t.Errorf("GET without the password: %d, want 401 (basic auth covers reads too)", code)
	}
	req := newRequest(t, "POST", url, maintenance)
	req.SetBasicAuth("alice", "s3cret pass")
	if code, out := send(t, client, req); code != http.StatusCreated {
		t.Fatalf("POST with alice's password over TLS: %d %s", code, short(out))
	}

	passFile := filepath.Join(p.dir, "password")
	os.WriteFile(passFile, []byte("s3cret pass\n"), 0o600)
	var stdout, stderr bytes.Buffer
	args := []string{"silence", "add", "--url", "https://" + h.d.Addr(), "--ca-file", p.caFile,
		"--user", "alice", "--password-file", passFile, "--for", "1h", "--comment", "disk", `host.hostName="m0"`}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("vigil silence add over TLS with basic auth: exit %d\n%s", code, stderr.String())
	}
	if n := silenceCount(h); n != 2 {
		t.Errorf("%d silences, want 2", n)
	}
	stderr.Reset()
	if code := run([]string{"silence", "list", "--url", "https://" + h.d.Addr()}, &stdout, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "certificate") {
		t.Errorf("vigil silence list without the CA: exit %d %q, want a certificate error", code, stderr.String())
	}
}

// A web config the toolkit would not serve is a refusal to start, naming
// the flag and the problem.
func TestBadWebConfigRefusesStart(t *testing.T) {
	dir := t.TempDir()
	os.Mkdir(filepath.Join(dir, "rules"), 0o755)
	os.WriteFile(filepath.Join(dir, "rules", "etcd.yaml"), []byte(upRule), 0o644)
	os.WriteFile(filepath.Join(dir, "vigil.yaml"), []byte(baseConfig(sharedEtcd(t), "")), 0o644)
	for name, content := range map[string]string{
		"missing key":     "tls_server_config:\n  cert_file: server.crt\n",
		"plain password":  "basic_auth_users:\n  alice: hunter2\n",
		"unknown setting": "tls_server_confg: {}\n",
	} {
		webCfg := filepath.Join(dir, "web.yml")
		os.WriteFile(webCfg, []byte(content), 0o600)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		d, err := newDaemon(daemonOptions{ConfigPath: filepath.Join(dir, "vigil.yaml"), Listener: ln, NoSchedule: true,
			Console: io.Discard, Web: webOptions{ConfigFile: webCfg}})
		if err != nil {
			t.Fatal(err)
		}
		err = d.Start()
		d.Stop()
		ln.Close()
		t.Logf("%s: %v", name, err)
		if err == nil || !strings.Contains(err.Error(), "--web.config.file") {
			t.Errorf("%s: Start: %v, want a refusal naming --web.config.file", name, err)
		}
	}
}

// A client certificate the web config's client CA verified may write; no
// certificate, or one from another CA, reads only.
func TestClientCertificateWrites(t *testing.T) {
	p := newPKI(t)
	webCfg := filepath.Join(p.dir, "web.yml")
	os.WriteFile(webCfg, []byte("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"+
		"  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: ca.crt\n"), 0o600)
	h := newSecuredHarness(t, webOptions{ConfigFile: webCfg}, "")
	base := "https://" + h.d.Addr()

	anon := p.client(t, "", "")
	if code, _ := send(t, anon, newRequest(t, "GET", base+"/api/v1/silences", "")); code != http.StatusOK {
		t.Errorf("GET without a certificate: %d, want 200", code)
	}
	if code, out := send(t, anon, newRequest(t, "POST", base+"/api/v1/silences", maintenance)); code != http.StatusUnauthorized ||
		!strings.Contains(out, "authenticated caller") {
		t.Errorf("POST without a certificate: %d %q, want 401", code, short(out))
	}
	// Go's client does not even offer a certificate the server's CA list
	// does not name, so this one is anonymous.
	other := p.client(t, p.otherClientCert, p.otherClientKeyFile)
	if resp, err := other.Do(newRequest(t, "POST", base+"/api/v1/silences", maintenance)); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("POST with a certificate from another CA: %d, want 401", resp.StatusCode)
		}
	}
	if n := silenceCount(h); n != 0 {
		t.Fatalf("refused POSTs created %d silence(s)", n)
	}

	var stdout, stderr bytes.Buffer
	args := []string{"silence", "add", "--url", base, "--ca-file", p.caFile, "--cert-file", p.clientCertFile,
		"--key-file", p.clientKeyFile, "--for", "1h", "--comment", "disk", `host.hostName="m0"`}
	if code := run(args, &stdout, &stderr); code != 0 {
		t.Fatalf("vigil silence add with a client certificate: exit %d\n%s", code, stderr.String())
	}
	if n := silenceCount(h); n != 1 {
		t.Errorf("%d silences, want 1", n)
	}
}

// The page and the API send headers that keep them out of frames, stop
// content sniffing and allow nothing but the page's own style.
func TestSecurityHeaders(t *testing.T) {
	h := newSecuredHarness(t, webOptions{}, "")
	for _, p := range []string{"/", "/api/v1/alerts", "/nosuchpage"} {
		resp, err := http.Get("http://" + h.d.Addr() + p)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		csp := resp.Header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") ||
			resp.Header.Get("X-Frame-Options") != "DENY" || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s headers: %v", p, resp.Header)
		}
		if p != "/" {
			continue
		}
		// The policy names the hash of the style the page really sends,
		// or a browser would show the page unstyled.
		page := string(body)
		i, j := strings.Index(page, "<style>"), strings.Index(page, "</style>")
		if i < 0 || j < i {
			t.Fatal("no <style> on the page")
		}
		sum := sha256.Sum256([]byte(page[i+len("<style>") : j]))
		if want := "style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"; !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
}

// A body over the limit is refused with 413 before anything reads it.
func TestOversizedBodyRefused(t *testing.T) {
	h := newSecuredHarness(t, webOptions{EnableUnauthenticatedWrites: true, MaxRequestBytes: 64 << 10}, "")
	big := `{"matchers": ["host.hostName=\"m0\""], "duration": "1h", "created_by": "a", "comment": "` +
		strings.Repeat("x", 100<<10) + `"}`
	code, out := send(t, http.DefaultClient, newRequest(t, "POST", "http://"+h.d.Addr()+"/api/v1/silences", big))
	if code != http.StatusRequestEntityTooLarge {
		t.Errorf("100 KiB POST with a 64 KiB limit: %d %q, want 413", code, short(out))
	}
	if n := silenceCount(h); n != 0 {
		t.Fatalf("an oversized POST created %d silence(s)", n)
	}
	// A body of unknown length is cut at the limit as it is read (the
	// silence handler's own limit is larger than this one).
	h2 := newSecuredHarness(t, webOptions{EnableUnauthenticatedWrites: true, MaxRequestBytes: 16 << 10}, "")
	req := newRequest(t, "POST", "http://"+h2.d.Addr()+"/api/v1/silences", "")
	req.Body = io.NopCloser(strings.NewReader(big[:32<<10-2] + `"}`)) // no Content-Length: chunked
	if code, out := send(t, http.DefaultClient, req); code/100 == 2 || !strings.Contains(out, "too large") {
		t.Errorf("32 KiB chunked POST with a 16 KiB limit: %d %q, want refused as too large", code, short(out))
	}
	if n := silenceCount(h2); n != 0 {
		t.Fatalf("an oversized chunked POST created %d silence(s)", n)
	}

	srv := h.d.srv
	if srv.ReadHeaderTimeout <= 0 || srv.ReadTimeout <= 0 || srv.WriteTimeout <= 0 || srv.IdleTimeout <= 0 {
		t.Errorf("server timeouts: header %v read %v write %v idle %v, want all set",
			srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
}

// With unauthenticated writes on, a write addressed to a host name (a page
// that rebound its own name to Vigil's address: same-origin to the
// browser) is refused; one to the address goes through.
func TestUnauthenticatedWritesRefuseRebinding(t *testing.T) {
	h := newSecuredHarness(t, webOptions{EnableUnauthenticatedWrites: true}, "")
	base := "http://" + h.d.Addr()
	req := newRequest(t, "POST", base+"/api/v1/silences", maintenance)
	_, port, _ := net.SplitHostPort(h.d.Addr())
	req.Host = "attacker.example:" + port
	if code, out := send(t, http.DefaultClient, req); code != http.StatusForbidden || !strings.Contains(out, "attacker.example") {
		t.Errorf("write to a rebound host name: %d %q, want 403", code, short(out))
	}
	if n := silenceCount(h); n != 0 {
		t.Fatalf("a rebound write created %d silence(s)", n)
	}
	for _, host := range []string{h.d.Addr(), "localhost:" + port} {
		req := newRequest(t, "POST", base+"/api/v1/silences", maintenance)
		req.Host = host
		if code, out := send(t, http.DefaultClient, req); code != http.StatusCreated {
			t.Errorf("write to %s: %d %q, want 201", host, code, short(out))
		}
	}
}
