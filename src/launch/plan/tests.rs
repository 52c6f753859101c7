//! The plan's defaults: which network namespace --all and --sysfs imply.

use super::*;

#[test]
fn sysfs_and_all_imply_net_none_unless_net_says_otherwise() {
    let off = NetMode::None;
    // (--net, --all, --sysfs) -> the network namespace's mode
    let rows = [
        ((None, false, false), None),
        ((None, true, false), Some(off)),
        ((None, false, true), Some(off)),
        ((None, true, true), Some(off)),
        (
            (Some(NetMode::Slirp4netns), false, true),
            Some(NetMode::Slirp4netns),
        ),
        ((Some(NetMode::Pasta), true, true), Some(NetMode::Pasta)),
        ((Some(NetMode::Auto), false, false), Some(NetMode::Auto)),
    ];
    for ((net, all, sysfs), want) in rows {
        assert_eq!(
            implied_net(net, all, sysfs),
            want,
            "--net={net:?} --all={all} --sysfs={sysfs}"
        );
    }
}
