package relay

import (
	"net"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/cdcrelay/cdcrelay/internal/rawsock"
)

// The relay's hot sockets (its pool, which runs the flips, and its NATS
// connection; the replication connection does the same in package
// replication) make raw system calls: see rawsock for why.

// poolConfig is the configuration of the relay's pool for url.
func poolConfig(url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.DialFunc = pgconn.DialFunc(rawsock.WrapDial(rawsock.DialFunc(cfg.ConnConfig.DialFunc)))
	return cfg, nil
}

// natsDialer dials as nats.go's default dialer does (its connect timeout),
// with the connection wrapped.
func natsDialer() nats.Option {
	return nats.SetCustomDialer(&rawsock.Dialer{Dialer: net.Dialer{Timeout: nats.GetDefaultOptions().Timeout}})
}
