package relay

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/cdcrelay/cdcrelay/internal/rawsock"
)

// The pool that proves the origin guard and the NATS connection dial
// wrapped sockets (the lock connection: TestLockConnectionIsWrapped).
func TestHotSocketsAreWrapped(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close() // the kernel completes the dials: nothing needs to accept
	addr := ln.Addr().String()

	pcfg, err := poolConfig("postgres://relay@" + addr + "/db")
	if err != nil {
		t.Fatal(err)
	}
	pc, err := pcfg.ConnConfig.DialFunc(context.Background(), "tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	if _, ok := pc.(*rawsock.Conn); !ok {
		t.Fatalf("pool dials %T, want *rawsock.Conn", pc)
	}

	opts := nats.GetDefaultOptions()
	if err := nats.Timeout(3 * time.Second)(&opts); err != nil {
		t.Fatal(err)
	}
	if err := natsDialer()(&opts); err != nil {
		t.Fatal(err)
	}
	d, ok := opts.CustomDialer.(*rawsock.Dialer)
	if !ok || d.Timeout != 3*time.Second {
		t.Fatalf("NATS dialer %#v, want a rawsock.Dialer with the connect timeout", opts.CustomDialer)
	}
	nc, err := opts.CustomDialer.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if _, ok := nc.(*rawsock.Conn); !ok {
		t.Fatalf("NATS dials %T, want *rawsock.Conn", nc)
	}
}

// A dialer the caller set stands.
func TestCallersNATSDialerStands(t *testing.T) {
	own := &net.Dialer{}
	opts := nats.GetDefaultOptions()
	if err := nats.SetCustomDialer(own)(&opts); err != nil {
		t.Fatal(err)
	}
	if err := natsDialer()(&opts); err != nil {
		t.Fatal(err)
	}
	if opts.CustomDialer != own {
		t.Fatalf("the caller's dialer was replaced by %T", opts.CustomDialer)
	}
}
