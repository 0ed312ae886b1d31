// Package rawsock wraps a socket so that a read or write that can complete at
// once does not enter the Go scheduler's system-call path.
//
// Go's net package runs every read and write as a blocking-style system call:
// on the way in it wakes the runtime's monitor thread (sysmon) if it sleeps,
// and sysmon, once awake, polls every 20 µs and hands the caller's P to
// another thread whenever a call takes longer than one poll. Sockets are
// non-blocking, so a read or write never waits in the kernel; at a thousand
// events a second those wake-ups and hand-offs were a third of the relay's
// CPU, and they kept a second thread busy beside the one P. The wrapped
// connection makes the same calls through syscall.RawConn without that
// bookkeeping, and waits in the net poller as before when the socket is not
// ready (deadlines included). On systems other than Linux, Wrap returns the
// connection unchanged.
//
// One thing is lost: the race detector does not see the kernel fill a read
// buffer, which syscall.Read annotates and a raw call cannot.
package rawsock

import (
	"context"
	"net"
)

// WrapDial returns dial with every connection it opens wrapped. Its type is
// that of pgconn.DialFunc and net.Dialer.DialContext, so either fits as is.
func WrapDial(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return Wrap(c), nil
	}
}

// Dialer is a net.Dialer whose connections are wrapped; it serves as a
// nats.CustomDialer.
type Dialer struct {
	net.Dialer
}

// Dial opens a wrapped connection.
func (d *Dialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

// DialContext opens a wrapped connection.
func (d *Dialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	return WrapDial(d.Dialer.DialContext)(ctx, network, addr)
}
