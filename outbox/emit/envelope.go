package emit

import (
	"encoding/json"
	"fmt"
	"time"
)

// EnvelopeVersion is the version field of every envelope this package writes.
const EnvelopeVersion = "v1"

// Envelope is the wire format of an emitted event:
//
//	{"version":"v1","timestamp":"2025-01-02T03:04:05.123456789Z","requestId":"r-1","body":{...}}
//
// requestId is left out, not null, when the event has none. To decode the
// body into a type of your own, set Body to a pointer to it before
// json.Unmarshal; otherwise it decodes as a map, slice or scalar.
type Envelope struct {
	Version   string    `json:"version"`
	Timestamp time.Time `json:"timestamp"` // UTC, RFC 3339 with nanoseconds
	RequestID string    `json:"requestId,omitempty"`
	Body      any       `json:"body"`
}

// marshalEnvelope encodes v in an envelope stamped now. A marshaller that
// panics counts as a failure: Emit must never take its caller down.
func marshalEnvelope(requestID string, v any) (data []byte, err error) {
	defer func() {
		if p := recover(); p != nil {
			data, err = nil, fmt.Errorf("marshal panicked: %v", p)
		}
	}()
	return json.Marshal(Envelope{
		Version:   EnvelopeVersion,
		Timestamp: time.Now().UTC(),
		RequestID: requestID,
		Body:      v,
	})
}
