package metrics

import (
	"testing"

	"github.com/cdcrelay/cdcrelay/outbox"
)

func TestNextFloor(t *testing.T) {
	for _, tc := range []struct {
		name               string
		floor, prevMax     int64
		c                  outbox.Count
		wantFloor, wantMax int64
	}{
		{"all published: up to what the previous measurement saw", 0, 100, outbox.Count{MaxID: 150}, 101, 150},
		{"oldest unpublished below that", 0, 100, outbox.Count{Unpublished: 3, MinUnpublished: 90, MaxID: 150}, 90, 150},
		{"unpublished only above it", 0, 100, outbox.Count{Unpublished: 3, MinUnpublished: 120, MaxID: 150}, 101, 150},
		{"empty range keeps the max", 101, 150, outbox.Count{}, 151, 150},
		{"never backwards", 120, 100, outbox.Count{MaxID: 130}, 120, 130},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, m := nextFloor(tc.floor, tc.prevMax, tc.c)
			if f != tc.wantFloor || m != tc.wantMax {
				t.Errorf("nextFloor = %d, %d; want %d, %d", f, m, tc.wantFloor, tc.wantMax)
			}
		})
	}
}
