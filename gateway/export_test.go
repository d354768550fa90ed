package gateway

// WaitLastSeen waits until the background writes of last-seen times that
// were queued so far are done.
func (g *Gateway) WaitLastSeen() { g.lastSeen.wg.Wait() }

// DeviceName is deviceName, for the table test of User-Agents.
var DeviceName = deviceName
