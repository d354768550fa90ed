package gateway

import (
	"math"
	"sort"
	"strings"
	"sync"

	"go.uber.org/zap"
	"golang.org/x/crypto/bcrypt"
)

// The decoy hash (SPEC §4 rule 24): checking a password for a name that
// is no user costs what checking it for the costliest user does, so the
// time of an answer does not tell whether the name exists. A user whose
// hash is cheaper than the costliest is answered sooner: only equal
// hashing parameters for everyone close that gap.

// hashWork estimates the CPU time in nanoseconds one check of hash takes,
// to compare hashes of different algorithms and parameters: bcrypt about
// 43 µs per 2^cost, argon2id about 0.7 µs per KiB per pass (on the
// machines the benchmark runs on). Only the order matters.
func hashWork(hash []byte) float64 {
	if strings.HasPrefix(string(hash), "$argon2id$") {
		p, _, err := parseArgon2id(string(hash))
		if err != nil {
			return 0
		}
		return float64(p.time) * float64(p.memory) * 700
	}
	c, err := bcrypt.Cost(hash)
	if err != nil {
		return 0
	}
	return math.Ldexp(43e3, c)
}

// decoy is the hash checked in place of an unknown user's. Making it
// takes a hash's time, so the first check waits for it; later it is only
// remade, off the request's path, when a costlier hash turns up.
type decoy struct {
	once    sync.Once
	done    chan struct{} // closed once the first hash is made
	mu      sync.Mutex
	hash    []byte
	work    float64 // hashWork of what hash is shaped like
	redoing bool    // a costlier one is being made
}

func newDecoy() *decoy { return &decoy{done: make(chan struct{})} }

// decoyHash returns the decoy, shaped like the costliest configured or
// stored hash. The first call waits for it to be made.
func (g *Gateway) decoyHash() []byte {
	d := g.decoy
	d.once.Do(func() {
		defer close(d.done)
		model, work := g.costliestHash()
		h, err := decoyHash(model, g.cfg.DecoyCost)
		if err != nil {
			g.cfg.Logger.Error("could not make the decoy password hash; unknown users are refused faster than known ones", zap.Error(err))
		}
		d.mu.Lock()
		d.hash, d.work = h, work
		d.mu.Unlock()
	})
	<-d.done
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.hash
}

// costliestHash returns the costliest of the configured password hashes
// and the models of the stored ones (account.HashModel), and its work;
// nil if there are none.
func (g *Gateway) costliestHash() ([]byte, float64) {
	names := make([]string, 0, len(g.cfg.Users))
	for n := range g.cfg.Users {
		names = append(names, n)
	}
	sort.Strings(names)
	var model []byte
	best := -1.0
	consider := func(h []byte) {
		if w := hashWork(h); w > best {
			model, best = h, w
		}
	}
	for _, n := range names {
		consider(g.cfg.Users[n])
	}
	if g.cfg.Store != nil {
		// The kinds of stored hashes, not every account: this runs on
		// every start and reload.
		models, err := g.cfg.Store.PasswordModels()
		if err != nil {
			g.cfg.Logger.Error("could not read the kinds of stored password hashes for the decoy; it follows the configured users only", zap.Error(err))
		}
		sort.Strings(models)
		for _, m := range models {
			consider([]byte(m))
		}
	}
	if model == nil {
		return nil, math.Ldexp(43e3, g.cfg.DecoyCost) // decoyHash's bcrypt at the default cost
	}
	return model, best
}

// noteHash makes a costlier decoy, off the request's path, when hash (just
// checked for a stored user) costs more than the current one: a user added
// while running, or one the listing could not see.
func (g *Gateway) noteHash(hash []byte) {
	d := g.decoy
	work := hashWork(hash)
	d.mu.Lock()
	defer d.mu.Unlock()
	if work <= d.work || d.redoing || d.hash == nil {
		return
	}
	d.redoing = true
	model := append([]byte(nil), hash...)
	go func() {
		h, err := decoyHash(model, g.cfg.DecoyCost)
		d.mu.Lock()
		defer d.mu.Unlock()
		d.redoing = false
		if err != nil {
			g.cfg.Logger.Error("could not make a costlier decoy password hash", zap.Error(err))
			return
		}
		if work > d.work {
			d.hash, d.work = h, work
		}
	}()
}
