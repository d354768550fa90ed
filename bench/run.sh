#!/usr/bin/env bash
# Benchmark of totp_auth against plain reverse_proxy and basic_auth in one
# Caddy process, plus the wrong-password flood, plus portal mode: Caddy's
# forward_auth to verify against forward_auth to a plain 200 (SPEC §6).
# See bench/README.md.
#
#   bench/run.sh            full run, about 4 minutes
#   bench/run.sh --quick    short run for CI, under 2 minutes
#   bench/run.sh --profile  also take CPU profiles of Caddy (admin API on)
#   bench/run.sh --postgres totp_auth on PostgreSQL (SPEC §13): a second
#                           instance, failed attempts/s and logout propagation
#   bench/run.sh --users    only: what 100,000 database users cost a running
#                           Caddy on bbolt and PostgreSQL (about 2 minutes)
#   bench/run.sh --portal   only the portal-mode comparison (with --quick: 30 s;
#                           with --profile: CPU profiles of both forward_auth sites)
#
# Everything listens and connects on 127.0.0.1 only; every process it starts
# is killed on exit. The report also goes to bench/out/<mode>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
profile=0
pg=0
users_only=0
portal_only=0
for arg in "$@"; do
	case "$arg" in
	--users) users_only=1 ;;
	--postgres) pg=1 ;;
	--quick) mode=quick ;;
	--full) mode=full ;;
	--profile) profile=1 ;;
	--portal) portal_only=1 ;;
	-h | --help)
		sed -n '2,18p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "run.sh: unknown argument $arg (use --quick, --full, --profile, --postgres, --users, --portal)" >&2
		exit 2
		;;
	esac
done

if [ "$mode" = quick ]; then
	run_flags=(-mode quick -rounds 2 -load 2s -latency 1500ms -warmup 500ms -flood 5s -flood-ramp 1s -fair-tries 10 -fair 20s)
	portal_flags=(-mode quick -rounds 4 -load 2s -warmup 500ms)
else
	run_flags=(-mode full -rounds 8 -load 3s -latency 2s -warmup 1s -flood 10s -flood-ramp 1s)
	portal_flags=(-mode full -rounds 8 -load 3s -warmup 1s)
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/totp-bench.XXXXXX")
pids=()
cleanup() {
	local pid
	for pid in "${pids[@]}"; do
		kill "$pid" 2>/dev/null || true
	done
	for pid in "${pids[@]}"; do
		wait "$pid" 2>/dev/null || true
	done
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "building Caddy with totp_auth and the load generator into $work"
go build -o "$work/caddy" ./cmd/caddy
go build -o "$work/loadgen" ./bench/cmd/loadgen

# --users measures only what 100,000 database users cost a running Caddy
# on each store: start-up, memory, CPU per signed-in request (see
# bench/README.md), then exits. The bbolt files go to /dev/shm when there
# is one: seeding them takes one transaction per user.
if [ "$users_only" = 1 ]; then
	"$work/loadgen" postgres -dsn-file "$work/dsn" -lifetime 30m >"$work/postgres.log" 2>&1 &
	pids+=("$!")
	for _ in $(seq 1 120); do
		[ -s "$work/dsn" ] && break
		sleep 0.5
	done
	if [ ! -s "$work/dsn" ]; then
		echo "PostgreSQL did not start; its log:" >&2
		cat "$work/postgres.log" >&2
		exit 1
	fi
	files="$work/users"
	if [ -d /dev/shm ]; then
		files=$(mktemp -d /dev/shm/totp-bench-users.XXXXXX)
		trap 'rm -rf "$files"; cleanup' EXIT
	fi
	mkdir -p "$files" bench/out
	"$work/loadgen" users -n 100000 -dir "$files" -dsn-file "$work/dsn" -caddy "$work/caddy" -clk-tck "$(getconf CLK_TCK)" |
		tee bench/out/users.txt
	exit 0
fi

mapfile -t ports < <("$work/loadgen" freeport -n 15)
up_port=${ports[0]} plain_port=${ports[1]} totp_port=${ports[2]} basic_port=${ports[3]} admin_port=${ports[4]}
b_totp_port=${ports[5]} a_attack_port=${ports[6]} b_attack_port=${ports[7]} a_walk_port=${ports[8]} b_walk_port=${ports[9]}
portal_port=${ports[10]} ok_port=${ports[11]} fa_verify_port=${ports[12]} fa_ok_port=${ports[13]}
app_port=${ports[14]}

password="bench-password-$RANDOM$RANDOM"
# What a user does: `caddy hash-password`, bcrypt at its default cost 14.
# The cost matters only for the flood; a signed-in request never hashes.
hash=$("$work/caddy" hash-password --plaintext "$password")
key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')

# With --postgres, the totp_auth sites keep their state in a throwaway
# PostgreSQL cluster (durable settings, its socket in $work) instead of a
# bbolt file, and a second Caddy shares it.
out_name=$mode
store_line="db_path $work/totp.db"
servers_option=""
if [ "$pg" = 1 ]; then
	out_name=$mode-postgres
	"$work/loadgen" postgres -dsn-file "$work/dsn" -lifetime 30m >"$work/postgres.log" 2>&1 &
	pids+=("$!")
	for _ in $(seq 1 120); do
		[ -s "$work/dsn" ] && break
		sleep 0.5
	done
	if [ ! -s "$work/dsn" ]; then
		echo "PostgreSQL did not start; its log:" >&2
		cat "$work/postgres.log" >&2
		exit 1
	fi
	store_line="postgres \"$(cat "$work/dsn")\""
	cheap_hash=$("$work/loadgen" hash -password "$password")
	# The cluster's attack sites learn each client's IP from
	# X-Forwarded-For; nothing else sends one.
	servers_option=$(printf '\tservers 127.0.0.1:%s {\n\t\ttrusted_proxies static 127.0.0.1/32\n\t}' "$a_attack_port")
	attackers=$(for i in $(seq 0 31); do printf '\t\tuser attacker%d %s\n' "$i" "$cheap_hash"; done)
fi

if [ "$profile" = 1 ]; then
	admin_line="admin 127.0.0.1:$admin_port"
else
	admin_line="admin off"
fi

# Logs at ERROR: every refused login is a WARN audit line, and the point
# here is the cost of the gate, not of writing the flood's log.
# max_failures_per_ip is raised because the whole flood comes from
# 127.0.0.1: at the default of 50 it would be answered 429 without any
# hashing after a moment, which is the easy case; this measures the hard
# one, a flood from many addresses, where the bounded hashing must hold.
cat >"$work/Caddyfile" <<EOF
{
	$admin_line
	auto_https off
	persist_config off
	storage file_system $work/caddy-data
	log {
		level ERROR
	}
	# The forward_auth sites call the portal from 127.0.0.1: a trusted
	# proxy there, and only there.
	servers 127.0.0.1:$portal_port {
		trusted_proxies static 127.0.0.1/32
	}
$servers_option
}

# (a) plain reverse_proxy
http://:$plain_port {
	bind 127.0.0.1
	reverse_proxy 127.0.0.1:$up_port
}

# (b) totp_auth + reverse_proxy
http://:$totp_port {
	bind 127.0.0.1
	totp_auth {
		$store_line
		encryption_key $key
		issuer bench
		max_failures_per_ip 1000000000
		user bench $hash
	}
	reverse_proxy 127.0.0.1:$up_port
}

# (c) Caddy's basic_auth (bcrypt, default hash cache) + reverse_proxy
http://:$basic_port {
	bind 127.0.0.1
	basic_auth {
		bench $hash
	}
	reverse_proxy 127.0.0.1:$up_port
}

# (h) totp_auth with app_passwords + reverse_proxy, on (b)'s database:
# requests carry an app password over Basic, as sync clients do (SPEC §15)
http://:$app_port {
	bind 127.0.0.1
	totp_auth {
		$store_line
		encryption_key $key
		issuer bench
		max_failures_per_ip 1000000000
		user bench $hash
		app_passwords
	}
	reverse_proxy 127.0.0.1:$up_port
}

# (d) the sign-in portal for *.bench.test, with its own database
http://:$portal_port {
	bind 127.0.0.1
	totp_auth {
		db_path $work/portal.db
		encryption_key $key
		issuer bench
		portal bench.test
		max_failures_per_ip 1000000000
		user bench $hash
	}
	respond "the portal"
}

# (e) an endpoint that only answers 200, for forward_auth to ask instead
http://:$ok_port {
	bind 127.0.0.1
	respond 200
}

# (f) forward_auth to the portal's verify + reverse_proxy
http://:$fa_verify_port {
	bind 127.0.0.1
	forward_auth 127.0.0.1:$portal_port {
		uri /.totp-auth/verify?
		header_up Host auth.bench.test:$portal_port
		copy_headers Remote-User Remote-Groups
	}
	reverse_proxy 127.0.0.1:$up_port
}

# (g) the same forward_auth to the plain 200 + reverse_proxy
http://:$fa_ok_port {
	bind 127.0.0.1
	forward_auth 127.0.0.1:$ok_port {
		uri /ok?
		header_up Host auth.bench.test:$portal_port
		copy_headers Remote-User Remote-Groups
	}
	reverse_proxy 127.0.0.1:$up_port
}
EOF

# The sites the cluster measurements use, on both instances: a user with
# TOTP and no lockout (its wrong codes are the failed attempts), and a user
# without 2FA (its sessions are signed in quickly, to be logged out).
# Both hash at bcrypt's lowest cost: the sign-ins are not what is measured.
cluster_sites() {
	cat <<EOF

http://:$1 {
	bind 127.0.0.1
	totp_auth {
		$store_line
		encryption_key $key
		max_failures 1000000000
		max_failures_per_ip 1000000000
$attackers
	}
	reverse_proxy 127.0.0.1:$up_port
}

http://:$2 {
	bind 127.0.0.1
	totp_auth {
		$store_line
		encryption_key $key
		require_2fa false
		max_failures_per_ip 1000000000
		user walker $cheap_hash
	}
	reverse_proxy 127.0.0.1:$up_port
}
EOF
}

if [ "$pg" = 1 ]; then
	cluster_sites "$a_attack_port" "$a_walk_port" >>"$work/Caddyfile"
	cat >"$work/Caddyfile.b" <<EOF
{
	admin off
	auto_https off
	persist_config off
	storage file_system $work/caddy-data-b
	log {
		level ERROR
	}
	servers 127.0.0.1:$b_attack_port {
		trusted_proxies static 127.0.0.1/32
	}
}

http://:$b_totp_port {
	bind 127.0.0.1
	totp_auth {
		$store_line
		encryption_key $key
		issuer bench
		max_failures_per_ip 1000000000
		user bench $hash
	}
	reverse_proxy 127.0.0.1:$up_port
}
EOF
	cluster_sites "$b_attack_port" "$b_walk_port" >>"$work/Caddyfile.b"
fi

"$work/loadgen" upstream -addr "127.0.0.1:$up_port" -lifetime 30m &
upstream_pid=$!
pids+=("$upstream_pid")

XDG_DATA_HOME="$work/xdg-data" XDG_CONFIG_HOME="$work/xdg-config" \
	"$work/caddy" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
caddy_pid=$!
pids+=("$caddy_pid")

if [ "$pg" = 1 ]; then
	XDG_DATA_HOME="$work/xdg-data-b" XDG_CONFIG_HOME="$work/xdg-config-b" \
		"$work/caddy" run --config "$work/Caddyfile.b" --adapter caddyfile >"$work/caddy-b.log" 2>&1 &
	pids+=("$!")
	if ! "$work/loadgen" wait -timeout 30s \
		-addr "127.0.0.1:$b_totp_port,127.0.0.1:$a_attack_port,127.0.0.1:$b_attack_port,127.0.0.1:$a_walk_port,127.0.0.1:$b_walk_port"; then
		echo "the second Caddy did not come up; its log:" >&2
		tail -n 50 "$work/caddy-b.log" >&2
		exit 1
	fi
fi

if ! "$work/loadgen" wait -timeout 30s \
	-addr "127.0.0.1:$up_port,127.0.0.1:$plain_port,127.0.0.1:$totp_port,127.0.0.1:$basic_port,127.0.0.1:$portal_port,127.0.0.1:$ok_port,127.0.0.1:$fa_verify_port,127.0.0.1:$fa_ok_port,127.0.0.1:$app_port"; then
	echo "Caddy did not come up; its log:" >&2
	tail -n 50 "$work/caddy.log" >&2
	exit 1
fi

mkdir -p bench/out
profile_flags=()
if [ "$profile" = 1 ]; then
	profile_flags=(-admin "127.0.0.1:$admin_port" -profile-dir bench/out)
fi

# BENCH_LOADGEN_FLAGS passes extra flags for diagnostics, such as
# -flood-polite; see `loadgen run -h`.
read -r -a extra_flags <<<"${BENCH_LOADGEN_FLAGS:-}"

status=0
out="bench/out/$out_name.txt"
if [ "$portal_only" = 1 ]; then
	out="bench/out/$mode-portal.txt"
	: >"$out"
else
	"$work/loadgen" run "${run_flags[@]}" "${profile_flags[@]}" "${extra_flags[@]}" \
		-plain "127.0.0.1:$plain_port" -totp "127.0.0.1:$totp_port" -basic "127.0.0.1:$basic_port" -app "127.0.0.1:$app_port" \
		-pid "$caddy_pid" -upstream-pid "$upstream_pid" -clk-tck "$(getconf CLK_TCK)" -user bench -password "$password" |
		tee "$out" || status=$?
fi
if [ "$status" = 0 ]; then
	"$work/loadgen" portal "${portal_flags[@]}" "${profile_flags[@]}" \
		-portal "127.0.0.1:$portal_port" -verify "127.0.0.1:$fa_verify_port" -ok "127.0.0.1:$fa_ok_port" \
		-pid "$caddy_pid" -upstream-pid "$upstream_pid" -clk-tck "$(getconf CLK_TCK)" -user bench -password "$password" |
		tee -a "$out" || status=$?
fi

if [ "$status" != 0 ]; then
	echo "the load generator failed; the end of Caddy's log:" >&2
	tail -n 30 "$work/caddy.log" >&2
	exit "$status"
fi

if [ "$pg" = 1 ]; then
	"$work/loadgen" cluster -attack-a "127.0.0.1:$a_attack_port" -attack-b "127.0.0.1:$b_attack_port" \
		-walk-a "127.0.0.1:$a_walk_port" -walk-b "127.0.0.1:$b_walk_port" \
		-user attacker -walk-user walker -password "$password" |
		tee -a "$out" || status=$?
	if [ "$status" != 0 ]; then
		echo "the cluster measurement failed; the ends of the Caddy logs:" >&2
		tail -n 20 "$work/caddy.log" "$work/caddy-b.log" >&2
		exit "$status"
	fi
fi

# own_cost NAME: totp_auth's own CPU per request under NAME's load, from
# bench/out/NAME.pprof: the time the profile saw under
# caddymodule.(*TOTPAuth).ServeHTTP (the gate and everything it calls,
# nothing of Caddy's around it) over the requests answered while it ran.
own_cost() {
	local name=$1 rps ms
	rps=$(grep -A1 "CPU profile of $name " "$out" | awk '/req\/s/ {for (i = 1; i <= NF; i++) if ($i == "req/s") print $(i - 1)}' | tail -n 1)
	ms=$(go tool pprof -top -cum -unit=ms -focus='TOTPAuth..ServeHTTP' -nodecount=200 "$work/caddy" "bench/out/$name.pprof" 2>/dev/null |
		awk '/caddymodule\.\(\*TOTPAuth\)\.ServeHTTP$/ {sub(/ms$/, "", $4); print $4}')
	if [ -z "$rps" ] || [ -z "$ms" ]; then
		echo "   (no figure: the profile or the segment's req/s is missing)"
		return
	fi
	awk -v ms="$ms" -v rps="$rps" -v secs=10 -v name="$name" 'BEGIN {
		printf "   %s: totp_auth'"'"'s own CPU per request from the profile: %.1f µs (%.0f ms under TOTPAuth.ServeHTTP over about %.0f requests in %d s)\n",
			name, ms * 1000 / (rps * secs), ms, rps * secs, secs }'
}

if [ "$profile" = 1 ] && [ "$portal_only" = 1 ]; then
	for name in fa_ok fa_verify; do
		echo
		echo "== go tool pprof -top bench/out/$name.pprof"
		go tool pprof -top -nodecount=35 "$work/caddy" "bench/out/$name.pprof" 2>/dev/null | tee "bench/out/$name.top.txt"
	done
	echo
	echo "== verify's own share: go tool pprof -top -cum -focus=totp_auth bench/out/fa_verify.pprof"
	go tool pprof -top -cum -focus=totp_auth -nodecount=30 "$work/caddy" "bench/out/fa_verify.pprof" 2>/dev/null |
		tee bench/out/fa_verify.own.txt
	echo
	own_cost fa_verify | tee -a "$out"
elif [ "$profile" = 1 ]; then
	for name in plain totp_auth; do
		echo
		echo "== go tool pprof -top bench/out/$name.pprof"
		go tool pprof -top -nodecount=35 "$work/caddy" "bench/out/$name.pprof" 2>/dev/null | tee "bench/out/$name.top.txt"
	done
	echo
	echo "== totp_auth's own share: go tool pprof -top -cum -focus=totp_auth -ignore=reverseproxy"
	go tool pprof -top -cum -focus=totp_auth -ignore=reverseproxy -nodecount=30 "$work/caddy" "bench/out/totp_auth.pprof" 2>/dev/null |
		tee bench/out/totp_auth.own.txt
	echo
	own_cost totp_auth | tee -a "$out"
	echo
	echo "== during the flood: go tool pprof -top -cum bench/out/flood.pprof"
	go tool pprof -top -cum -nodecount=45 "$work/caddy" "bench/out/flood.pprof" 2>/dev/null | tee bench/out/flood.top.txt
fi
