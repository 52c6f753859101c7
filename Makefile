# become-root: build and install like other software.
#
#   make                      build (cargo build --release --locked; statically linked)
#   make install              install under PREFIX (default /usr/local); DESTDIR for staging
#   make uninstall            remove what install put there
#   make deb                  build the Debian package (scripts/build-deb)
#
# Installs become-root, subid as a link to it, their man pages (gzip'd, section 1) and shell
# completions where bash-completion, zsh and fish look for them. BUILT names the directory
# holding the built binaries (default: where `make build` puts them, built first); give it to
# install a build made elsewhere.

PREFIX ?= /usr/local
DESTDIR ?=
BINDIR ?= $(PREFIX)/bin
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
BASHDIR ?= $(DATADIR)/bash-completion/completions
ZSHDIR ?= $(DATADIR)/zsh/site-functions
FISHDIR ?= $(DATADIR)/fish/vendor_completions.d
CARGO ?= cargo
PROGRAMS := become-root subid
# Linked statically by default (.cargo/config.toml says so for every cargo build): start-up
# is a feature, and a static binary starts in about 0.85x the time of the same dynamically
# linked one (no dynamic loader; scripts/bench-startup). become-root loads no NSS module (it
# reads /etc/passwd, and asks getent(1) for other accounts), so a static glibc is safe.
# STATIC=0 builds a dynamically linked binary.
STATIC ?= 1
TRIPLE := $(shell rustc -vV | sed -n 's/^host: //p')
ifeq ($(STATIC),1)
CARGO_BUILD = $(CARGO) build --release --locked --bins --target $(TRIPLE)
else
CARGO_BUILD = RUSTFLAGS='-C target-feature=-crt-static' \
	$(CARGO) build --release --locked --bins --target $(TRIPLE)
endif
DEFAULT_BUILT := target/$(TRIPLE)/release
BUILT ?= $(DEFAULT_BUILT)

.PHONY: all build install uninstall deb print-built

all: build

build:
	$(CARGO_BUILD)

# Where `make build` puts the binaries (for scripts).
print-built:
	@echo '$(DEFAULT_BUILT)'

ifeq ($(BUILT),$(DEFAULT_BUILT))
install: build
endif

install:
	install -d '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(MANDIR)/man1' '$(DESTDIR)$(BASHDIR)' \
		'$(DESTDIR)$(ZSHDIR)' '$(DESTDIR)$(FISHDIR)'
	install -m 755 '$(BUILT)'/become-root '$(DESTDIR)$(BINDIR)'/become-root
	# subid is become-root under another name (it answers to the name it runs under).
	ln -sfn become-root '$(DESTDIR)$(BINDIR)'/subid
	for p in $(PROGRAMS); do \
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
