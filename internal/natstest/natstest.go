// Package natstest runs real NATS servers with JetStream in a test's process: one server, or a
// cluster whose nodes a test can take away.
package natstest

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/auditstream/auditstream/internal/poll"
)

// Start runs a server with JetStream on loopback until the test ends, its data in storeDir. A
// port other than 0 is fixed, so that a restart comes back at the same address.
func Start(t testing.TB, storeDir string, port int) *server.Server {
	t.Helper()
	if port == 0 {
		port = server.RANDOM_PORT
	}
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: storeDir, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	go ns.Start()
	if !ns.ReadyForConnections(30 * time.Second) {
		t.Fatal("NATS did not start")
	}
	t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	return ns
}

// Cluster is a cluster of servers with JetStream on loopback.
type Cluster struct {
	Nodes []*server.Server
	URLs  []string
}

// StartCluster runs a cluster of n servers until the test ends, and waits until JetStream
// answers (the cluster has elected its meta leader).
func StartCluster(t testing.TB, n int) *Cluster {
	t.Helper()
	c := &Cluster{}
	clientPorts, routePorts := make([]int, n), make([]int, n)
	var routes []string
	for i := range n {
		clientPorts[i], routePorts[i] = FreePort(t), FreePort(t)
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", routePorts[i]))
		c.URLs = append(c.URLs, fmt.Sprintf("nats://127.0.0.1:%d", clientPorts[i]))
	}
	for i := range n {
		opts := &server.Options{ServerName: fmt.Sprintf("n%d", i+1), Host: "127.0.0.1", Port: clientPorts[i], JetStream: true,
			StoreDir: t.TempDir(), NoSigs: true, NoLog: true, Routes: server.RoutesFromStr(strings.Join(routes, ",")),
			Cluster: server.ClusterOpts{Name: "auditstream-test", Host: "127.0.0.1", Port: routePorts[i]}}
		ns, err := server.NewServer(opts)
		if err != nil {
			t.Fatal(err)
		}
		go ns.Start()
		c.Nodes = append(c.Nodes, ns)
		t.Cleanup(func() { ns.Shutdown(); ns.WaitForShutdown() })
	}
	for _, ns := range c.Nodes {
		if !ns.ReadyForConnections(20 * time.Second) {
			t.Fatalf("NATS node %s did not start", ns.Name())
		}
	}
	js := c.JetStream(t)
	poll.Until(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err
	})
	return c
}

// URL is the cluster's URL for clients: every node's.
func (c *Cluster) URL() string { return strings.Join(c.URLs, ",") }

// JetStream connects to the cluster until the test ends.
func (c *Cluster) JetStream(t testing.TB) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(c.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// Node returns the node called name, or nil.
func (c *Cluster) Node(name string) *server.Server {
	for _, ns := range c.Nodes {
		if ns.Name() == name {
			return ns
		}
	}
	return nil
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
