# Build and install stalld.
#
#   make                      cargo build --release (dynamic: libelf and zlib from the system)
#   make static               the static binary the rpm and the container image ship
#                             (target/static/<triple>/release; `make static-dir` prints it)
#   make install DESTDIR=/tmp/stage   stages every file; `make deb` and `make rpm` package
#                             exactly that tree, so a file added here is packaged everywhere
#   make deb                  target/debian/stalld_<version>-1_<arch>.deb (packaging/deb.sh)
#   make rpm                  target/rpm/stalld-<version>-1.<arch>.rpm (packaging/rpm.sh)
VERSION := $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)

PREFIX ?= /usr
BINDIR ?= $(PREFIX)/bin
UNITDIR ?= $(PREFIX)/lib/systemd/system
MANDIR ?= $(PREFIX)/share/man
DOCDIR ?= $(PREFIX)/share/doc/stalld
# Empty: the license is not installed as a file of its own (Debian: doc/stalld/copyright).
LICENSEDIR ?= $(PREFIX)/share/licenses/stalld
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/site-functions
FISHCOMPDIR ?= $(PREFIX)/share/fish/vendor_completions.d
SYSCONFDIR ?= /etc
# The environment file the unit reads: /etc/sysconfig/stalld (Fedora/RHEL, the C stalld's) or
# /etc/default/stalld (Debian). The unit reads both; each is optional.
ENVFILE ?= $(SYSCONFDIR)/sysconfig/stalld
# Shell completions, generated from the command-line definitions at build time: each of
# stalld.bash, _stalld (zsh) and stalld.fish found here is installed.
COMPLETIONSDIR ?= target/completions
MANPAGES ?= man/stalld.8

CARGO ?= cargo
TRIPLE ?= x86_64-unknown-linux-gnu
STATIC_BINS ?= stalld
# A target folder of its own: the static build's features and flags differ from the dynamic
# one's, and sharing target/ would rebuild the build-time crates at every switch.
STATIC_TARGET_DIR = target/static
STATIC_DIR = $(STATIC_TARGET_DIR)/$(TRIPLE)/release
# STATIC=1: install the static build (what the packages ship) instead of the dynamic one.
STATIC ?= 0
ifeq ($(STATIC),1)
BUILD_TARGET = static
BUILT = $(STATIC_DIR)
else
BUILD_TARGET = all
BUILT = target/release
endif

.PHONY: all static install uninstall deb rpm version static-dir

# Cargo runs make for the vendored libbpf: it must not inherit this make's command line
# (MAKEFLAGS carries DESTDIR=..., and libbpf would install itself into the package tree).
CARGO_ENV = env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u DESTDIR

all:
	scripts/install-deps
	$(CARGO_ENV) $(CARGO) build --release

# glibc with +crt-static; libbpf-rs's `static` feature links libbpf, libelf and zlib in. With
# --target, RUSTFLAGS do not reach build scripts and proc macros, which stay dynamic.
static:
	scripts/install-deps
	RUSTFLAGS="-C target-feature=+crt-static" \
	LIBBPF_SYS_LIBRARY_PATH=/usr/lib/$(shell uname -m)-linux-gnu \
	$(CARGO_ENV) $(CARGO) build --release --locked --target $(TRIPLE) --target-dir $(STATIC_TARGET_DIR) \
		--features libbpf-rs/static \
		$(addprefix --bin ,$(STATIC_BINS))

install: $(BUILD_TARGET)
	install -D -m 0755 $(BUILT)/stalld $(DESTDIR)$(BINDIR)/stalld
	ln -sf stalld $(DESTDIR)$(BINDIR)/throttlectl
	install -D -m 0644 systemd/stalld.service $(DESTDIR)$(UNITDIR)/stalld.service
	install -D -m 0644 systemd/stalld.conf $(DESTDIR)$(ENVFILE)
	for page in $(MANPAGES); do \
		section=$${page##*.}; \
		install -D -m 0644 $$page $(DESTDIR)$(MANDIR)/man$$section/$${page##*/} || exit 1; \
	done
	ln -sf stalld.8 $(DESTDIR)$(MANDIR)/man8/throttlectl.8
	if [ -f $(COMPLETIONSDIR)/stalld.bash ]; then \
		install -D -m 0644 $(COMPLETIONSDIR)/stalld.bash $(DESTDIR)$(BASHCOMPDIR)/stalld; fi
	if [ -f $(COMPLETIONSDIR)/_stalld ]; then \
		install -D -m 0644 $(COMPLETIONSDIR)/_stalld $(DESTDIR)$(ZSHCOMPDIR)/_stalld; fi
	if [ -f $(COMPLETIONSDIR)/stalld.fish ]; then \
		install -D -m 0644 $(COMPLETIONSDIR)/stalld.fish $(DESTDIR)$(FISHCOMPDIR)/stalld.fish; fi
	install -D -m 0644 README.md $(DESTDIR)$(DOCDIR)/README.md
	install -D -m 0644 CHANGELOG.md $(DESTDIR)$(DOCDIR)/changelog
	if [ -n "$(LICENSEDIR)" ]; then install -D -m 0644 COPYING $(DESTDIR)$(LICENSEDIR)/COPYING; fi

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/stalld $(DESTDIR)$(BINDIR)/throttlectl
	rm -f $(DESTDIR)$(UNITDIR)/stalld.service
	rm -f $(DESTDIR)$(MANDIR)/man8/stalld.8 $(DESTDIR)$(MANDIR)/man8/throttlectl.8
	rm -f $(DESTDIR)$(BASHCOMPDIR)/stalld $(DESTDIR)$(ZSHCOMPDIR)/_stalld $(DESTDIR)$(FISHCOMPDIR)/stalld.fish
	rm -rf $(DESTDIR)$(DOCDIR)
	if [ -n "$(LICENSEDIR)" ]; then rm -rf $(DESTDIR)$(LICENSEDIR); fi

deb:
	packaging/deb.sh

rpm:
	packaging/rpm.sh

version:
	@echo $(VERSION)

# Where `make static` puts its binaries (for the scripts that ship them).
static-dir:
	@echo $(STATIC_DIR)
