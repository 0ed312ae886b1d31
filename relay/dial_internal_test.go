package relay

import (
	"context"
	"net"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/cdcrelay/cdcrelay/internal/rawsock"
)

// The pool that runs the flips and the NATS connection dial wrapped sockets.
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
	if err := natsDialer()(&opts); err != nil {
		t.Fatal(err)
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
