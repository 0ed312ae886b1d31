package replication

import (
	"context"
	"net"

	"github.com/jackc/pgx/v5/pgconn"
)

// ConnectConfig is Connect with a config the test built, e.g. with a
// DialFunc that wraps the socket.
func ConnectConfig(ctx context.Context, cfg *pgconn.Config) (*Conn, error) {
	return connectConfig(ctx, cfg)
}

// NetConn is the connection's socket.
func (c *Conn) NetConn() net.Conn { return c.pg.Conn() }
