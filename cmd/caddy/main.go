// Command caddy is Caddy with its standard modules and totp_auth built in.
// It exists so the project can be run and tested from this repository with a
// plain `go build`; users build their own Caddy with xcaddy.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/totp-auth/totp_auth/caddymodule"
)

func main() {
	caddycmd.Main()
}
