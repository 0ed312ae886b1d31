package rawsock

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// pair returns a wrapped client and the plain server end of a loopback TCP
// connection.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			accepted <- nil
			return
		}
		accepted <- c
	}()
	d := &Dialer{}
	client, err := d.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server := <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	if _, ok := client.(*Conn); !ok {
		t.Fatalf("dialed %T, want *rawsock.Conn", client)
	}
	return client, server
}

// A write far larger than the socket buffers must wait in the poller until
// the peer reads, and every byte must arrive in order, both ways.
func TestLargeTransfersArriveWhole(t *testing.T) {
	client, server := pair(t)
	data := make([]byte, 8<<20)
	for i := range data {
		data[i] = byte(i * 7)
	}
	for _, dir := range []struct {
		name     string
		from, to net.Conn
	}{{"wrapped writes", client, server}, {"wrapped reads", server, client}} {
		t.Run(dir.name, func(t *testing.T) {
			errc := make(chan error, 1)
			go func() {
				n, err := dir.from.Write(data)
				if err == nil && n != len(data) {
					err = io.ErrShortWrite
				}
				errc <- err
			}()
			got := make([]byte, len(data))
			if _, err := io.ReadFull(dir.to, got); err != nil {
				t.Fatalf("read: %v", err)
			}
			if err := <-errc; err != nil {
				t.Fatalf("write: %v", err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("received bytes differ from those sent")
			}
		})
	}
}

// Callers tell a timeout, a closed connection and the peer's end apart the
// way they do on a plain net.Conn.
func TestErrorsReadAsNetErrors(t *testing.T) {
	client, server := pair(t)
	buf := make([]byte, 16)

	if err := client.SetReadDeadline(time.Now().Add(20 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	_, err := client.Read(buf)
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read past deadline: %v, want a net.Error timeout", err)
	}
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "read" {
		t.Fatalf("read past deadline: %#v, want a net.OpError of op read", err)
	}
	if err := client.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}

	// A deadline set while a read waits wakes it (pgconn cancels this way).
	done := make(chan error, 1)
	go func() { _, err := client.Read(buf); done <- err }()
	time.AfterFunc(20*time.Millisecond, func() { _ = client.SetReadDeadline(time.Now()) })
	if err := <-done; !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("waiting read after a new deadline: %v", err)
	}
	if err := client.SetReadDeadline(time.Time{}); err != nil {
		t.Fatal(err)
	}

	if _, err := server.Write([]byte("bye")); err != nil {
		t.Fatal(err)
	}
	server.Close()
	n, err := client.Read(buf)
	if err != nil || string(buf[:n]) != "bye" {
		t.Fatalf("read before EOF: %q, %v", buf[:n], err)
	}
	if _, err := client.Read(buf); err != io.EOF {
		t.Fatalf("read after the peer closed: %v, want io.EOF", err)
	}

	client.Close()
	if _, err := client.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("write on a closed conn: %v, want net.ErrClosed", err)
	}
	if _, err := client.Read(buf); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("read on a closed conn: %v, want net.ErrClosed", err)
	}
}

// A write to a peer that has gone reports the socket's error.
func TestWriteToAResetPeerFails(t *testing.T) {
	client, server := pair(t)
	if err := server.(*net.TCPConn).SetLinger(0); err != nil { // close with a reset
		t.Fatal(err)
	}
	server.Close()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := client.Write(make([]byte, 64<<10)); err != nil {
			var se *os.SyscallError
			if !errors.As(err, &se) {
				t.Fatalf("write to a reset peer: %v, want an os.SyscallError", err)
			}
			return
		}
	}
	t.Fatal("writes to a reset peer kept succeeding")
}

// Connections that do not expose a descriptor are passed through.
func TestWrapLeavesOtherConnsAlone(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if Wrap(a) != a {
		t.Fatal("a net.Pipe conn was wrapped")
	}
}
