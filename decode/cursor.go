package decode

import (
	"bytes"
	"encoding/binary"
	"fmt"
)

// cursor reads the big-endian fields of one pgoutput message. The first short
// read is remembered (later reads return zero values), so a message parser
// reads every field and checks err once, the way bufio.Scanner works; the
// error names the field that did not fit. Field names are constants, so the
// happy path allocates nothing.
type cursor struct {
	b   []byte
	off int
	err error
}

func (c *cursor) left() int { return len(c.b) - c.off }

func (c *cursor) short(field string, need int) {
	if c.err == nil {
		c.err = fmt.Errorf("%s truncated: need %d bytes at offset %d, %d left", field, need, c.off, c.left())
	}
}

func (c *cursor) u8(field string) byte {
	if c.err != nil || c.left() < 1 {
		c.short(field, 1)
		return 0
	}
	v := c.b[c.off]
	c.off++
	return v
}

func (c *cursor) u16(field string) uint16 {
	if c.err != nil || c.left() < 2 {
		c.short(field, 2)
		return 0
	}
	v := binary.BigEndian.Uint16(c.b[c.off:])
	c.off += 2
	return v
}

func (c *cursor) u32(field string) uint32 {
	if c.err != nil || c.left() < 4 {
		c.short(field, 4)
		return 0
	}
	v := binary.BigEndian.Uint32(c.b[c.off:])
	c.off += 4
	return v
}

func (c *cursor) u64(field string) uint64 {
	if c.err != nil || c.left() < 8 {
		c.short(field, 8)
		return 0
	}
	v := binary.BigEndian.Uint64(c.b[c.off:])
	c.off += 8
	return v
}

// bytes returns the next n bytes, aliasing the message.
func (c *cursor) bytes(field string, n uint32) []byte {
	if c.err != nil {
		return nil
	}
	// Compared as uint64 so that a length with the sign bit set (Int32 -1 on
	// the wire) cannot wrap into a negative int.
	if uint64(n) > uint64(c.left()) {
		c.err = fmt.Errorf("%s length %d exceeds the %d bytes left at offset %d", field, n, c.left(), c.off)
		return nil
	}
	v := c.b[c.off : c.off+int(n) : c.off+int(n)]
	c.off += int(n)
	return v
}

// cstring returns a NUL-terminated string without its terminator, aliasing
// the message.
func (c *cursor) cstring(field string) []byte {
	if c.err != nil {
		return nil
	}
	i := bytes.IndexByte(c.b[c.off:], 0)
	if i < 0 {
		c.err = fmt.Errorf("%s at offset %d has no terminating NUL", field, c.off)
		return nil
	}
	v := c.b[c.off : c.off+i : c.off+i]
	c.off += i + 1
	return v
}

// end reports the first short read, or trailing bytes: every message type is
// fully described by its fields, so anything left over means the message was
// misread.
func (c *cursor) end() error {
	if c.err == nil && c.left() != 0 {
		c.err = fmt.Errorf("%d unexpected trailing bytes at offset %d", c.left(), c.off)
	}
	return c.err
}
