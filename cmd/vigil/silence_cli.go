package main

import (
	"bytes"
	"encoding/json"
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
`

func silenceCmd(args []string, stdout, stderr io.Writer) int {
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
	if err := fs.Parse(args[1:]); err != nil {
		return 2
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
			fmt.Fprintln(stderr, "vigil silence add:", err)
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
				fmt.Fprintf(stderr, "vigil silence expire %s: %v\n", id, err)
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

// apiFlags adds --url and --token-file to fs; the function it returns,
// called after parsing, is a client for one API path.
func apiFlags(fs *flag.FlagSet) func(path string) (apiClient, error) {
	url := fs.String("url", envOr("VIGIL_URL", "http://127.0.0.1:9099"), "Vigil's HTTP address")
	tokenFile := fs.String("token-file", "", "file holding the bearer token (default $VIGIL_TOKEN)")
	return func(path string) (apiClient, error) {
		token := os.Getenv("VIGIL_TOKEN")
		if *tokenFile != "" {
			b, err := os.ReadFile(*tokenFile)
			if err != nil {
				return apiClient{}, err
			}
			token = strings.TrimSpace(string(b))
		}
		return apiClient{base: strings.TrimSuffix(*url, "/") + path, token: token}, nil
	}
}

type apiClient struct {
	base, token string
}

// call sends body as JSON and decodes the answer into out; an answer
// other than 2xx is an error carrying the server's text.
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
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(b)))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(b, out)
}
