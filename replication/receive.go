package replication

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// FrameKind tells XLogData from keepalive frames.
type FrameKind uint8

// Frame kinds.
const (
	FrameXLogData  FrameKind = 1
	FrameKeepalive FrameKind = 2
)

func (k FrameKind) String() string {
	switch k {
	case FrameXLogData:
		return "XLogData"
	case FrameKeepalive:
		return "keepalive"
	default:
		return fmt.Sprintf("FrameKind(%d)", uint8(k))
	}
}

// Frame is one CopyData message from the walsender.
//
// For XLogData from a logical walsender, WALStart and ServerWALEnd are both
// the LSN the output plugin attached to the message: a Begin carries the
// transaction's first LSN, an Insert its record's LSN, a Commit the END of the
// commit record (the position to confirm once the transaction is done), and
// messages the plugin writes "on the side" (Relation, Type, Origin) carry 0.
// They are not the server's WAL end.
//
// For keepalives WALStart is 0 and ServerWALEnd is how far the walsender has
// read and decoded WAL (its sentPtr), not the server's insert or flush
// position. See the package notes on when it may be confirmed.
type Frame struct {
	Kind           FrameKind
	WALStart       pglogrepl.LSN
	ServerWALEnd   pglogrepl.LSN
	ServerTime     time.Time
	ReplyRequested bool   // keepalive asked for an immediate status update
	Data           []byte // XLogData payload (a pgoutput message); valid only until the next Receive
}

const (
	xlogDataHeaderLen = 1 + 8 + 8 + 8 // 'w', dataStart, walEnd, sendTime
	keepaliveLen      = 1 + 8 + 8 + 1 // 'k', walEnd, sendTime, replyRequested
	statusLen         = 5 + 1 + 8 + 8 + 8 + 8 + 1
)

// microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const pgEpochMicros = 946684800 * 1_000_000

// Receive waits until deadline for the next frame; a zero deadline waits
// without limit. On timeout it returns ErrTimeout and the Conn stays usable,
// even if the timeout struck in the middle of a message. Any other error
// matches ErrConnLost: the Conn is closed.
//
// Receive neither allocates nor starts goroutines per frame: the deadline is
// set on the socket (and only when it changes), not through a context.
func (c *Conn) Receive(deadline time.Time) (Frame, error) {
	const op = "receive"
	if !c.streaming {
		if c.closed {
			return Frame{}, lostError(op, errors.New("connection is closed"))
		}
		return Frame{}, fmt.Errorf("%s: not streaming: call Start first", op)
	}
	if !deadline.Equal(c.readDeadline) {
		if err := c.pg.Conn().SetReadDeadline(deadline); err != nil {
			c.abort()
			return Frame{}, lostError(op, err)
		}
		c.readDeadline = deadline
	}
	for {
		// context.Background skips pgconn's per-call context watcher.
		msg, err := c.pg.ReceiveMessage(context.Background())
		if err != nil {
			if isTimeout(err) && !c.pg.IsClosed() {
				return Frame{}, ErrTimeout
			}
			c.abort()
			return Frame{}, lostError(op, err)
		}
		switch msg := msg.(type) {
		case *pgproto3.CopyData:
			f, err := parseFrame(msg.Data)
			if err != nil {
				c.abort()
				return Frame{}, lostError(op, err)
			}
			return f, nil
		case *pgproto3.ErrorResponse:
			// A walsender error ends the replication stream: terminated by
			// an administrator, slot invalidated, server shutting down.
			c.abort()
			return Frame{}, lostError(op, pgconn.ErrorResponseToPgError(msg))
		case *pgproto3.CopyDone:
			c.abort()
			return Frame{}, lostError(op, errors.New("server ended the replication stream (CopyDone), e.g. shutting down"))
		case *pgproto3.NoticeResponse, *pgproto3.ParameterStatus:
			continue
		default:
			c.abort()
			return Frame{}, lostError(op, fmt.Errorf("unexpected %T while streaming", msg))
		}
	}
}

func isTimeout(err error) bool {
	var netErr net.Error
	return errors.As(err, &netErr) && netErr.Timeout()
}

// parseFrame decodes a CopyData payload without copying: Data aliases buf.
func parseFrame(buf []byte) (Frame, error) {
	if len(buf) == 0 {
		return Frame{}, errors.New("empty CopyData message")
	}
	switch buf[0] {
	case pglogrepl.XLogDataByteID:
		if len(buf) < xlogDataHeaderLen {
			return Frame{}, fmt.Errorf("XLogData message is %d bytes, shorter than its %d-byte header", len(buf), xlogDataHeaderLen)
		}
		return Frame{
			Kind:         FrameXLogData,
			WALStart:     pglogrepl.LSN(binary.BigEndian.Uint64(buf[1:])),
			ServerWALEnd: pglogrepl.LSN(binary.BigEndian.Uint64(buf[9:])),
			ServerTime:   pgTime(binary.BigEndian.Uint64(buf[17:])),
			Data:         buf[xlogDataHeaderLen:],
		}, nil
	case pglogrepl.PrimaryKeepaliveMessageByteID:
		if len(buf) != keepaliveLen {
			return Frame{}, fmt.Errorf("keepalive message is %d bytes, want %d", len(buf), keepaliveLen)
		}
		return Frame{
			Kind:           FrameKeepalive,
			ServerWALEnd:   pglogrepl.LSN(binary.BigEndian.Uint64(buf[1:])),
			ServerTime:     pgTime(binary.BigEndian.Uint64(buf[9:])),
			ReplyRequested: buf[17] != 0,
		}, nil
	default:
		return Frame{}, fmt.Errorf("unknown replication message type %q", buf[0])
	}
}

func pgTime(micros uint64) time.Time {
	return time.UnixMicro(int64(micros) + pgEpochMicros)
}

// SendStatus sends a standby status update whose write, flush and apply
// positions are all pos, set explicitly (pglogrepl would copy a zero flush
// position from the write position; this never does), with the
// reply-requested flag off. The server moves the slot's confirmed_flush_lsn to
// pos. pos 0 moves nothing and only proves the client alive.
//
// Never send a position below the slot's confirmed_flush_lsn: before
// PostgreSQL 18 the server moves it backwards. ctx bounds the write (its
// deadline becomes the socket's write deadline); a failed write closes the
// Conn.
func (c *Conn) SendStatus(ctx context.Context, pos pglogrepl.LSN) error {
	return c.sendStatus(ctx, "send standby status", pos, false)
}

// RequestKeepalive sends the same update as SendStatus with the
// reply-requested flag on: the walsender answers at once with a keepalive
// whose ServerWALEnd is its current sentPtr. Use it as a liveness probe, or to
// learn how far an idle slot could be advanced.
func (c *Conn) RequestKeepalive(ctx context.Context, pos pglogrepl.LSN) error {
	return c.sendStatus(ctx, "request keepalive", pos, true)
}

func (c *Conn) sendStatus(ctx context.Context, op string, pos pglogrepl.LSN, reply bool) error {
	if !c.streaming {
		if c.closed {
			return lostError(op, errors.New("connection is closed"))
		}
		return fmt.Errorf("%s: not streaming: call Start first", op)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	deadline, _ := ctx.Deadline()
	if !deadline.Equal(c.writeDeadline) {
		if err := c.pg.Conn().SetWriteDeadline(deadline); err != nil {
			c.abort()
			return lostError(op, err)
		}
		c.writeDeadline = deadline
	}
	putStatus(&c.status, pos, time.Now(), reply)
	if err := c.pg.Frontend().SendUnbufferedEncodedCopyData(c.status[:]); err != nil {
		// A write cut short leaves half a message on the wire.
		c.abort()
		return lostError(op, err)
	}
	return nil
}

// putStatus encodes a standby status update, CopyData framing included.
func putStatus(b *[statusLen]byte, pos pglogrepl.LSN, now time.Time, reply bool) {
	b[0] = 'd'
	binary.BigEndian.PutUint32(b[1:], statusLen-1)
	b[5] = pglogrepl.StandbyStatusUpdateByteID
	binary.BigEndian.PutUint64(b[6:], uint64(pos))  // write
	binary.BigEndian.PutUint64(b[14:], uint64(pos)) // flush: what the slot confirms
	binary.BigEndian.PutUint64(b[22:], uint64(pos)) // apply
	binary.BigEndian.PutUint64(b[30:], uint64(now.UnixMicro()-pgEpochMicros))
	b[38] = 0
	if reply {
		b[38] = 1
	}
}
