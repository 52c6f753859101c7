//! `--check`: the kernel's version, and each newer facility probed (kernel.rs).

use super::Item;

/// The kernel's version against the oldest supported, then each newer facility become-root
/// uses, probed (overlayfs in a user namespace has its own line, from the namespace probe).
pub(super) fn kernel_items() -> Vec<Item> {
    use crate::kernel::{FACILITIES, Fallback, MINIMUM, probe, running};
    let (release, version) = running();
    let mut items = vec![match version {
        Some(v) if v >= MINIMUM => Item::ok(
            "kernel",
            format!("Linux {release} (become-root supports {MINIMUM} and later)"),
        ),
        Some(_) => Item::warn(
            "kernel",
            format!("Linux {release} is older than {MINIMUM}, the oldest become-root supports"),
            format!("a kernel of {MINIMUM} or later (what fails says which version it needs)"),
        ),
        None => Item::warn(
            "kernel",
            format!("cannot read the version of Linux {release:?}"),
            None,
        ),
    }];
    for facility in FACILITIES {
        let Some(present) = probe(facility) else {
            continue;
        };
        let what = facility.name();
        items.push(if present {
            Item::ok(what, format!("available (Linux {})", facility.since()))
        } else {
            match facility.without() {
                Fallback::Instead(instead) => Item::warn(
                    what,
                    format!("not in this kernel (Linux {}); {instead}", facility.since()),
                    format!("Linux {} or later", facility.since()),
                ),
                Fallback::Unavailable(features) => Item::warn(
                    what,
                    format!(
                        "not in this kernel (Linux {}): {features} cannot work",
                        facility.since()
                    ),
                    format!("Linux {} or later", facility.since()),
                ),
            }
        });
    }
    items
}
