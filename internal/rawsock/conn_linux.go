package rawsock

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"unsafe"
)

// Conn is a net.Conn whose Read and Write make raw system calls. All other
// methods are the wrapped connection's.
type Conn struct {
	net.Conn
	raw syscall.RawConn
}

// Wrap returns c reading and writing through raw system calls, or c itself
// when it does not expose its file descriptor (a TLS or in-memory conn).
func Wrap(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &Conn{Conn: c, raw: raw}
}

// Read reads what the socket holds, waiting in the net poller only while it
// holds nothing.
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := c.raw.Read(func(fd uintptr) bool {
		n, errno = call(syscall.SYS_READ, fd, b)
		return errno != syscall.EAGAIN
	})
	if err != nil {
		return 0, c.opError("read", err)
	}
	if errno != 0 {
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of b, waiting in the net poller whenever the socket's send
// buffer is full.
func (c *Conn) Write(b []byte) (int, error) {
	written := 0
	var errno syscall.Errno
	err := c.raw.Write(func(fd uintptr) bool {
		for written < len(b) {
			var n int
			n, errno = call(syscall.SYS_WRITE, fd, b[written:])
			if errno == syscall.EAGAIN {
				return false
			}
			if errno != 0 {
				return true
			}
			written += n
		}
		return true
	})
	if err != nil {
		return written, c.opError("write", err)
	}
	if errno != 0 {
		return written, c.opError("write", os.NewSyscallError("write", errno))
	}
	return written, nil
}

// call makes one read or write, retrying on EINTR. A non-blocking socket
// returns at once, which is what makes a raw call safe here.
func call(trap uintptr, fd uintptr, b []byte) (int, syscall.Errno) {
	for {
		r, _, errno := syscall.RawSyscall(trap, fd, uintptr(unsafe.Pointer(unsafe.SliceData(b))), uintptr(len(b)))
		if errno == syscall.EINTR {
			continue
		}
		if errno != 0 {
			return 0, errno
		}
		return int(r), 0
	}
}

// opError words err as net's own Read and Write do, so that callers'
// checks (net.Error's Timeout, errors.Is with os.ErrDeadlineExceeded or
// net.ErrClosed) see what they would have seen.
func (c *Conn) opError(op string, err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) {
		// RawConn reports "raw-read"/"raw-write": name the call the caller made.
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
