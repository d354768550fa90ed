package gateway

import (
	"testing"
	"time"
)

func TestInWords_RoundsUpToTheUnitItIsSaidIn(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "1 second"},
		{time.Second, "1 second"},
		{40 * time.Second, "40 seconds"},
		{59 * time.Second, "59 seconds"},
		{59*time.Second + time.Millisecond, "1 minute"},
		{time.Minute, "1 minute"},
		{14*time.Minute + 57*time.Second, "15 minutes"},
		{15 * time.Minute, "15 minutes"},
		{90 * time.Minute, "90 minutes"},
		{2 * time.Hour, "2 hours"},
		{24 * time.Hour, "24 hours"},
	}
	for _, tt := range tests {
		if got := inWords(tt.d); got != tt.want {
			t.Errorf("inWords(%s) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
