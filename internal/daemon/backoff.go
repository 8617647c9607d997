package daemon

import (
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"time"
)

// Backoff spaces retries after failures: Initial after the first, doubling
// after each further one, never more than Max. A success resets it.
type Backoff struct {
	Initial, Max time.Duration
}

// DefaultBackoff retries after 10 s, 20 s, 40 s ... up to 10 minutes: a
// registry outage is not hammered, a blip is retried soon.
func DefaultBackoff() Backoff { return Backoff{Initial: 10 * time.Second, Max: 10 * time.Minute} }

// Delay is the wait after the n-th consecutive failure (n >= 1).
func (b Backoff) Delay(n int) time.Duration {
	if n < 1 {
		n = 1
	}
	d := b.Initial
	for i := 1; i < n; i++ {
		if d >= b.Max/2 {
			return b.Max
		}
		d *= 2
	}
	return min(d, b.Max)
}

// jittered stretches d by a random fraction in [0, frac): replicas of many
// daemons started together do not poll their git server in lockstep.
func jittered(d time.Duration, frac float64) time.Duration {
	if frac <= 0 || d <= 0 {
		return d
	}
	return d + time.Duration(rand.Float64()*frac*float64(d))
}

// hashName is a short stable file name for a path.
func hashName(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:8])
}
