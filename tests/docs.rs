//! The committed man pages and shell completions, checked against the clap definitions.
//!
//! `man/` and `completions/` are generated from `src/cli.rs` and committed, so that packagers
//! need no Rust toolchain to install them and so that a change to a flag shows up in review as
//! a change to the docs. This test renders everything again and fails when a committed file
//! differs; with `BECOME_ROOT_REGENERATE=1` it writes the files instead.
//!
//! Each executable is one row of [`PAGES`]. A row names the clap command, the man page, the
//! completion files and the hand-written man sections clap cannot know about (exit status,
//! environment, files, security).

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap_complete::Shell;
use clap_mangen::Man;
use clap_mangen::roff::{Roff, bold, roman};

/// Set to `1` to write the generated files instead of comparing them.
const REGENERATE_VAR: &str = "BECOME_ROOT_REGENERATE";

/// One executable's generated documentation.
struct Page {
    /// The clap command, exactly as the binary parses with it.
    command: fn() -> clap::Command,
    /// The man page, relative to the crate root.
    man: &'static str,
    /// Completion scripts, relative to the crate root, one per shell.
    completions: &'static [(Shell, &'static str)],
    /// Man sections after OPTIONS, in order.
    sections: &'static [Section],
}

/// A man section clap has no field for.
struct Section {
    title: &'static str,
    body: &'static [Block],
}

enum Block {
    /// A paragraph of plain text.
    Para(&'static str),
    /// A tagged paragraph: the tag in bold on its own line, the text indented below it.
    Item(&'static str, &'static str),
}

use Block::{Item, Para};

/// Every executable that has a man page and completions. `subid` gets its row when its clap
/// command exists.
const PAGES: &[Page] = &[Page {
    command: become_root::cli::Cli::command,
    man: "man/become-root.1",
    completions: &[
        (Shell::Bash, "completions/become-root.bash"),
        (Shell::Zsh, "completions/_become-root"),
        (Shell::Fish, "completions/become-root.fish"),
    ],
    sections: BECOME_ROOT_SECTIONS,
}];

const BECOME_ROOT_SECTIONS: &[Section] = &[
    Section {
        title: "ID MAPS",
        body: &[
            Para(
                "With --map=full (and auto, when it can), the caller is uid and gid 0 inside and \
                 every subordinate range of the caller follows at 1, 2, ... in file order, \
                 contiguously: ranges of 1000 and 5000 ids give the maps 0 UID 1, 1 200000 1000, \
                 1001 300000 5000. Lines naming the caller by login name or by numeric uid both \
                 count. Overlapping or repeated ranges are merged, a range containing the \
                 caller's own id is split around it, and more than 340 extents (the kernel's \
                 limit) is an error. The caller's lines are parsed as newuidmap parses them; \
                 a malformed line (a trailing space, a CRLF line ending, count 0, a range past \
                 4294967295) is reported with its file and line number and never repaired: \
                 --map=full fails, --map=auto warns and maps the valid ranges, or only the \
                 caller when none is left.",
            ),
            Para(
                "--map=auto falls back to a single mapping, with one warning that says why and \
                 how to fix it, when the caller has no subordinate ids, newuidmap or newgidmap \
                 is missing, not set-user-ID, on a nosuid mount, or no_new_privs is set. \
                 --map=full makes each of these an error (status 125); --quiet silences the \
                 warning. A single mapping denies setgroups(2) inside, as the kernel requires \
                 (CVE-2014-8989).",
            ),
            Para(
                "Real root (uid 0 in the initial user namespace) gets the identity map \
                 0 0 4294967295, written directly. Root inside a user namespace (become-root \
                 run by become-root) passes the current map through as identity, one extent \
                 per extent of the current map. Supplementary groups are kept; those not \
                 mapped show as the overflow group (nogroup) inside, as with unshare and podman.",
            ),
        ],
    },
    Section {
        title: "PROCESSES AND SIGNALS",
        body: &[
            Para(
                "Without --pid, COMMAND replaces become-root (exec in place): it keeps \
                 become-root's process id, so signals, terminal job control and the exit \
                 status are COMMAND's own and no process sits in between. The maps are \
                 written by newuidmap and newgidmap, run concurrently from short-lived \
                 children that are gone before COMMAND starts.",
            ),
            Para(
                "With --pid, become-root stays outside and supervises. The namespace's init \
                 (pid 1, named become-root) reaps orphans and runs COMMAND as pid 2. Signals \
                 sent to become-root with kill(1) are forwarded to COMMAND once; signals the \
                 terminal sends to the whole foreground process group (Ctrl-C, Ctrl-\\, \
                 window size) are not forwarded again. When become-root owns the terminal, \
                 init takes a process group of its own so that shells inside find a valid \
                 group to hand the terminal back to; Ctrl-Z stops COMMAND and then \
                 become-root, so the caller's shell sees a stopped job, and fg resumes both. \
                 become-root never calls setsid(2). If become-root is killed, even with \
                 SIGKILL, init and with it everything in the namespace are killed too.",
            ),
            Para(
                "COMMAND starts with every signal unblocked and SIGPIPE at its default \
                 action (so become-root yes | head -1 ends quietly); other ignored signals \
                 are passed on as the caller left them. Descriptors inherited by become-root, \
                 such as a make jobserver's, reach COMMAND unchanged; become-root's own are \
                 close-on-exec, and the helpers get none of the inherited ones.",
            ),
        ],
    },
    Section {
        title: "EXIT STATUS",
        body: &[
            Item(
                "the status of COMMAND",
                "COMMAND ran and exited; become-root exits with the same status.",
            ),
            Item(
                "128+N",
                "COMMAND was killed by signal N. Either COMMAND runs in become-root's place \
                 (same process), or become-root supervises it (with --pid, for example) and \
                 then kills itself with the same signal: either way the caller sees the same \
                 death, which a shell reports as 128+N.",
            ),
            Item(
                "125",
                "become-root itself failed, bad usage included. It prints one line \
                 \"become-root: WHAT: WHY\" and, where a fix is known, a second line \
                 \"hint: FIX\".",
            ),
            Item(
                "126",
                "COMMAND was found but could not be executed (for example, it is not \
                 executable, or not a format the kernel can run).",
            ),
            Item("127", "COMMAND was not found."),
            Para(
                "COMMAND may itself exit with 125, 126 or 127; only the message on standard \
                 error tells those apart from become-root's own failures.",
            ),
        ],
    },
    Section {
        title: "ENVIRONMENT",
        body: &[
            Item(
                "SHELL",
                "The command run when no COMMAND is given; /bin/sh when SHELL is unset or empty.",
            ),
            Item(
                "NEWUIDMAP",
                "Path of the program to run instead of newuidmap(1) (for tests, or a helper \
                 installed elsewhere). It can write the uid map only with privilege of its own: \
                 become-root lends it none.",
            ),
            Item("NEWGIDMAP", "The same, for newgidmap(1)."),
            Item(
                "_CONTAINERS_USERNS_CONFIGURED",
                "Set in the environment of COMMAND, so that podman(1) and buildah(1) run inside \
                 know they are already in a configured user namespace and do not create \
                 another one.",
            ),
            Item(
                "_CONTAINERS_ROOTLESS_UID",
                "Set in the environment of COMMAND to the caller's uid outside the namespace, \
                 for podman and buildah.",
            ),
            Item(
                "_CONTAINERS_ROOTLESS_GID",
                "Set in the environment of COMMAND to the caller's gid outside the namespace, \
                 for podman and buildah.",
            ),
            Para(
                "Apart from these three variables, COMMAND gets become-root's environment \
                 unchanged.",
            ),
        ],
    },
    Section {
        title: "FILES",
        body: &[
            Item(
                "/etc/subuid",
                "The subordinate uid ranges of each user (subuid(5)). newuidmap(1) reads it too, \
                 and refuses to map any range not granted there.",
            ),
            Item(
                "/etc/subgid",
                "The subordinate gid ranges of each user (subgid(5)), checked by newgidmap(1) \
                 in the same way.",
            ),
            Item(
                "/etc/nsswitch.conf",
                "With --subid-source=auto, a subid: line here makes become-root ask \
                 getsubids(1) (libsubid, for example SSSD or LDAP) instead of reading the files.",
            ),
        ],
    },
    Section {
        title: "SECURITY",
        body: &[Para(
            "become-root is never installed setuid and needs no file capabilities; it has no \
             privilege of its own. The only privileged step is writing the id maps, done by the \
             setuid helpers newuidmap(1) and newgidmap(1), which map exactly the ranges the \
             administrator granted to the caller in /etc/subuid and /etc/subgid. Root inside \
             the new user namespace is root only over that namespace's resources and over files \
             owned by mapped ids; it gains nothing over the rest of the system.",
        )],
    },
    Section {
        title: "SEE ALSO",
        body: &[Para(
            "unshare(1), newuidmap(1), newgidmap(1), subuid(5), subgid(5), \
             user_namespaces(7)",
        )],
    },
];

#[test]
fn committed_docs_match_the_cli() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let regenerate = std::env::var_os(REGENERATE_VAR).is_some_and(|v| v == "1");

    let mut drifted = Vec::new();
    for (path, generated) in PAGES.iter().flat_map(render_page) {
        let full = root.join(&path);
        let committed = fs::read(&full).ok();
        if committed.as_deref() == Some(generated.as_slice()) {
            continue;
        }
        if regenerate {
            write(&full, &generated);
            eprintln!("docs: wrote {}", path.display());
        } else {
            drifted.push(path);
        }
    }

    assert!(
        drifted.is_empty(),
        "these committed files are missing or differ from what the clap definition \
         generates:\n{}\nrun `{REGENERATE_VAR}=1 cargo test --test docs` and commit the result",
        drifted
            .iter()
            .map(|p| format!("  {}", p.display()))
            .collect::<Vec<_>>()
            .join("\n"),
    );
}

/// The hand-written sections are where the man page keeps its promises: check they are there,
/// so a careless edit of the table cannot drop one and regenerate quietly.
#[test]
fn become_root_man_page_has_the_contract_sections() {
    let page = &PAGES[0];
    let man = render_man(page);
    let man = String::from_utf8(man).expect("man page is UTF-8");
    for heading in ["EXIT STATUS", "ENVIRONMENT", "FILES", "SECURITY"] {
        assert!(
            man.contains(&format!(".SH \"{heading}\""))
                || man.contains(&format!(".SH {heading}\n")),
            "{}: no {heading} section",
            page.man
        );
    }
    for word in [
        "125",
        "126",
        "127",
        "128+N",
        "NEWUIDMAP",
        "NEWGIDMAP",
        "_CONTAINERS_USERNS_CONFIGURED",
        "_CONTAINERS_ROOTLESS_UID",
        "_CONTAINERS_ROOTLESS_GID",
        "/etc/subuid",
        "/etc/subgid",
        "setuid",
    ] {
        // roff writes '-' as '\-'.
        assert!(
            man.contains(&word.replace('-', "\\-")),
            "{}: {word} is not mentioned",
            page.man
        );
    }
}

/// Every file of one page, as (path relative to the crate root, contents).
fn render_page(page: &Page) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = vec![(PathBuf::from(page.man), render_man(page))];
    for &(shell, path) in page.completions {
        let mut cmd = (page.command)();
        let name = cmd.get_name().to_owned();
        let mut out = Vec::new();
        clap_complete::generate(shell, &mut cmd, name, &mut out);
        files.push((PathBuf::from(path), out));
    }
    files
}

/// The man page: clap_mangen's sections, then the page's own, then VERSION.
///
/// `Man::render` cannot take extra sections, so the page is assembled from its section
/// renderers. Each of them writes the roff apostrophe preamble, which must appear only once.
/// The after-help text is left out: it is the terminal's summary of EXIT STATUS, which the
/// man page gives in full.
fn render_man(page: &Page) -> Vec<u8> {
    let cmd = (page.command)();
    let has_args = cmd.get_arguments().any(|a| !a.is_hide_set());
    let has_subcommands = cmd.has_subcommands();
    let has_version = cmd.get_version().is_some() || cmd.get_long_version().is_some();
    let man = Man::new(cmd).manual("User Commands");

    let preamble = Roff::new().render();
    let mut out = format!(
        ".\\\" Generated by tests/docs.rs from src/cli.rs; do not edit.\n\
         .\\\" Regenerate with: {REGENERATE_VAR}=1 cargo test --test docs\n{preamble}"
    )
    .into_bytes();
    let mut add = |render: &dyn Fn(&mut Vec<u8>) -> io::Result<()>| {
        let mut part = Vec::new();
        render(&mut part).expect("rendering into memory cannot fail");
        let body = part
            .strip_prefix(preamble.as_bytes())
            .expect("every roff rendering starts with the preamble");
        out.extend_from_slice(body);
    };

    add(&|w| man.render_title(w));
    add(&|w| man.render_name_section(w));
    add(&|w| man.render_synopsis_section(w));
    add(&|w| man.render_description_section(w));
    if has_args {
        add(&|w| man.render_options_section(w));
    }
    if has_subcommands {
        add(&|w| man.render_subcommands_section(w));
    }
    add(&|w| render_sections(page.sections).to_writer(w));
    if has_version {
        add(&|w| man.render_version_section(w));
    }
    out
}

fn render_sections(sections: &[Section]) -> Roff {
    let mut roff = Roff::new();
    for section in sections {
        roff.control("SH", [section.title]);
        for block in section.body {
            match block {
                Para(text) => {
                    roff.control("PP", []).text([roman(*text)]);
                }
                Item(tag, text) => {
                    roff.control("TP", [])
                        .text([bold(*tag)])
                        .text([roman(*text)]);
                }
            }
        }
    }
    roff
}

fn write(path: &Path, contents: &[u8]) {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    }
    fs::File::create(path)
        .and_then(|mut f| f.write_all(contents))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}
