# cfs build entry points. Everything a target needs is installed by the target itself:
# a pinned Deno from npm into .tools/ (ignored by git), Debian packages with apt-get when
# missing, and the reference CLIs (`cfsctl` of composefs-ctl 0.9.4 and of cfsctl 0.3.0, the test
# oracles) with cargo when missing, each into a root of its own so both coexist.

DENO_VERSION := 2.9.6
TOOLS        := $(CURDIR)/.tools
DENO         := $(TOOLS)/node_modules/.bin/deno
export DENO_DIR := $(CURDIR)/.deno
export PATH := $(HOME)/.cargo/bin:$(PATH)
# The conformance oracles, outside the checkout so that a fresh clone on the same machine reuses
# them: composefs-ctl 0.9.4 (the generation bootc uses; runs on the host with --insecure) and
# cfsctl 0.3.0 (only for reading and upgrading old repositories; needs fs-verity, so it runs in a
# QEMU guest). Tests read these two variables and fail with an install hint when a binary is missing.
ORACLE_ROOT ?= /opt/cfs-oracles
export CFSCTL_0_9 ?= $(ORACLE_ROOT)/composefs-ctl-0.9.4/bin/cfsctl
export CFSCTL_0_3 ?= $(ORACLE_ROOT)/cfsctl-0.3.0/bin/cfsctl
# V8 settings of the shipped binary: a 1 MiB young generation keeps the peak RSS of
# `cfs digest` on a 1 GiB file near 90 MB instead of 100 MB, at no measured speed cost.
CFS_V8_FLAGS := --v8-flags=--max-semi-space-size=1

# Debian packages the tests use: fs-verity reference digests, EROFS tools, the debootstrap
# rootfs, the QEMU guest that runs cfsctl where fs-verity is enabled, xattr tools, gcc and the
# arm64 kernel headers (test/arch_test.ts checks the per-architecture constants against them).
APT_PACKAGES := fsverity erofs-utils debootstrap e2fsprogs attr xxhash qemu-system-x86 \
                linux-image-amd64 busybox-static cpio zstd time libarchive-tools \
                skopeo umoci docker-registry selinux-utils tmux podman xfsprogs \
                gcc linux-libc-dev-arm64-cross gnupg libgpgme-dev \
                zsh fish groff dracut-core

.PHONY: man setup deno apt cfsctl oracles cimage-oracle demo test test-unit vm-test bench binary binary-all binary-test fmt lint \
        check clean

setup: deno apt

deno: $(DENO)
$(DENO):
	mkdir -p $(TOOLS)
	cd $(TOOLS) && npm install --no-audit --no-fund --silent deno@$(DENO_VERSION)
	$(DENO) --version

apt:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# `cargo install` builds each once (composefs-ctl 0.9.4: about 15 minutes on 2 cores).
# cimage-oracle: the signature-policy oracle (test/fixtures/cimage_oracle, containers/image
# 5.23.1 from the Go module proxy, as skopeo 1.9.3; Debian's skopeo has sigstore disabled),
# built with Go once per source version (about 80 s).
oracles cfsctl: $(CFSCTL_0_9) $(CFSCTL_0_3) cimage-oracle
cimage-oracle: deno apt
	$(DENO) eval --quiet \
	  'import { oracleBinary } from "./test/fixtures/signing.ts"; console.log(await oracleBinary());'

$(CFSCTL_0_9):
	cargo install composefs-ctl --locked --version 0.9.4 --root $(ORACLE_ROOT)/composefs-ctl-0.9.4
$(CFSCTL_0_3):
	cargo install cfsctl --locked --version 0.3.0 --root $(ORACLE_ROOT)/cfsctl-0.3.0

# Man pages from the command table (lib/cli/table.ts), as cfs man --out writes them.
man: deno
	$(DENO) run --allow-all --quiet cli.ts man --out man

# The main job on an image built here, no network (demo.ts): a small bootable OCI layout pulled
# through a shipped hook; image ID, tags, boot entries. DEMO_ARGS=--keep keeps its directory.
demo: setup
	$(DENO) run --allow-all --quiet demo.ts $(DEMO_ARGS)

# The QEMU boot test runs in vm-test only (.ci/run calls both).
test: setup cfsctl
	$(DENO) test --allow-all --quiet --ignore=test/vm/boot_test.ts test/

# The unit tier: pure code, in seconds, as any user, with nothing but Deno (no root, QEMU,
# network, kernel mounts, oracles or subprocesses: --deny-net and --deny-run make a test that
# needs them fail here, so it goes to the host tier instead). `make test` runs these too.
UNIT_TESTS := test/unit/ test/boot_entries_test.ts test/log_test.ts test/oci_reference_test.ts \
              test/splitstream_large_test.ts
UNIT_PERMISSIONS := --allow-read --allow-write --allow-env --allow-ffi --allow-sys \
                    --deny-net --deny-run
test-unit: deno
	$(DENO) test $(UNIT_PERMISSIONS) --quiet $(UNIT_TESTS)

vm-test: setup
	$(DENO) test --allow-all test/vm/boot_test.ts

bench: setup cfsctl
	$(DENO) run --allow-all --quiet bench/bench.ts

# `make binary` builds for this machine's architecture; `make binary TARGETS="..."` for others
# (x86_64-unknown-linux-gnu, aarch64-unknown-linux-gnu): dist/cfs-<target> each. deno compile
# downloads the denort runtime of each target; where it cannot, DENORT_BIN names a local one
# (one runtime, so one target per run). A binary for this machine must answer --version as cfs
# (a DENORT_BIN that is deno itself, not denort, makes a binary that is Deno's REPL). A probe
# (an empty module) finds out in seconds whether the runtime can be had, before cfs compiles.
# COMPILE_INCLUDES: files cfs loads by path at run time, outside the module graph deno compile
# follows (test/binary_test.ts checks the list against the code): the fs-verity hashing workers.
# Hook processes need nothing: the binary starts itself (lib/pipeline/hook_process.ts).
TARGETS ?=
COMPILE_INCLUDES := --include lib/fsverity/leaf_worker.ts --include lib/fsverity/file_pool_worker.ts --include lib/oci/layer_worker.ts
binary: deno
	@mkdir -p dist
	@for t in $(if $(TARGETS),$(TARGETS),host); do \
	  if [ $$t = host ]; then out=dist/cfs; tflag=""; else out=dist/cfs-$$t; tflag="--target $$t"; fi; \
	  echo 'export {};' > dist/.probe.ts; \
	  if ! { NO_COLOR=1 $(DENO) compile --quiet $$tflag --output dist/.probe dist/.probe.ts && \
	      NO_COLOR=1 $(DENO) compile --allow-all $(CFS_V8_FLAGS) $(COMPILE_INCLUDES) $$tflag \
	        --output $$out cli.ts; } >dist/compile.log 2>&1; then \
	    zip=$$(grep -o 'denort-[A-Za-z0-9_.-]*\.zip' dist/compile.log | head -n 1); \
	    if [ -n "$$zip" ] && [ -z "$$DENORT_BIN" ]; then \
	      echo "make binary: deno compile could not download $$zip (the Deno $(DENO_VERSION) runtime it builds on): get that zip where you can, unzip it, and run 'make binary DENORT_BIN=/path/to/denort'" >&2; \
	    else cat dist/compile.log >&2; \
	      echo "make binary: deno compile of $$out failed (output above; DENORT_BIN=$${DENORT_BIN:-unset})" >&2; fi; \
	    exit 1; \
	  fi; \
	  if [ $$t = host ] && ! ./$$out --version 2>/dev/null | grep -q '^cfs '; then \
	    rm -f $$out; \
	    echo "make binary: $$out does not run as cfs: DENORT_BIN=$$DENORT_BIN is not a denort $(DENO_VERSION) runtime (deno itself will not do)" >&2; \
	    exit 1; \
	  fi; \
	  rm -f dist/.probe dist/.probe.ts; echo "$$out"; \
	done

# Runs the compiled binary's tests and fails when no binary can be built (make test runs the
# same file, which then only checks make binary's message and says loudly that it ran no binary).
binary-test: deno
	CFS_REQUIRE_BINARY=1 $(DENO) test --allow-all test/binary_test.ts

binary-all:
	$(MAKE) binary TARGETS="x86_64-unknown-linux-gnu aarch64-unknown-linux-gnu"

# `make install [PREFIX=/usr] [DESTDIR=]` (install.ts): PREFIX/bin/cfs (dist/cfs after
# `make binary`, else a launcher of this checkout) and PREFIX/share/cfs/hooks/types.ts, the hook
# API that hooks import their types from, with the modules it takes types from.
PREFIX ?= /usr
.PHONY: install
install: deno
	$(DENO) run --allow-all --quiet install.ts $(PREFIX) $(DESTDIR)

fmt: deno
	$(DENO) fmt

lint: deno
	$(DENO) lint

check: deno
	$(DENO) check cli.ts mod.ts demo.ts
	$(DENO) doc --lint mod.ts

clean:
	rm -rf dist test/.work

# The fuzz tier (fuzz/main.ts, not in `make test` or CI): mutated EROFS images, splitstreams,
# dumpfiles, tar layers and OCI layouts through the readers and fsck. Seeded (SEED=N, else a
# random one, printed), bounded (FUZZ_TIME seconds per target, FUZZ_TOTAL in all),
# FUZZ_TARGETS=a,b for a subset. Findings go to test/.work/fuzz/failures/.
FUZZ_TIME ?= 60
FUZZ_TOTAL ?= 600
.PHONY: fuzz
fuzz: setup cfsctl
	$(DENO) run --allow-all fuzz/main.ts $(if $(SEED),--seed $(SEED)) --time $(FUZZ_TIME) \
	  --total $(FUZZ_TOTAL) $(if $(FUZZ_TARGETS),--targets $(FUZZ_TARGETS))
