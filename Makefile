# become-root: build and install like other software.
#
#   make                      build (cargo build --release --locked)
#   make install              install under PREFIX (default /usr/local); DESTDIR for staging
#   make uninstall            remove what install put there
#   make deb                  build the Debian package (scripts/build-deb)
#
# Installs both programs, their man pages (gzip'd, section 1) and shell completions where
# bash-completion, zsh and fish look for them. BUILT names the directory holding the built
# binaries (default target/release, built first); give it to install a build made elsewhere.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
BASHDIR ?= $(DATADIR)/bash-completion/completions
ZSHDIR ?= $(DATADIR)/zsh/site-functions
FISHDIR ?= $(DATADIR)/fish/vendor_completions.d
CARGO ?= cargo
BUILT ?= target/release
PROGRAMS := become-root subid

.PHONY: all build install uninstall deb

all: build

build:
	$(CARGO) build --release --locked --bins

ifeq ($(BUILT),target/release)
install: build
endif

install:
	install -d '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(MANDIR)/man1' '$(DESTDIR)$(BASHDIR)' \
		'$(DESTDIR)$(ZSHDIR)' '$(DESTDIR)$(FISHDIR)'
	for p in $(PROGRAMS); do \
		install -m 755 '$(BUILT)'/$$p '$(DESTDIR)$(BINDIR)'/$$p && \
		gzip -9n < man/$$p.1 > '$(DESTDIR)$(MANDIR)'/man1/$$p.1.gz && \
		chmod 644 '$(DESTDIR)$(MANDIR)'/man1/$$p.1.gz && \
		install -m 644 completions/$$p.bash '$(DESTDIR)$(BASHDIR)'/$$p && \
		install -m 644 completions/_$$p '$(DESTDIR)$(ZSHDIR)'/_$$p && \
		install -m 644 completions/$$p.fish '$(DESTDIR)$(FISHDIR)'/$$p.fish || exit 1; \
	done

uninstall:
	for p in $(PROGRAMS); do \
		rm -f '$(DESTDIR)$(BINDIR)'/$$p '$(DESTDIR)$(MANDIR)'/man1/$$p.1.gz \
			'$(DESTDIR)$(BASHDIR)'/$$p '$(DESTDIR)$(ZSHDIR)'/_$$p \
			'$(DESTDIR)$(FISHDIR)'/$$p.fish; \
	done

deb:
	scripts/build-deb
