# Build and install stalld. `make install DESTDIR=/tmp/root` stages the files.
PREFIX ?= /usr
BINDIR ?= $(PREFIX)/bin
UNITDIR ?= $(PREFIX)/lib/systemd/system
MANDIR ?= $(PREFIX)/share/man
SYSCONFDIR ?= /etc
CARGO ?= cargo

.PHONY: all install uninstall

all:
	scripts/install-deps
	$(CARGO) build --release

# stalld-guardian is a hard link, not a symbolic one: the guardian process runs from it, and
# /proc/PID/exe must not name stalld (`pidof stalld` lists the daemon alone).
install: all
	install -D -m 0700 target/release/stalld $(DESTDIR)$(BINDIR)/stalld
	ln -sf stalld $(DESTDIR)$(BINDIR)/throttlectl
	ln -f $(DESTDIR)$(BINDIR)/stalld $(DESTDIR)$(BINDIR)/stalld-guardian
	install -D -m 0644 systemd/stalld.service $(DESTDIR)$(UNITDIR)/stalld.service
	install -D -m 0644 systemd/stalld.conf $(DESTDIR)$(SYSCONFDIR)/sysconfig/stalld
	install -D -m 0644 man/stalld.8 $(DESTDIR)$(MANDIR)/man8/stalld.8

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/stalld $(DESTDIR)$(BINDIR)/throttlectl $(DESTDIR)$(BINDIR)/stalld-guardian
	rm -f $(DESTDIR)$(UNITDIR)/stalld.service $(DESTDIR)$(MANDIR)/man8/stalld.8
