package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"
)

// `vigil silence` talks to a running Vigil's API, as amtool does to
// Alertmanager's, so a silence can be made from a terminal.

const silenceUsage = `usage:
  vigil silence add [flags] MATCHER...   mute matching alerts (MATCHER: name=value, name!=value, name=~regex, name!~regex)
      --for 2h --comment "why" [--by NAME, default you] [--start RFC3339]
  vigil silence list [flags]             list silences with their state
  vigil silence expire [flags] ID...     end silences now
flags for every subcommand:
  --url URL          Vigil's HTTP address (default $VIGIL_URL, else http://127.0.0.1:9099)
  --token-file FILE  bearer token (default $VIGIL_TOKEN)
  --user NAME --password-file FILE   basic auth
  --cert-file FILE --key-file FILE   client certificate
  --ca-file FILE     CA to verify an https:// Vigil with (--insecure-skip-verify: none, testing only)
`

func silenceCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && isHelp(args[:1]) {
		fmt.Fprint(stdout, silenceUsage)
		return 0
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, silenceUsage)
		return 2
	}
	fs := flag.NewFlagSet("vigil silence "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	client := apiFlags(fs)
	dur := fs.Duration("for", 0, "how long the silence lasts")
	comment := fs.String("comment", "", "why (required)")
	by := fs.String("by", whoami(), "who (default: the user running the command)")
	start := fs.String("start", "", "start time, RFC 3339 (default now)")
	fs.Usage = func() { fmt.Fprint(fs.Output(), silenceUsage) }
	if code, ok := parseFlags(fs, args[1:], stdout, stderr); !ok {
		return code
	}
	api, err := client("/api/v1/silences")
	if err != nil {
		fmt.Fprintln(stderr, "vigil silence:", err)
		return 1
	}
	switch args[0] {
	case "add":
		if fs.NArg() == 0 || *dur <= 0 {
			fmt.Fprint(stderr, "vigil silence add: matchers and --for are required\n\n"+silenceUsage)
			return 2
		}
		req := silenceRequest{Matchers: fs.Args(), Duration: dur.String(), CreatedBy: *by, Comment: *comment}
		if *start != "" {
			t, err := time.Parse(time.RFC3339, *start)
			if err != nil {
				fmt.Fprintln(stderr, "vigil silence add: --start:", err)
				return 2
			}
			req.StartsAt = t
		}
		var s apiSilence
		if err := api.call("POST", "", req, &s); err != nil {
			printRefusal(stderr, "vigil silence add", err)
			return 1
		}
		fmt.Fprintf(stdout, "%s %s until %s\n", s.ID, s.State, s.EndsAt.UTC().Format(time.RFC3339))
		return 0
	case "list":
		var v silencesView
		if err := api.call("GET", "", nil, &v); err != nil {
			fmt.Fprintln(stderr, "vigil silence list:", err)
			return 1
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tSTATE\tENDS\tBY\tMATCHERS\tCOMMENT")
		for _, s := range v.Silences {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.State, s.EndsAt.UTC().Format(time.RFC3339),
				s.CreatedBy, strings.Join(s.MatcherSt, " "), s.Comment)
		}
		tw.Flush()
		return 0
	case "expire":
		if fs.NArg() == 0 {
			fmt.Fprint(stderr, "vigil silence expire: IDs are required\n\n"+silenceUsage)
			return 2
		}
		code := 0
		for _, id := range fs.Args() {
			if err := api.call("DELETE", "/"+id, nil, nil); err != nil {
				printRefusal(stderr, "vigil silence expire "+id, err)
				code = 1
				continue
			}
			fmt.Fprintf(stdout, "%s expired\n", id)
		}
		return code
	}
	fmt.Fprintf(stderr, "vigil silence: unknown subcommand %q\n\n%s", args[0], silenceUsage)
	return 2
}

// whoami names the person making a silence when --by is not given.
func whoami() string {
	if u := os.Getenv("USER"); u != "" {
		return u
	}
	if u, err := user.Current(); err == nil && u.Username != "" {
		return u.Username
	}
	return ""
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// apiFlags adds the connection flags (--url, TLS, credentials) to fs; the
// function it returns, called after parsing, is a client for one API path.
func apiFlags(fs *flag.FlagSet) func(path string) (apiClient, error) {
	url := fs.String("url", envOr("VIGIL_URL", "http://127.0.0.1:9099"), "Vigil's HTTP address (https://... with TLS)")
	tokenFile := fs.String("token-file", "", "file holding the bearer token (default $VIGIL_TOKEN)")
	user := fs.String("user", "", "basic auth user (web config basic_auth_users)")
	passFile := fs.String("password-file", "", "file holding the basic auth password")
	caFile := fs.String("ca-file", "", "CA certificate(s) to verify Vigil's TLS certificate with (default: the system's)")
	certFile := fs.String("cert-file", "", "client certificate, for a Vigil that verifies client certificates")
	keyFile := fs.String("key-file", "", "the client certificate's key")
	insecure := fs.Bool("insecure-skip-verify", false, "do not verify Vigil's TLS certificate (testing only)")
	return func(path string) (apiClient, error) {
		c := apiClient{base: strings.TrimSuffix(*url, "/") + path, token: os.Getenv("VIGIL_TOKEN"), user: *user}
		if *tokenFile != "" {
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				return apiClient{}, err
			}
			c.token = strings.TrimSpace(string(b))
		}
		if (*user == "") != (*passFile == "") {
			return apiClient{}, errors.New("--user and --password-file go together")
		}
		if *passFile != "" {
			b, err := os.ReadFile(*passFile)
			if err != nil {
				return apiClient{}, err
			}
			c.pass = strings.TrimRight(string(b), "\r\n")
		}
		tc := &tls.Config{InsecureSkipVerify: *insecure}
		if *caFile != "" {
			pem, err := os.ReadFile(*caFile)
			if err != nil {
				return apiClient{}, err
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return apiClient{}, fmt.Errorf("--ca-file %s: no PEM certificate in it", *caFile)
			}
		}
		if (*certFile == "") != (*keyFile == "") {
			return apiClient{}, errors.New("--cert-file and --key-file go together")
		}
		if *certFile != "" {
			cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
			if err != nil {
				return apiClient{}, fmt.Errorf("client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = tc
		// One-shot commands: an idle connection left open would only
		// delay the server's graceful stop.
		tr.DisableKeepAlives = true
		c.client = &http.Client{Timeout: 10 * time.Second, Transport: tr}
		return c, nil
	}
}

type apiClient struct {
	base, token, user, pass string
	client                  *http.Client
}

// apiError is an answer other than 2xx.
type apiError struct {
	Status int
	Text   string // the status line and the server's text
}

func (e *apiError) Error() string { return e.Text }

// call sends body as JSON and decodes the answer into out; an answer
// other than 2xx is an *apiError carrying the server's text.
func (c apiClient) call(method, path string, body, out any) error {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, c.base+path, r)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.user != "" {
		req.SetBasicAuth(c.user, c.pass)
	}
	resp, err := c.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return &apiError{Status: resp.StatusCode, Text: fmt.Sprintf("%s: %s", resp.Status, strings.TrimSpace(string(b)))}
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}

// writeHint says how to get a refused change through.
const writeHint = `This Vigil refused the change from this caller. If it has authentication, pass
  --user NAME --password-file FILE   basic auth (its --web.config.file basic_auth_users)
  --cert-file FILE --key-file FILE   a client certificate its client CA signed
  --token-file FILE                  its bearer token (http.bearer_token_file), or $VIGIL_TOKEN
and, with https://, --ca-file FILE for its certificate. If it has none, whoever runs it
configures some (docs/deploy.md#security) or, only where every caller is trusted, starts
it with --web.enable-unauthenticated-writes.
`

// printRefusal prints err and, for an authentication refusal, writeHint.
func printRefusal(w io.Writer, prefix string, err error) {
	fmt.Fprintln(w, prefix+":", err)
	var ae *apiError
	if errors.As(err, &ae) && (ae.Status == http.StatusUnauthorized || ae.Status == http.StatusForbidden) {
		fmt.Fprint(w, writeHint)
	}
}
