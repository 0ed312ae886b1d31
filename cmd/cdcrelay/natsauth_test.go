package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/cdcrelay/cdcrelay/internal/relaytest"
	"github.com/cdcrelay/cdcrelay/outbox"
)

// authServer starts a JetStream server that requires authentication.
func authServer(t *testing.T, configure func(*server.Options)) string {
	t.Helper()
	opts := &server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true}
	configure(opts)
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		t.Fatal("nats server not ready")
	}
	t.Cleanup(func() { s.Shutdown(); s.WaitForShutdown() })
	return s.ClientURL()
}

// The security flags authenticate for real: right credentials connect,
// wrong ones are refused, and no secret is printed either way.
func TestNATSAuthentication(t *testing.T) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	seed, _ := kp.Seed()
	seedFile := filepath.Join(t.TempDir(), "user.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	other, _ := nkeys.CreateUser()
	otherSeed, _ := other.Seed()
	otherFile := filepath.Join(t.TempDir(), "other.nk")
	if err := os.WriteFile(otherFile, otherSeed, 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name      string
		configure func(*server.Options)
		good, bad []string
	}{
		{"user and password", func(o *server.Options) { o.Username, o.Password = "relay", natsSecret },
			[]string{"--nats-user", "relay", "--nats-password", natsSecret}, []string{"--nats-user", "relay", "--nats-password", "wrong-" + natsSecret}},
		{"token", func(o *server.Options) { o.Authorization = natsSecret },
			[]string{"--nats-token", natsSecret}, []string{"--nats-token", "wrong-" + natsSecret}},
		{"nkey", func(o *server.Options) { o.Nkeys = []*server.NkeyUser{{Nkey: pub}} },
			[]string{"--nats-nkey", seedFile}, []string{"--nats-nkey", otherFile}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url := authServer(t, tc.configure)
			ensure := []string{"stream", "ensure", "--nats-url", url, "--stream", "bus", "--subjects", "orders.>"}
			code, out, errOut := runCLI(t, append(ensure, tc.good...)...)
			if code != 0 || !strings.Contains(out, "stream bus created") {
				t.Errorf("with the right credentials: %d\n%s%s", code, out, errOut)
			}
			code, out, errOut = runCLI(t, append(ensure, tc.bad...)...)
			if code != 1 || !strings.Contains(errOut, "connect to NATS at "+url) || !strings.Contains(strings.ToLower(errOut), "authorization violation") {
				t.Errorf("with wrong credentials: %d\n%s%s", code, out, errOut)
			}
			if all := fmt.Sprint(out, errOut); strings.Contains(all, natsSecret) || strings.Contains(all, string(seed)) {
				t.Errorf("a secret was printed:\n%s", all)
			}
		})
	}
}

// run passes the security flags to the relay's own connection.
func TestRunAuthenticatesToNATS(t *testing.T) {
	h := relaytest.New(t, env, true)
	url := authServer(t, func(o *server.Options) { o.Username, o.Password = "relay", natsSecret })
	p := startCLI(t, "--log-format", "json", "run", "--database-url", h.URL, "--nats-url", url,
		"--nats-user", "relay", "--nats-password", natsSecret, "--ensure-stream", "--subjects", "orders.>", "--metrics-addr", "127.0.0.1:0")
	waitReadyz(t, p.metricsAddr(t), "leader streaming")
	if _, err := outbox.Publish(context.Background(), h.Pool, "orders.created", []byte("x")); err != nil {
		t.Fatal(err)
	}
	h.WaitAllDelivered(time.Minute)
	if code := p.stop(t); code != 0 || strings.Contains(p.errOut.String(), natsSecret) {
		t.Errorf("run: status %d, log:\n%s", code, p.errOut.String())
	}
}
