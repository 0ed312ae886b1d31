package main

import (
	"regexp"
	"strings"
)

// redacted replaces every secret redact finds.
const redacted = "xxxxx"

var (
	// scheme://user:password@ — the password, up to the @ (a URL's
	// userinfo cannot hold a raw /, ? or #, so a host:port/path is no match).
	urlPassword = regexp.MustCompile(`(?i)\b([a-z][a-z0-9+.-]*://[^:/@\s,]*):[^@\s/?#]*@`)
	// nats://token@ — NATS reads a user without a password as a token.
	natsToken = regexp.MustCompile(`(?i)\b((?:nats|tls|ws|wss)://)[^:/@\s,]+@`)
	// password=... in a key/value DSN, quoted or not.
	dsnPassword = regexp.MustCompile(`(?i)\b((?:ssl)?password\s*=\s*)(?:'(?:[^'\\]|\\.)*'|[^\s'&]+)`)
	// ?password=... or &token=... in a URL's query.
	queryPassword = regexp.MustCompile(`(?i)([?&](?:(?:ssl)?password|token|nkey|seed)=)[^&\s]*`)
)

// redact removes secrets from text that may hold a PostgreSQL URL or DSN or
// NATS URLs (comma-separated): passwords in URLs, in key=value DSNs and in
// query parameters, and NATS tokens. Everything the commands print or log
// that came from a URL goes through it.
func redact(s string) string {
	s = urlPassword.ReplaceAllString(s, "${1}:"+redacted+"@")
	s = natsToken.ReplaceAllString(s, "${1}"+redacted+"@")
	s = dsnPassword.ReplaceAllString(s, "${1}"+redacted)
	return queryPassword.ReplaceAllString(s, "${1}"+redacted)
}

// redactError returns err with secrets removed from its message, keeping
// its chain for errors.Is and errors.As. Secrets that are not in URLs (say,
// a NATS token given with --nats-token) are removed when passed as secrets.
func redactError(err error, secrets ...string) error {
	if err == nil {
		return nil
	}
	msg := redact(err.Error())
	for _, s := range secrets {
		if s != "" {
			msg = strings.ReplaceAll(msg, s, redacted)
		}
	}
	if msg == err.Error() {
		return err
	}
	return &rewordedError{msg: msg, err: err}
}

// rewordedError is an error with its message rewritten (redacted, or its
// fix reworded), keeping its chain.
type rewordedError struct {
	msg string
	err error
}

func (e *rewordedError) Error() string { return e.msg }
func (e *rewordedError) Unwrap() error { return e.err }
