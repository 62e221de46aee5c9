package redistest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a running Redis Cluster of three masters, no replicas.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts three cluster-enabled servers and joins them with
// `redis-cli --cluster create`, then waits until every node reports the
// cluster ok.
func StartCluster(t testing.TB) *Cluster {
	t.Helper()
	c := &Cluster{}
	for range 3 {
		c.Nodes = append(c.Nodes, Start(t, Options{cluster: true}))
	}
	args := []string{"--cluster", "create"}
	args = append(args, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	run(t, c.Nodes[0].cli, args...)
	deadline := time.Now().Add(readyTimeout)
	for _, n := range c.Nodes {
		for !strings.Contains(n.CLI(t, "cluster", "info"), "cluster_state:ok") {
			if time.Now().After(deadline) {
				t.Fatalf("redis cluster: %s not ok after %v:\n%s", n.Addr, readyTimeout, n.CLI(t, "cluster", "info"))
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return c
}

// Addrs are the nodes' addresses.
func (c *Cluster) Addrs() []string {
	var out []string
	for _, n := range c.Nodes {
		out = append(out, n.Addr)
	}
	return out
}

// Client is a go-redis Cluster client to the nodes.
func (c *Cluster) Client() *redis.ClusterClient {
	return redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), DisableIdentity: true})
}

// Scan returns every key of every node with its value (GET), through
// redis-cli as an operator would look: `--scan`, then GET each.
func (c *Cluster) Scan(t testing.TB) map[string]string {
	t.Helper()
	all := map[string]string{}
	for _, n := range c.Nodes {
		for k, v := range n.Scan(t) {
			all[k] = v
		}
	}
	return all
}

// Scan returns every key of the server with its value, through redis-cli
// (`--scan`, then GET each; a key that expired meanwhile is left out).
func (s *Server) Scan(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range strings.Fields(s.CLI(t, "--scan")) {
		v := strings.TrimSuffix(s.CLI(t, "--raw", "GET", k), "\n")
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// FlushAll empties the server.
func (s *Server) FlushAll(t testing.TB) {
	t.Helper()
	c := s.Client()
	defer c.Close()
	if err := c.FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}
