package natsserver

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Cluster is a JetStream cluster of embedded servers routed on loopback, for
// tests of replicated streams and of a node that dies and comes back.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts n servers (n ≥ 3 for a JetStream quorum that survives
// a node) named n1, n2, ..., each with its store under dir, routed to each
// other, and waits until JetStream has a meta leader.
func StartCluster(dir string, n int) (*Cluster, error) {
	if n < 1 {
		return nil, errors.New("natsserver: a cluster needs at least one node")
	}
	// Every node must know its routes before it starts (JetStream refuses
	// to start clustered without), so the route ports are chosen first.
	ports, err := freePorts(n)
	if err != nil {
		return nil, err
	}
	c := &Cluster{}
	for i := range n {
		name := fmt.Sprintf("n%d", i+1)
		s, err := newServer(Options{StoreDir: filepath.Join(dir, name)}, name)
		if err != nil {
			c.Stop()
			return nil, err
		}
		s.opts.Cluster = server.ClusterOpts{Name: "cdcrelay-test", Host: "127.0.0.1", Port: ports[i]}
		for j, p := range ports {
			if j != i {
				s.opts.Routes = append(s.opts.Routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", p)})
			}
		}
		if err := s.Start(); err != nil {
			c.Stop()
			return nil, fmt.Errorf("start %s: %w", name, err)
		}
		s.keepPorts()
		c.Nodes = append(c.Nodes, s)
	}
	if err := c.WaitJetStream(30 * time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// WaitJetStream waits until every running node knows JetStream's meta
// leader.
func (c *Cluster) WaitJetStream(within time.Duration) error {
	deadline := time.Now().Add(within)
	for {
		ready := true
		for _, s := range c.Nodes {
			if s.Running() && !s.srv.JetStreamIsCurrent() {
				ready = false
			}
		}
		if ready {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("natsserver: JetStream cluster not ready within %v", within)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("natsserver: find a free port: %w", err)
		}
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
		defer l.Close()
	}
	return ports, nil
}

// URL is every node's client URL, comma-separated, as clients take it.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.Nodes))
	for i, s := range c.Nodes {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// Node returns the node with the given server name, or nil.
func (c *Cluster) Node(name string) *Server {
	for _, s := range c.Nodes {
		if s.Name() == name {
			return s
		}
	}
	return nil
}

// Stop shuts every node down.
func (c *Cluster) Stop() {
	for _, s := range c.Nodes {
		s.Stop()
	}
}
