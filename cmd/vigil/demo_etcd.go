//go:build demo

package main

import "github.com/vigil-alerts/vigil/collectors/etcd/etcdtest"

// The demo's etcd cluster: real members embedded in this process. Only
// binaries built with -tags demo carry etcd's server.
func init() {
	startDemoCluster = func(n int, dir string) (demoCluster, error) {
		c, err := etcdtest.Start(n, dir)
		if err != nil {
			return nil, err
		}
		return embeddedCluster{c}, nil
	}
}

type embeddedCluster struct{ *etcdtest.Cluster }

func (c embeddedCluster) Shutdown(i int)     { c.Members()[i].Shutdown() }
func (c embeddedCluster) Resume(i int) error { return c.Members()[i].Resume() }
