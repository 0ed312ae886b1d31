package election

import (
	"context"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5"
	"golang.org/x/sys/unix"

	"github.com/cdcrelay/cdcrelay/internal/rawsock"
)

// The lock connection carries the keepalive bound on both ends, also
// through the wrapper the relay (and testConfig) gives it.
func TestLockConnectionKeepalives(t *testing.T) {
	l := acquire(t, newElector(t, testConfig(env.DB(t), randomLockID(), "relay")))
	err := l.Do(context.Background(), func(ctx context.Context, conn *pgx.Conn) error {
		wrapped, ok := conn.PgConn().Conn().(*rawsock.Conn)
		if !ok {
			return fmt.Errorf("lock connection is %T, want *rawsock.Conn", conn.PgConn().Conn())
		}
		tcp, ok := wrapped.Conn.(*net.TCPConn)
		if !ok {
			return fmt.Errorf("lock connection wraps %T, want TCP", wrapped.Conn)
		}
		raw, err := tcp.SyscallConn()
		if err != nil {
			return err
		}
		client := map[string][2]int{ // option: level, name
			"SO_KEEPALIVE":     {unix.SOL_SOCKET, unix.SO_KEEPALIVE},
			"TCP_KEEPIDLE":     {unix.IPPROTO_TCP, unix.TCP_KEEPIDLE},
			"TCP_KEEPINTVL":    {unix.IPPROTO_TCP, unix.TCP_KEEPINTVL},
			"TCP_KEEPCNT":      {unix.IPPROTO_TCP, unix.TCP_KEEPCNT},
			"TCP_USER_TIMEOUT": {unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT},
		}
		// KeepAlive 2s: the client gives up after 1s, probing every second.
		want := map[string]int{"SO_KEEPALIVE": 1, "TCP_KEEPIDLE": 1, "TCP_KEEPINTVL": 1, "TCP_KEEPCNT": clientProbes, "TCP_USER_TIMEOUT": 1000}
		for name, opt := range client {
			var v int
			var gerr error
			if err := raw.Control(func(fd uintptr) { v, gerr = unix.GetsockoptInt(int(fd), opt[0], opt[1]) }); err != nil {
				return err
			}
			if gerr != nil {
				return fmt.Errorf("%s: %w", name, gerr)
			}
			if v != want[name] {
				return fmt.Errorf("client %s = %d, want %d", name, v, want[name])
			}
		}
		server := map[string]string{
			"tcp_keepalives_idle": "1", "tcp_keepalives_interval": "1", "tcp_keepalives_count": "4",
			"tcp_user_timeout": "2000", "client_connection_check_interval": "100", "application_name": "relay",
		}
		for name, want := range server {
			var got string
			if err := conn.QueryRow(ctx, `SELECT setting FROM pg_settings WHERE name = $1`, name).Scan(&got); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			if got != want {
				return fmt.Errorf("server %s = %s, want %s", name, got, want)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
