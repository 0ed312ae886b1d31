//go:build !linux

package rawsock

import "net"

// Wrap returns c: raw calls are only made on Linux.
func Wrap(c net.Conn) net.Conn { return c }
