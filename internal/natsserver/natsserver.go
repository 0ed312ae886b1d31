// Package natsserver runs embedded NATS servers with JetStream on a file
// store: one server, or a cluster of them routed on loopback. `cdcrelay run
// --embedded-nats`, `cdcrelay demo` and the tests use it; restarting a server
// on the same store directory is how a NATS restart is tested.
package natsserver

import (
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Options configures an embedded server.
type Options struct {
	// StoreDir holds JetStream's file store. Required.
	StoreDir string
	// Host defaults to 127.0.0.1; Port 0 picks a free port.
	Host string
	Port int
	// MaxPayload caps one message (server default 1 MiB when zero).
	MaxPayload int32
	// Users, when set, are the only clients the server accepts (user and
	// password); without them it accepts anyone.
	Users []User
	// NoAuthUser, one of Users, is who a client without credentials is.
	NoAuthUser string
}

// User is a client account of the server.
type User struct {
	Name, Password string
	// DenyPublish are subjects (wildcards allowed) the user may not publish
	// to; the server answers such a publish with a permissions violation
	// and drops the message.
	DenyPublish []string
}

// Server is a running embedded NATS server that can be stopped and started
// again on the same port and store.
type Server struct {
	opts server.Options
	srv  *server.Server
}

// Start starts a server and waits until it accepts connections.
func Start(o Options) (*Server, error) {
	s, err := newServer(o, "cdcrelay-embedded")
	if err != nil {
		return nil, err
	}
	if err := s.Start(); err != nil {
		return nil, err
	}
	s.keepPorts()
	return s, nil
}

func newServer(o Options, name string) (*Server, error) {
	if o.StoreDir == "" {
		return nil, errors.New("natsserver: StoreDir is required")
	}
	host := o.Host
	if host == "" {
		host = "127.0.0.1"
	}
	port := o.Port
	if port == 0 {
		port = server.RANDOM_PORT
	}
	s := &Server{opts: server.Options{
		ServerName: name,
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   o.StoreDir,
		MaxPayload: o.MaxPayload,
		NoLog:      true,
		NoSigs:     true,
		NoAuthUser: o.NoAuthUser,
	}}
	for _, u := range o.Users {
		user := &server.User{Username: u.Name, Password: u.Password}
		if len(u.DenyPublish) > 0 {
			user.Permissions = &server.Permissions{Publish: &server.SubjectPermission{Deny: u.DenyPublish}}
		}
		s.opts.Users = append(s.opts.Users, user)
	}
	return s, nil
}

// keepPorts pins the ports the first start got, so that restarts reuse them
// and clients (and routes) reconnect.
func (s *Server) keepPorts() {
	if addr, ok := s.srv.Addr().(*net.TCPAddr); ok {
		s.opts.Port = addr.Port
	}
	if addr := s.srv.ClusterAddr(); addr != nil {
		s.opts.Cluster.Port = addr.Port
	}
}

// Start (re)starts a stopped server on its port and store.
func (s *Server) Start() error {
	if s.srv != nil && s.srv.Running() {
		return nil
	}
	opts := s.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		return fmt.Errorf("create nats server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return errors.New("embedded nats server not ready within 30s")
	}
	s.srv = srv
	return nil
}

// Stop shuts the server down and waits until it has; the store is kept.
func (s *Server) Stop() {
	if s.srv == nil {
		return
	}
	s.srv.Shutdown()
	s.srv.WaitForShutdown()
}

// Running reports whether the server is up.
func (s *Server) Running() bool { return s.srv != nil && s.srv.Running() }

// Name is the server's name, as stream and cluster information report it.
func (s *Server) Name() string { return s.opts.ServerName }

// URL is the client URL of the server.
func (s *Server) URL() string { return fmt.Sprintf("nats://%s:%d", s.opts.Host, s.opts.Port) }

// StoreDir is the JetStream store directory.
func (s *Server) StoreDir() string { return s.opts.StoreDir }
