package silences_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/vigil-alerts/vigil/model"
	"github.com/vigil-alerts/vigil/silences"
)

// BenchmarkMutes asks, for one alert's labels, which of n active silences
// mute it: what the dispatcher does for every firing alert at every
// evaluation. "host" silences are one host each (the maintenance case,
// host.mac plus a regex on alertname); "regex" silences have no `=`
// matcher, so every one is checked (the worst case).
func BenchmarkMutes(b *testing.B) {
	alert := model.Labels{"alertname": "EtcdMemberUnreachable", "severity": "high", "cluster": "prod",
		"member": "etcd-07", "host.mac": "00:00:5e:00:00:07"}
	for _, kind := range []string{"host", "regex"} {
		for _, n := range []int{10, 1000} {
			b.Run(fmt.Sprintf("%s/silences=%d", kind, n), func(b *testing.B) {
				st := silences.NewStore()
				for i := range n {
					mac := fmt.Sprintf("00:00:5e:00:%02x:%02x", i/256, i%256)
					var ms []string
					if kind == "host" {
						ms = []string{"host.mac=" + mac, `alertname=~"Etcd.*"`}
					} else {
						ms = []string{fmt.Sprintf(`host.mac=~"%s"`, mac), `alertname=~"Etcd.*"`}
					}
					s := maintenance(ms...)
					s.EndsAt = t0.Add(time.Hour)
					if _, err := st.Add(s, t0); err != nil {
						b.Fatal(err)
					}
				}
				now := t0.Add(time.Minute)
				if got := st.Mutes(alert, now); len(got) != 1 {
					b.Fatalf("Mutes = %v, want one", got)
				}
				b.ReportAllocs()
				for b.Loop() {
					st.Mutes(alert, now)
				}
			})
		}
	}
}
