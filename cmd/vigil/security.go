package main

import (
	"crypto/sha256"
	"encoding/base64"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/prometheus/exporter-toolkit/web"
	"go.yaml.in/yaml/v2"
	"golang.org/x/crypto/bcrypt"
)

// How `vigil run` guards its HTTP (docs/deploy.md, "Security"): TLS, client
// certificates and basic auth come from the exporter-toolkit web config
// Prometheus uses; requests that change state need an authenticated caller;
// no cross-site writes; bounded bodies and time; headers that keep the page
// out of frames and sniffing.

// defaultMaxRequestBytes bounds a request body: the largest legitimate one,
// a silence, is a few KiB.
const defaultMaxRequestBytes = 1 << 20

// webOptions are `vigil run`'s --web.* flags.
type webOptions struct {
	// ConfigFile is the exporter-toolkit web config (TLS, client
	// certificates, basic auth); empty serves plain HTTP.
	ConfigFile string
	// EnableUnauthenticatedWrites lets any caller that reaches the API
	// change state (silences, reload). Unsafe except on loopback.
	EnableUnauthenticatedWrites bool
	// MaxRequestBytes bounds every request body (default 1 MiB).
	MaxRequestBytes int64
}

// addWebFlags adds the --web.* flags to fs.
func addWebFlags(fs *flag.FlagSet) *webOptions {
	o := &webOptions{}
	fs.StringVar(&o.ConfigFile, "web.config.file", "",
		"web config file for TLS, client certificates and basic auth (the Prometheus exporter-toolkit format)")
	fs.BoolVar(&o.EnableUnauthenticatedWrites, "web.enable-unauthenticated-writes", false,
		"UNSAFE: let anyone who reaches the API create and expire silences and reload, without authentication")
	fs.Int64Var(&o.MaxRequestBytes, "web.max-request-bytes", defaultMaxRequestBytes, "largest request body accepted")
	return o
}

// httpServer is the server with every timeout set, so a slow or idle
// client cannot hold a connection.
func (d *daemon) httpServer() *http.Server {
	return &http.Server{
		Handler:           d.handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      time.Minute,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// TLS handshake failures from scanners would flood the log.
		ErrorLog: slog.NewLogLogger(d.log.With("component", "http").Handler(), slog.LevelDebug),
	}
}

// serveHTTP serves d.srv on ln through the exporter-toolkit, which adds TLS
// and basic auth as the web config says, re-reading it for every
// connection and request.
func (d *daemon) serveHTTP(ln net.Listener) error {
	path := d.o.Web.ConfigFile
	return web.Serve(ln, d.srv, &web.FlagConfig{WebConfigFile: &path}, d.log.With("component", "http"))
}

// checkWeb refuses to start with a web config the toolkit would not serve,
// and says whether writes are possible and how.
func (d *daemon) checkWeb() error {
	if err := web.Validate(d.o.Web.ConfigFile); err != nil {
		return fmt.Errorf("--web.config.file %s: %w", d.o.Web.ConfigFile, err)
	}
	wc, err := readWebConfig(d.o.Web.ConfigFile)
	if err != nil {
		return err
	}
	switch {
	case d.o.Web.EnableUnauthenticatedWrites:
		d.log.Warn("unauthenticated writes enabled: anyone who reaches the API can create silences and reload")
	case !writeAuthConfigured(wc, d.cfg.Load().BearerToken()):
		d.log.Info("writes (silences, reload) are off: no authentication configured; see docs/deploy.md#security")
	}
	if len(wc.Users) > 0 && !wc.TLSConfig.IsEnabled() {
		d.log.Warn("basic auth without TLS: passwords cross the network in clear")
	}
	return nil
}

// readWebConfig reads the web config as the toolkit does (it has been
// validated at start); no file is an empty config.
func readWebConfig(path string) (*web.Config, error) {
	c := &web.Config{}
	if path == "" {
		return c, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--web.config.file: %w", err)
	}
	if err := yaml.UnmarshalStrict(b, c); err != nil {
		return nil, fmt.Errorf("--web.config.file %s: %w", path, err)
	}
	return c, nil
}

// writeAuthConfigured reports whether any caller can authenticate: basic
// auth users, verified client certificates or a bearer token.
func writeAuthConfigured(wc *web.Config, token string) bool {
	switch wc.TLSConfig.ClientAuth {
	case "VerifyClientCertIfGiven", "RequireAndVerifyClientCert":
		return true
	}
	return len(wc.Users) > 0 || token != ""
}

const writesOff = `writes are off: this Vigil has no authentication configured, so it refuses every request that changes state (silences, reload).
To enable them, configure authentication: basic_auth_users or client certificates in the file given to vigil run --web.config.file, or http.bearer_token_file in Vigil's config (docs/deploy.md#security).
Only where everyone who can reach this address is trusted, start vigil run with --web.enable-unauthenticated-writes (unsafe).
`

const needsAuth = `this request changes state and needs an authenticated caller: basic auth or a client certificate as --web.config.file says, or the bearer token (http.bearer_token_file)
`

// writeGuard lets a request that may change state (any method but GET,
// HEAD and OPTIONS) through only from an authenticated caller, unless
// --web.enable-unauthenticated-writes. It decides by method, not route, so
// a route added later is guarded too.
func (d *daemon) writeGuard(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodGet, http.MethodHead, http.MethodOptions:
			next.ServeHTTP(w, r)
			return
		}
		if d.o.Web.EnableUnauthenticatedWrites {
			// A page that rebinds its own host name to this address is
			// same-origin to the browser; it still sends that name.
			if !addressHost(r.Host) {
				http.Error(w, "unauthenticated writes are accepted only at an IP address or localhost, not at host "+r.Host+": use the address, or configure authentication\n", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
			return
		}
		// Read now, as the toolkit does: a caller is checked against the
		// users and CA in force, never against removed ones.
		wc, err := readWebConfig(d.o.Web.ConfigFile)
		if err != nil {
			d.log.Error("web config unreadable; refusing writes", "err", err)
			http.Error(w, "web config unreadable; writes refused until it is fixed", http.StatusInternalServerError)
			return
		}
		token := d.cfg.Load().BearerToken()
		if (token != "" && bearerOK(r, token)) || verifiedClientCert(r) || basicAuthOK(r, wc) {
			next.ServeHTTP(w, r)
			return
		}
		if !writeAuthConfigured(wc, token) {
			http.Error(w, writesOff, http.StatusForbidden)
			return
		}
		if token != "" {
			w.Header().Set("WWW-Authenticate", `Bearer realm="vigil"`)
		}
		http.Error(w, needsAuth, http.StatusUnauthorized)
	})
}

// addressHost reports whether a request's Host is an IP address or
// localhost (with or without a port): what a caller trusted by
// --web.enable-unauthenticated-writes types, and what DNS rebinding cannot
// send.
func addressHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = strings.Trim(hostport, "[]")
	}
	return host == "localhost" || net.ParseIP(host) != nil
}

// verifiedClientCert reports whether the caller showed a certificate that
// the web config's client CA verified (RequestClientCert and
// RequireAnyClientCert verify nothing, so they leave no chain).
func verifiedClientCert(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.VerifiedChains) > 0
}

// basicAuthOK checks the caller's basic auth against the web config's
// bcrypt hashes. The toolkit has already refused a wrong password when
// users are configured; checking again here means a write never relies
// on the order the two read the file in.
func basicAuthOK(r *http.Request, wc *web.Config) bool {
	user, pass, ok := r.BasicAuth()
	if !ok || len(wc.Users) == 0 {
		return false
	}
	hash, known := wc.Users[user]
	return known && bcrypt.CompareHashAndPassword([]byte(hash), []byte(pass)) == nil
}

// crossOrigin refuses unsafe requests a browser marks as cross-site
// (Sec-Fetch-Site, else an Origin other than the Host): a page the on-call
// engineer opens cannot silence alerts with their credentials.
func crossOrigin() *http.CrossOriginProtection {
	c := http.NewCrossOriginProtection()
	c.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "cross-origin request refused: change state from Vigil's own page, curl or vigil silence", http.StatusForbidden)
	}))
	return c
}

// contentSecurityPolicy allows nothing but the status page's own inline
// style, by hash: no script, frame, form, plugin or base URL.
var contentSecurityPolicy = func() string {
	style := statusHTML[strings.Index(statusHTML, "<style>")+len("<style>") : strings.Index(statusHTML, "</style>")]
	sum := sha256.Sum256([]byte(style))
	return "default-src 'none'; style-src 'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) +
		"'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}()

var securityHeaders = [][2]string{
	{"Content-Security-Policy", contentSecurityPolicy},
	{"X-Frame-Options", "DENY"},
	{"X-Content-Type-Options", "nosniff"},
}

// secure sets the security headers on every answer (a value the web
// config's http_server_config.headers sets wins) and bounds the body.
func (d *daemon) secure(next http.Handler) http.Handler {
	limit := d.o.Web.MaxRequestBytes
	if limit <= 0 {
		limit = defaultMaxRequestBytes
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		for _, kv := range securityHeaders {
			if h.Get(kv[0]) == "" {
				h.Set(kv[0], kv[1])
			}
		}
		if r.ContentLength > limit {
			http.Error(w, fmt.Sprintf("request body larger than %d bytes", limit), http.StatusRequestEntityTooLarge)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, limit)
		next.ServeHTTP(w, r)
	})
}
