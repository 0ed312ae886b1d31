package main

import (
	"fmt"
	"os"
	"strings"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/urfave/cli/v2"
)

// natsSecurityFlags are how every command that connects to NATS
// authenticates and encrypts: one of credentials file, NKey seed file,
// token, or user and password; and TLS with a CA and an optional client
// certificate.
func natsSecurityFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "nats-creds", EnvVars: []string{"CDCRELAY_NATS_CREDS"}, Usage: "NATS credentials file (JWT and NKey seed, as nsc writes it)"},
		&cli.StringFlag{Name: "nats-nkey", EnvVars: []string{"CDCRELAY_NATS_NKEY"}, Usage: "file holding a NATS NKey seed (SU...)"},
		&cli.StringFlag{Name: "nats-token", EnvVars: []string{"CDCRELAY_NATS_TOKEN"}, Usage: "NATS authentication token (prefer the env var: arguments are visible in ps)"},
		&cli.StringFlag{Name: "nats-user", EnvVars: []string{"CDCRELAY_NATS_USER"}, Usage: "NATS user name (with --nats-password)"},
		&cli.StringFlag{Name: "nats-password", EnvVars: []string{"CDCRELAY_NATS_PASSWORD"}, Usage: "NATS password (prefer the env var)"},
		&cli.StringFlag{Name: "nats-tls-ca", EnvVars: []string{"CDCRELAY_NATS_TLS_CA"}, Usage: "PEM file of the CA that signed the NATS server's certificate (turns TLS on)"},
		&cli.StringFlag{Name: "nats-tls-cert", EnvVars: []string{"CDCRELAY_NATS_TLS_CERT"}, Usage: "PEM client certificate for NATS (with --nats-tls-key)"},
		&cli.StringFlag{Name: "nats-tls-key", EnvVars: []string{"CDCRELAY_NATS_TLS_KEY"}, Usage: "PEM private key of --nats-tls-cert"},
	}
}

// natsSecurityOptions turns the security flags into connection options,
// refusing combinations that make no sense with one line naming the flags.
func natsSecurityOptions(c *cli.Context) ([]nats.Option, error) {
	var (
		opts []nats.Option
		auth []string
	)
	for _, name := range []string{"nats-creds", "nats-nkey", "nats-token", "nats-user"} {
		if c.String(name) != "" {
			auth = append(auth, "--"+name)
		}
	}
	if len(auth) > 1 {
		return nil, fmt.Errorf("%s are all set: choose one way to authenticate to NATS", strings.Join(auth, " and "))
	}
	switch user, password := c.String("nats-user"), c.String("nats-password"); {
	case password != "" && user == "":
		return nil, fmt.Errorf("--nats-password is set without --nats-user")
	case user != "" && password == "":
		return nil, fmt.Errorf("--nats-user is set without --nats-password")
	case user != "":
		opts = append(opts, nats.UserInfo(user, password))
	}
	if f := c.String("nats-creds"); f != "" {
		if err := readable("--nats-creds", f); err != nil {
			return nil, err
		}
		opts = append(opts, nats.UserCredentials(f))
	}
	if f := c.String("nats-nkey"); f != "" {
		opt, err := nats.NkeyOptionFromSeed(f)
		if err != nil {
			return nil, fmt.Errorf("--nats-nkey %s: %w", f, err)
		}
		opts = append(opts, opt)
	}
	if t := c.String("nats-token"); t != "" {
		opts = append(opts, nats.Token(t))
	}
	if ca := c.String("nats-tls-ca"); ca != "" {
		if err := readable("--nats-tls-ca", ca); err != nil {
			return nil, err
		}
		opts = append(opts, nats.RootCAs(ca))
	}
	switch cert, key := c.String("nats-tls-cert"), c.String("nats-tls-key"); {
	case (cert == "") != (key == ""):
		return nil, fmt.Errorf("--nats-tls-cert and --nats-tls-key go together: set both or neither")
	case cert != "":
		for flag, f := range map[string]string{"--nats-tls-cert": cert, "--nats-tls-key": key} {
			if err := readable(flag, f); err != nil {
				return nil, err
			}
		}
		opts = append(opts, nats.ClientCert(cert, key))
	}
	return opts, nil
}

// natsSecurityUsed reports the security flags that are set, for the
// combinations that cannot use them.
func natsSecurityUsed(c *cli.Context) []string {
	var set []string
	for _, f := range natsSecurityFlags() {
		if name := f.Names()[0]; c.String(name) != "" {
			set = append(set, "--"+name)
		}
	}
	return set
}

// natsSecrets are the values to scrub from anything printed.
func natsSecrets(c *cli.Context) []string {
	return []string{c.String("nats-token"), c.String("nats-password")}
}

func readable(flag, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("%s: %w", flag, err)
	}
	return f.Close()
}

// connectJetStream connects with --nats-url and the security flags, naming
// itself name in the server's connection list, and opens JetStream on the
// connection; the caller closes the connection.
func connectJetStream(c *cli.Context, name string) (*nats.Conn, jetstream.JetStream, error) {
	opts, err := natsSecurityOptions(c)
	if err != nil {
		return nil, nil, err
	}
	nc, js, err := dialJetStream(c.String("nats-url"), append(opts, nats.Name(name))...)
	if err != nil {
		return nil, nil, redactError(fmt.Errorf("%w: %s", err, fixNATS), natsSecrets(c)...)
	}
	return nc, js, nil
}

// dialJetStream connects to url and opens JetStream on the connection; the
// caller closes the connection.
func dialJetStream(url string, opts ...nats.Option) (*nats.Conn, jetstream.JetStream, error) {
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to NATS at %s: %w", redact(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("open JetStream: %w", err)
	}
	return nc, js, nil
}
