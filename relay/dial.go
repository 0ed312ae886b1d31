package relay

import (
	"net"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/nats-io/nats.go"

	"github.com/cdcrelay/cdcrelay/internal/rawsock"
)

// The relay's hot sockets (the lock connection, which runs the flips, its
// pool, which proves the origin guard, and its NATS connection; the
// replication connection does the same in package replication) make raw
// system calls: see rawsock for why.

// poolConfig is the configuration of the relay's pool for url.
func poolConfig(url string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	cfg.ConnConfig.DialFunc = rawsock.WrapDial(cfg.ConnConfig.DialFunc)
	return cfg, nil
}

// natsDialer, applied after the caller's options, sets a dialer with
// nats.go's connect timeout (Options.Timeout) whose connections are wrapped;
// a CustomDialer the caller set stands. Unlike nats.go's own dialer it does
// not split the timeout across the addresses a host name resolves to, and
// it does not try MPTCP.
func natsDialer() nats.Option {
	return func(o *nats.Options) error {
		if o.CustomDialer == nil {
			o.CustomDialer = &rawsock.Dialer{Dialer: net.Dialer{Timeout: o.Timeout}}
		}
		return nil
	}
}
