#!/usr/bin/env bash
# Benchmark of totp_auth against plain reverse_proxy and basic_auth in one
# Caddy process, plus the wrong-password flood (SPEC §6). See bench/README.md.
#
#   bench/run.sh            full run, about 3 minutes
#   bench/run.sh --quick    short run for CI, under 90 s
#   bench/run.sh --profile  also take CPU profiles of Caddy (admin API on)
#
# Everything listens and connects on 127.0.0.1 only; every process it starts
# is killed on exit. The report also goes to bench/out/<mode>.txt.
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
profile=0
for arg in "$@"; do
	case "$arg" in
	--quick) mode=quick ;;
	--full) mode=full ;;
	--profile) profile=1 ;;
	-h | --help)
		sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
		exit 0
		;;
	*)
		echo "run.sh: unknown argument $arg (use --quick, --full, --profile)" >&2
		exit 2
		;;
	esac
done

if [ "$mode" = quick ]; then
	run_flags=(-mode quick -rounds 2 -load 2s -latency 1500ms -warmup 500ms -flood 5s -flood-ramp 1s -fair-tries 10 -fair 20s)
else
	run_flags=(-mode full -rounds 8 -load 3s -latency 2s -warmup 1s -flood 10s -flood-ramp 1s)
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

mapfile -t ports < <("$work/loadgen" freeport -n 5)
up_port=${ports[0]} plain_port=${ports[1]} totp_port=${ports[2]} basic_port=${ports[3]} admin_port=${ports[4]}

password="bench-password-$RANDOM$RANDOM"
# What a user does: `caddy hash-password`, bcrypt at its default cost 14.
# The cost matters only for the flood; a signed-in request never hashes.
hash=$("$work/caddy" hash-password --plaintext "$password")
key=$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')

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
		db_path $work/totp.db
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
EOF

"$work/loadgen" upstream -addr "127.0.0.1:$up_port" -lifetime 30m &
upstream_pid=$!
pids+=("$upstream_pid")

XDG_DATA_HOME="$work/xdg-data" XDG_CONFIG_HOME="$work/xdg-config" \
	"$work/caddy" run --config "$work/Caddyfile" --adapter caddyfile >"$work/caddy.log" 2>&1 &
caddy_pid=$!
pids+=("$caddy_pid")

if ! "$work/loadgen" wait -timeout 30s \
	-addr "127.0.0.1:$up_port,127.0.0.1:$plain_port,127.0.0.1:$totp_port,127.0.0.1:$basic_port"; then
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
"$work/loadgen" run "${run_flags[@]}" "${profile_flags[@]}" "${extra_flags[@]}" \
	-plain "127.0.0.1:$plain_port" -totp "127.0.0.1:$totp_port" -basic "127.0.0.1:$basic_port" \
	-pid "$caddy_pid" -upstream-pid "$upstream_pid" -clk-tck "$(getconf CLK_TCK)" -user bench -password "$password" |
	tee "bench/out/$mode.txt" || status=$?

if [ "$status" != 0 ]; then
	echo "the load generator failed; the end of Caddy's log:" >&2
	tail -n 30 "$work/caddy.log" >&2
	exit "$status"
fi

if [ "$profile" = 1 ]; then
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
	echo "== during the flood: go tool pprof -top -cum bench/out/flood.pprof"
	go tool pprof -top -cum -nodecount=45 "$work/caddy" "bench/out/flood.pprof" 2>/dev/null | tee bench/out/flood.top.txt
fi
