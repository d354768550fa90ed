# `make test` installs the tools the end-to-end tests need when they are
# missing (Debian/Ubuntu), runs every test, then fuzzes every fuzz target
# briefly. The PostgreSQL tests start their own throwaway cluster from
# Debian's `postgresql` binaries (internal/pgtest); no server needs to run.

GO ?= go

# How long `make fuzz` runs each fuzz target, and how long `make test` does.
FUZZTIME ?= 15s
TEST_FUZZTIME ?= 10s

.PHONY: test test-deps fuzz

test: test-deps
	$(GO) test -timeout 30m ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=$(TEST_FUZZTIME)

# Installs only what is missing, with sudo only when not root.
test-deps:
	@missing=""; \
	command -v oathtool >/dev/null 2>&1 || missing="$$missing oathtool"; \
	command -v zbarimg >/dev/null 2>&1 || missing="$$missing zbar-tools"; \
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing="$$missing chromium"; \
	ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || missing="$$missing postgresql"; \
	[ -x /usr/sbin/nginx ] || missing="$$missing nginx"; \
	command -v rclone >/dev/null 2>&1 || missing="$$missing rclone"; \
	command -v ip >/dev/null 2>&1 || missing="$$missing iproute2"; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		echo "installing:$$missing"; \
		$$sudo apt-get update && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

# Runs every fuzz target of the module, one at a time, for FUZZTIME each,
# and stops at the first finding (go test saves the input under the
# package's testdata/fuzz/, where every later `go test` replays it). The
# targets are found with `go test -list`; -short keeps the end-to-end
# package from building Caddy just to list its (no) targets. Go 1.26's
# fuzzing engine can end a run with a bare "context deadline exceeded" at
# the end of -fuzztime and no failing input (go.dev/issue/75804, fixed in
# Go 1.27): such a target runs again, up to three times in all; any
# finding still stops.
fuzz:
	@set -e; \
	list=$$($(GO) test -short -list '^Fuzz' ./... 2>&1) || { printf '%s\n' "$$list" >&2; exit 1; }; \
	targets=$$(printf '%s\n' "$$list" | awk '/^Fuzz/ { t[n++] = $$1; next } /^ok / { for (i = 0; i < n; i++) print $$2 ":" t[i]; n = 0 }'); \
	[ -n "$$targets" ] || { echo "no fuzz targets found" >&2; exit 1; }; \
	for pt in $$targets; do \
		echo "fuzz $${pt%%:*} $${pt#*:} for $(FUZZTIME)"; \
		for try in 1 2 3; do \
			rc=0; out=$$($(GO) test "$${pt%%:*}" -run '^$$' -fuzz "^$${pt#*:}\$$" -fuzztime $(FUZZTIME) 2>&1) || rc=$$?; \
			printf '%s\n' "$$out"; \
			[ "$$rc" = 0 ] && break; \
			if [ "$$try" = 3 ] || ! printf '%s\n' "$$out" | grep -q 'context deadline exceeded' || printf '%s\n' "$$out" | grep -q 'Failing input written'; then \
				exit "$$rc"; \
			fi; \
			echo "fuzz: Go's own deadline race at the end of -fuzztime (go.dev/issue/75804), no failing input: again"; \
		done; \
	done

# `make bench` runs the performance benchmark of docs/performance.md (about 3 minutes);
# `make bench BENCH_FLAGS=--quick` is the short run for CI (under 90 s).
# See bench/README.md for what the numbers mean.
.PHONY: bench
bench:
	bench/run.sh $(BENCH_FLAGS)

# `make screenshots` takes the documentation's screenshots of the sign-in,
# enrollment, backup-code, account and password pages again, with the
# browser tests that check those pages (at phone and desktop width in
# light and dark mode) and changing one's password, into docs/screenshots/.
.PHONY: screenshots
screenshots: test-deps
	README_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test ./e2e -count=1 \
		-run '^(TestBrowser_PagesAtPhoneAndDesktopWidthInLightAndDark|TestBrowser_ChangeYourOwnPassword)$$'
