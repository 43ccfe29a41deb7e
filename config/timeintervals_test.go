package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Time intervals: references to unknown or duplicate names are errors at
// the reference, each with the file's other mistakes; a time interval
// that does not parse (Alertmanager's parser gives no position) is an
// error at its value.
func TestTimeIntervalErrors(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vigil.yaml")
	src := `rule_dirs: [.]
notifiers:
  time_intervals:
    - name: night
      time_intervals:
        - times: [{start_time: "01:00", end_time: "03:00"}]
          location: Europe/Berlin
    - name: night
      time_intervals: [{weekdays: [saturday]}]
  channels:
    - name: ops
      console: {}
      mute_time_intervals: [night, nights]
  routes:
    - match: {severity: [high]}
      channels: [ops]
      active_time_intervals: [weekend]
`
	_, err := Parse(path, []byte(src), Options{LookupEnv: noEnv})
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("want Errors, got %v", err)
	}
	want := []string{
		path + `:8:7: notifiers: time_intervals[1]: name "night" defined twice`,
		path + `:13:36: notifiers: channel "ops": mute_time_intervals[1]: unknown time interval "nights"`,
		path + `:17:31: notifiers: routes[0].active_time_intervals[0]: unknown time interval "weekend"`,
	}
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("errors:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	for _, tc := range []struct{ from, to, want string }{
		{"[saturday]", "[saturday, moonday]", `:9:46: notifiers.time_intervals[1].time_intervals[0].weekdays[1]: moonday is not a valid weekday`},
		{"Europe/Berlin", "Europe/Berln", `:7:21: notifiers.time_intervals[0].time_intervals[0].location: unknown time zone Europe/Berln`},
		{`end_time: "03:00"`, `end_time: "00:30"`, `:6:19: notifiers.time_intervals[0].time_intervals[0].times[0]: start time cannot be equal or greater than end time`},
		{"weekdays:", "weekday:", `:9:25: unknown field "weekday"`},
	} {
		bad := strings.Replace(src, tc.from, tc.to, 1)
		_, err := Parse(path, []byte(bad), Options{LookupEnv: noEnv})
		if err == nil || !strings.Contains(err.Error(), path+tc.want) {
			t.Errorf("%s -> %s: %v\nwant %s", tc.from, tc.to, err, path+tc.want)
		}
	}
}

// An alertmanager channel decodes with Prometheus' http_config; a
// password written in the config is an error at the channel that does
// not show it.
func TestAlertmanagerChannelConfig(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	head := "rule_dirs: [.]\nnotifiers:\n  channels:\n    - name: am\n      alertmanager:\n        urls: [http://am:9093]\n        resend_interval: 30s\n        http_config:\n"
	c, err := Parse(filepath.Join(dir, "v.yaml"), []byte(head+"          basic_auth: {username: vigil, password_file: "+pw+"}\n"), Options{LookupEnv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if am := c.Notifiers.Channels[0].Alertmanager; am.HTTPConfig.BasicAuth == nil || am.HTTPConfig.BasicAuth.PasswordFile != pw || am.Resend() != 30*time.Second {
		t.Errorf("decoded %+v", am)
	}
	_, err = Parse(filepath.Join(dir, "v.yaml"), []byte(head+"          basic_auth: {username: vigil, password: hunter2}\n"), Options{LookupEnv: noEnv})
	if err == nil || !strings.Contains(err.Error(), `v.yaml:4:7: notifiers: channel "am": alertmanager: http_config.basic_auth.password: a secret written in the config`) || strings.Contains(err.Error(), "hunter2") {
		t.Errorf("inline password: %v", err)
	}
}
