package replication_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/cdcrelay/cdcrelay/internal/rawsock"
	"github.com/cdcrelay/cdcrelay/internal/testenv"
	"github.com/cdcrelay/cdcrelay/replication"
)

func startOptions(c *replication.Conn) replication.StartOptions {
	modern := c.ServerVersion() >= 140000
	return replication.StartOptions{Publication: publication, Binary: modern, Messages: modern}
}

// receiveXLog reads frames until an XLogData frame arrives, answering
// keepalives that ask for it, and returns a copy of it.
func receiveXLog(t *testing.T, c *replication.Conn, within time.Duration) replication.Frame {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		f, err := c.Receive(deadline)
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		if f.Kind == replication.FrameXLogData {
			f.Data = bytes.Clone(f.Data)
			return f
		}
	}
}

// receiveTx reads one transaction (Begin ... Commit), skipping Relation
// and Type messages, and returns its frames.
func receiveTx(t *testing.T, c *replication.Conn) []replication.Frame {
	t.Helper()
	var tx []replication.Frame
	for {
		f := receiveXLog(t, c, 30*time.Second)
		switch f.Data[0] {
		case 'R', 'Y':
			continue
		case 'B':
			tx = tx[:0]
		}
		tx = append(tx, f)
		if f.Data[0] == 'C' {
			return tx
		}
	}
}

func TestCreateSlotSnapshotThenStream(t *testing.T) {
	t.Parallel()
	d := newDatabase(t, true)
	ctx := testCtx(t)
	d.exec(t, `INSERT INTO bus.outbox (subject, payload) VALUES ('before.slot', 'x')`)

	c := connect(t, d.url)
	// What follows streams through rawsock's raw socket calls.
	if nc := c.NetConn(); reflect.TypeOf(nc) != reflect.TypeOf(rawsock.Wrap(nc)) {
		t.Fatalf("replication socket is a %T, not wrapped by rawsock", nc)
	}
	slot := slotName()
	if c.ServerVersion() < 100000 || c.BackendPID() == 0 {
		t.Fatalf("version %d, pid %d", c.ServerVersion(), c.BackendPID())
	}
	snap, err := c.CreateSlot(ctx, slot)
	if err != nil {
		t.Fatalf("create slot: %v", err)
	}
	if snap.Name == "" || snap.ConsistentPoint == 0 {
		t.Fatalf("snapshot %+v", snap)
	}
	d.exec(t, `INSERT INTO bus.outbox (subject, payload) VALUES ('after.slot', 'y')`)

	// The backfill's view: what committed before the consistent point only.
	tx, err := d.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, fmt.Sprintf(`SET TRANSACTION SNAPSHOT '%s'`, snap.Name)); err != nil {
		t.Fatalf("import snapshot: %v", err)
	}
	var subjects []string
	if err := tx.QueryRow(ctx, `SELECT array_agg(subject ORDER BY id) FROM bus.outbox`).Scan(&subjects); err != nil {
		t.Fatal(err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if len(subjects) != 1 || subjects[0] != "before.slot" {
		t.Fatalf("snapshot sees %v, want [before.slot]", subjects)
	}

	if err := c.Start(ctx, slot, 0, startOptions(c)); err != nil {
		t.Fatalf("start: %v", err)
	}
	frames := receiveTx(t, c)
	if got := kinds(frames); got != "BIC" {
		t.Fatalf("message types %q, want BIC", got)
	}
	if ins := frames[1].Data; !bytes.Contains(ins, []byte("after.slot")) || bytes.Contains(ins, []byte("before.slot")) {
		t.Fatalf("insert carries %q", ins)
	}
	// Commit: 'C', flags, commit LSN, end LSN, timestamp. The frame's
	// WALStart is the transaction's end LSN: the position to confirm.
	commit := frames[2]
	if len(commit.Data) != 26 {
		t.Fatalf("commit message is %d bytes", len(commit.Data))
	}
	endLSN := pglogrepl.LSN(binary.BigEndian.Uint64(commit.Data[10:]))
	if commit.WALStart != endLSN || commit.ServerWALEnd != endLSN {
		t.Fatalf("commit frame WALStart %s ServerWALEnd %s, end LSN %s", commit.WALStart, commit.ServerWALEnd, endLSN)
	}
	if endLSN <= snap.ConsistentPoint {
		t.Fatalf("commit end %s not after consistent point %s", endLSN, snap.ConsistentPoint)
	}
	if begin := frames[0]; begin.WALStart == 0 || begin.WALStart > commit.WALStart || begin.ServerTime.IsZero() {
		t.Fatalf("begin frame %+v", begin)
	}
}

func kinds(frames []replication.Frame) string {
	b := make([]byte, len(frames))
	for i, f := range frames {
		b[i] = f.Data[0]
	}
	return string(b)
}

func TestStatusConfirmsExactlyWhatWasSent(t *testing.T) {
	t.Parallel()
	d := newDatabase(t, true)
	ctx := testCtx(t)
	c := connect(t, d.url)
	slot := slotName()
	if _, err := c.CreateSlot(ctx, slot); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, slot, 0, startOptions(c)); err != nil {
		t.Fatal(err)
	}
	d.exec(t, `INSERT INTO bus.outbox (subject, payload) VALUES ('a', 'x')`)
	first := receiveTx(t, c)
	d.exec(t, `INSERT INTO bus.outbox (subject, payload) VALUES ('b', 'x')`)
	second := receiveTx(t, c)

	// Confirm the first transaction only: the slot must stop there even
	// though the second has been received.
	pos := first[len(first)-1].WALStart
	if err := c.SendStatus(ctx, pos); err != nil {
		t.Fatal(err)
	}
	waitConfirmed(t, d, slot, pos)
	if err := c.SendStatus(ctx, 0); err != nil { // liveness only: moves nothing
		t.Fatal(err)
	}
	pos = second[len(second)-1].WALStart
	if err := c.RequestKeepalive(ctx, pos); err != nil {
		t.Fatal(err)
	}
	// The walsender answers a reply request with a keepalive at once.
	deadline := time.Now().Add(30 * time.Second)
	for {
		f, err := c.Receive(deadline)
		if err != nil {
			t.Fatalf("waiting for keepalive: %v", err)
		}
		if f.Kind == replication.FrameKeepalive {
			if f.ServerWALEnd < pos || f.WALStart != 0 || f.Data != nil {
				t.Fatalf("keepalive %+v, confirmed %s", f, pos)
			}
			break
		}
	}
	waitConfirmed(t, d, slot, pos)
}

func waitConfirmed(t *testing.T, d database, slot string, want pglogrepl.LSN) {
	t.Helper()
	testenv.Eventually(t, 30*time.Second, func() error {
		s, err := replication.LookupSlot(testCtx(t), d.pool, slot)
		if err != nil {
			return err
		}
		if s.ConfirmedFlush != want {
			return fmt.Errorf("confirmed_flush_lsn %s, want %s", s.ConfirmedFlush, want)
		}
		return nil
	})
}

// The walsender asks for a reply after wal_sender_timeout/2 of silence (10 s
// in the test cluster); a client that answers is never dropped.
func TestKeepaliveRequestsReply(t *testing.T) {
	t.Parallel()
	d := newDatabase(t, true)
	ctx := testCtx(t)
	c := connect(t, d.url)
	slot := slotName()
	snap, err := c.CreateSlot(ctx, slot)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, slot, snap.ConsistentPoint, startOptions(c)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	answered := 0
	for answered < 2 {
		f, err := c.Receive(deadline)
		if err != nil {
			t.Fatalf("after %d answered keepalives: %v", answered, err)
		}
		if f.Kind == replication.FrameKeepalive && f.ReplyRequested {
			if err := c.SendStatus(ctx, snap.ConsistentPoint); err != nil {
				t.Fatal(err)
			}
			answered++
		}
	}
}

// slowConn counts the bytes read from the socket, to tell a timeout that
// struck mid-message (bytes arrived, no frame completed) from an idle one.
// When slow is set it plays a slow network whose deadline keeps passing: short
// reads, and every third read runs with the socket's deadline already past,
// so the runtime's own timeout strikes in the middle of large messages however
// fast the machine is.
type slowConn struct {
	net.Conn
	read     atomic.Int64
	slow     atomic.Bool
	reads    int       // only touched by the goroutine calling Receive
	deadline time.Time // likewise
}

func (c *slowConn) SetReadDeadline(t time.Time) error {
	c.deadline = t
	return c.Conn.SetReadDeadline(t)
}

func (c *slowConn) SetDeadline(t time.Time) error {
	c.deadline = t
	return c.Conn.SetDeadline(t)
}

func (c *slowConn) Read(p []byte) (int, error) {
	if c.slow.Load() {
		p = p[:min(len(p), 16<<10)]
		if c.reads++; c.reads%3 == 0 {
			_ = c.Conn.SetReadDeadline(time.Unix(1, 0))
			defer func() { _ = c.Conn.SetReadDeadline(c.deadline) }()
		}
	}
	n, err := c.Conn.Read(p)
	c.read.Add(int64(n))
	return n, err
}

func TestReceiveTimeoutKeepsConnection(t *testing.T) {
	t.Parallel()
	d := newDatabase(t, true)
	ctx := testCtx(t)
	cfg, err := pgconn.ParseConfig(d.url)
	if err != nil {
		t.Fatal(err)
	}
	var sock *slowConn
	dial := cfg.DialFunc
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		nc, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		sock = &slowConn{Conn: nc}
		return sock, nil
	}
	c, err := replication.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	slot := slotName()
	snap, err := c.CreateSlot(ctx, slot)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, slot, 0, startOptions(c)); err != nil {
		t.Fatal(err)
	}
	// Drain the keepalives a fresh walsender sends until it times out.
	testenv.Eventually(t, 30*time.Second, func() error {
		_, err := c.Receive(time.Now().Add(20 * time.Millisecond))
		if errors.Is(err, replication.ErrTimeout) {
			return nil
		}
		if err != nil {
			t.Fatalf("receive: %v", err)
		}
		return errors.New("still receiving")
	})
	if _, err := c.Receive(time.Now().Add(-time.Second)); !errors.Is(err, replication.ErrTimeout) || replication.IsConnLost(err) {
		t.Fatalf("receive with a past deadline: %v", err)
	}
	if err := c.SendStatus(ctx, snap.ConsistentPoint); err != nil {
		t.Fatal(err)
	}

	// A large row read over a network whose deadline keeps passing: the
	// timeouts land mid-message and the message must still arrive whole.
	payload := make([]byte, 1<<20)
	for i := range payload {
		payload[i] = byte(i*7 + i>>9)
	}
	want := payload
	if !startOptions(c).Binary {
		want = []byte(fmt.Sprintf(`\x%x`, payload))
	}
	d.exec(t, `INSERT INTO bus.outbox (subject, payload) VALUES ('big', $1)`, payload)
	sock.slow.Store(true)
	midMessage := 0
	var got []byte
	for got == nil {
		before := sock.read.Load()
		f, err := c.Receive(time.Now().Add(30 * time.Second))
		switch {
		case errors.Is(err, replication.ErrTimeout):
			if sock.read.Load() > before {
				midMessage++
			}
		case err != nil:
			t.Fatalf("receive after %d mid-message timeouts: %v", midMessage, err)
		case f.Kind == replication.FrameXLogData && f.Data[0] == 'I':
			got = bytes.Clone(f.Data)
		}
	}
	sock.slow.Store(false)
	if midMessage == 0 {
		t.Fatal("no receive timeout struck mid-message")
	}
	if !bytes.Contains(got, want) {
		t.Fatalf("payload corrupted across %d mid-message timeouts", midMessage)
	}
	t.Logf("%d receive timeouts struck mid-message", midMessage)
	if err := c.SendStatus(ctx, 0); err != nil {
		t.Fatalf("connection unusable after timeouts: %v", err)
	}
}

func TestStartMissingSlotThenCreate(t *testing.T) {
	t.Parallel()
	d := newDatabase(t, true)
	ctx := testCtx(t)
	c := connect(t, d.url)
	slot := slotName()
	err := c.Start(ctx, slot, 0, startOptions(c))
	if !errors.Is(err, replication.ErrSlotMissing) || replication.IsConnLost(err) {
		t.Fatalf("start on a missing slot: %v", err)
	}
	// The same Conn carries on after a server error.
	if _, err := c.CreateSlot(ctx, slot); err != nil {
		t.Fatalf("create after failed start: %v", err)
	}
	if _, err := c.CreateSlot(ctx, slot); !errors.Is(err, replication.ErrSlotExists) {
		t.Fatalf("second create: %v", err)
	}
	if err := c.Start(ctx, slot, 0, startOptions(c)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.CreateSlot(ctx, slot+"_other"); err == nil || replication.IsConnLost(err) {
		t.Fatalf("command while streaming: %v", err)
	}
	if err := c.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Receive(time.Time{}); !replication.IsConnLost(err) {
		t.Fatalf("receive after close: %v", err)
	}
}

func TestServerEndsStream(t *testing.T) {
	t.Parallel()
	d := newDatabase(t, true)
	ctx := testCtx(t)
	c := connect(t, d.url)
	slot := slotName()
	if _, err := c.CreateSlot(ctx, slot); err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, slot, 0, startOptions(c)); err != nil {
		t.Fatal(err)
	}
	d.exec(t, `SELECT pg_terminate_backend($1)`, int32(c.BackendPID()))
	for {
		_, err := c.Receive(time.Now().Add(30 * time.Second))
		if err == nil {
			continue
		}
		if !replication.IsConnLost(err) {
			t.Fatalf("receive after the walsender was terminated: %v", err)
		}
		break
	}
	if err := c.SendStatus(context.Background(), 0); !replication.IsConnLost(err) {
		t.Fatalf("status after loss: %v", err)
	}
}

// A quiet outbox in a busy database: the walsender reports the WAL it has
// decoded past in keepalives, and confirming that position moves the slot.
func TestIdleSlotAdvancesOnKeepalive(t *testing.T) {
	t.Parallel()
	d := newDatabase(t, true)
	ctx := testCtx(t)
	c := connect(t, d.url)
	slot := slotName()
	snap, err := c.CreateSlot(ctx, slot)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(ctx, slot, 0, startOptions(c)); err != nil {
		t.Fatal(err)
	}
	if err := c.SendStatus(ctx, snap.ConsistentPoint); err != nil {
		t.Fatal(err)
	}
	d.exec(t, `INSERT INTO public.noise (v) SELECT 'x' FROM generate_series(1, 1000)`)
	var walEnd pglogrepl.LSN
	if err := d.pool.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&walEnd); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	confirmed := snap.ConsistentPoint
	for confirmed < walEnd {
		f, err := c.Receive(deadline)
		if err != nil {
			t.Fatalf("confirmed %s of %s: %v", confirmed, walEnd, err)
		}
		switch {
		case f.Kind == replication.FrameXLogData && f.Data[0] != 'B' && f.Data[0] != 'C':
			t.Fatalf("unexpected %q message for a table outside the publication", f.Data[0])
		case f.Kind == replication.FrameKeepalive && f.ServerWALEnd > confirmed:
			// Nothing in flight and no transaction open: safe to confirm.
			confirmed = f.ServerWALEnd
			if err := c.SendStatus(ctx, confirmed); err != nil {
				t.Fatal(err)
			}
		}
	}
	waitConfirmed(t, d, slot, confirmed)
}

// SenderTimeout reads the walsender's own wal_sender_timeout, a role's
// setting included.
func TestSenderTimeout(t *testing.T) {
	t.Parallel()
	d := newDatabase(t, true)
	ctx := testCtx(t)
	var want string
	if err := d.pool.QueryRow(ctx, `SELECT setting FROM pg_settings WHERE name = 'wal_sender_timeout'`).Scan(&want); err != nil {
		t.Fatal(err)
	}
	got, err := connect(t, d.url).SenderTimeout(ctx)
	if err != nil || fmt.Sprint(got.Milliseconds()) != want {
		t.Fatalf("SenderTimeout = %v, %v; want %s ms", got, err, want)
	}
	role := "st_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	d.exec(t, `CREATE ROLE `+role+` LOGIN REPLICATION SUPERUSER`)
	d.exec(t, `ALTER ROLE `+role+` SET wal_sender_timeout = '3min'`)
	t.Cleanup(func() { d.exec(t, `DROP ROLE IF EXISTS `+role) })
	u, err := url.Parse(d.url)
	if err != nil {
		t.Fatal(err)
	}
	u.User = url.User(role)
	rc := connect(t, u.String())
	if got, err := rc.SenderTimeout(ctx); err != nil || got != 3*time.Minute {
		t.Fatalf("with the role's setting: SenderTimeout = %v, %v; want 3m", got, err)
	}
	_ = rc.Close(ctx)
}
