// Package health serves a relay's operational HTTP endpoints on one
// listener: /healthz (the process is alive), /readyz (it does its job: a
// leader streaming with fresh heartbeats, or a standby that can take over),
// /metrics (Prometheus), and /debug/pprof when asked for.
package health

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultAddr is where the endpoints listen unless told otherwise: loopback,
// because pprof and metrics are not for the world.
const DefaultAddr = "127.0.0.1:9187"

// shutdownTimeout bounds how long Serve waits for requests in progress.
const shutdownTimeout = 5 * time.Second

// Config configures the endpoints.
type Config struct {
	// Addr is host:port to listen on (default DefaultAddr; port 0 picks one).
	Addr string
	// Ready answers /readyz with a one-line reason (relay.Relay.Ready).
	// Required.
	Ready func() (bool, string)
	// Gatherer serves /metrics; nil leaves /metrics out.
	Gatherer prometheus.Gatherer
	// Pprof adds the net/http/pprof handlers under /debug/pprof/.
	Pprof bool
}

// Handler returns the endpoints as an http.Handler.
func Handler(cfg Config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		text(w, http.StatusOK, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		ok, reason := cfg.Ready()
		if !ok {
			text(w, http.StatusServiceUnavailable, "not ready: "+reason)
			return
		}
		text(w, http.StatusOK, "ready: "+reason)
	})
	paths := "/healthz\n/readyz\n"
	if cfg.Gatherer != nil {
		mux.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{
			// Scrapes query PostgreSQL: a pile of them must not pile up there.
			MaxRequestsInFlight: 4,
			Timeout:             10 * time.Second,
		}))
		paths += "/metrics\n"
	}
	if cfg.Pprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		paths += "/debug/pprof/\n"
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		text(w, http.StatusOK, "cdcrelay\n"+paths[:len(paths)-1])
	})
	return mux
}

func text(w http.ResponseWriter, code int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = fmt.Fprintln(w, body)
}

// Server is the endpoints bound to their listener.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen binds the address, so that a port in use fails at start-up, and
// returns the server; Serve serves it.
func Listen(cfg Config) (*Server, error) {
	if cfg.Ready == nil {
		return nil, errors.New("health: no readiness function")
	}
	addr := cfg.Addr
	if addr == "" {
		addr = DefaultAddr
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	write := 30 * time.Second
	if cfg.Pprof {
		write = 0 // a CPU profile or trace streams for as long as it was asked to
	}
	return &Server{ln: ln, srv: &http.Server{
		Handler:           Handler(cfg),
		ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout:      write,
		IdleTimeout:       time.Minute,
	}}, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve serves until ctx ends, then lets requests in progress finish (for a
// few seconds) and returns nil; it returns an error if serving fails.
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.srv.Serve(s.ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve %s: %w", s.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := s.srv.Shutdown(sctx); err != nil {
		_ = s.srv.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve %s: %w", s.Addr(), err)
	}
	return nil
}
