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

install: all
	install -D -m 0700 target/release/stalld $(DESTDIR)$(BINDIR)/stalld
	ln -sf stalld $(DESTDIR)$(BINDIR)/throttlectl
	install -D -m 0644 systemd/stalld.service $(DESTDIR)$(UNITDIR)/stalld.service
	install -D -m 0644 systemd/stalld.conf $(DESTDIR)$(SYSCONFDIR)/sysconfig/stalld
	install -D -m 0644 man/stalld.8 $(DESTDIR)$(MANDIR)/man8/stalld.8

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/stalld $(DESTDIR)$(BINDIR)/throttlectl
	rm -f $(DESTDIR)$(UNITDIR)/stalld.service $(DESTDIR)$(MANDIR)/man8/stalld.8
