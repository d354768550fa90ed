package gateway

import (
	"net/http"
	"net/netip"

	"github.com/totp-auth/totp_auth/gateway/account"
)

// How clients are told apart: per address for the failure counters, per
// network for the hashing queue's fair share (SPEC §4 rule 25, §6).

// ClientKey is the name of the per-client failure counter of a client at
// ip: "ip:" and the address for IPv4, "ip:" and its /64 for IPv6, since one
// host commonly holds a whole /64 and would otherwise get a fresh budget
// per address. An address that does not parse is counted as it is.
func ClientKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return account.IPCounter.Key(ip)
	}
	a = a.Unmap()
	if a.Is4() {
		return account.IPCounter.Key(a.String())
	}
	return account.IPCounter.Key(netip.PrefixFrom(a.WithZone(""), 64).Masked().String())
}

// clientPrefix names the network a request comes from, for the hashing
// queue's fair share: the /24 of an IPv4 address, the /64 of an IPv6 one.
// It is no security boundary, only a guess at "one party": addresses
// that one host or provider hands out together share a share.
func (g *Gateway) clientPrefix(r *http.Request) string {
	ip := g.cfg.ClientIP(r)
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	bits := 64
	if a.Is4() {
		bits = 24
	}
	return netip.PrefixFrom(a, bits).Masked().String()
}
