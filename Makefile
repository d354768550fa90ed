# `make test` installs the tools the end-to-end tests need when they are
# missing (Debian/Ubuntu), then runs every test.

GO ?= go

.PHONY: test test-deps

test: test-deps
	$(GO) test -timeout 10m ./...

# Installs only what is missing, with sudo only when not root.
test-deps:
	@missing=""; \
	command -v oathtool >/dev/null 2>&1 || missing="$$missing oathtool"; \
	command -v zbarimg >/dev/null 2>&1 || missing="$$missing zbar-tools"; \
	command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || missing="$$missing chromium"; \
	if [ -n "$$missing" ]; then \
		sudo=""; [ "$$(id -u)" -eq 0 ] || sudo=sudo; \
		echo "installing:$$missing"; \
		$$sudo apt-get update && \
		$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing; \
	fi

# `make bench` runs the performance benchmark of SPEC §6 (about 3 minutes);
# `make bench BENCH_FLAGS=--quick` is the short run for CI (under 90 s).
# See bench/README.md for what the numbers mean.
.PHONY: bench
bench:
	bench/run.sh $(BENCH_FLAGS)
