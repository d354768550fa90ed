package gateway

import "sync"

// cacheSize bounds each boundedCache; when full it starts over, which
// costs one more decode or parse per entry in use.
const cacheSize = 4096

// boundedCache maps exact strings to what was worked out from them. It is
// safe for concurrent use; the zero value is ready.
type boundedCache[V any] struct {
	mu sync.RWMutex
	m  map[string]V
}

func (c *boundedCache[V]) get(key string) (V, bool) {
	c.mu.RLock()
	v, ok := c.m[key]
	c.mu.RUnlock()
	return v, ok
}

func (c *boundedCache[V]) put(key string, v V) {
	c.mu.Lock()
	if c.m == nil || len(c.m) >= cacheSize {
		c.m = make(map[string]V, 64)
	}
	c.m[key] = v
	c.mu.Unlock()
}
