# The recipe of the VM tier's images (sourced by lib.sh): what each release's image holds
# and how mmdebstrap makes it. Its text is hashed into the image's name (lib.sh), so a change
# here builds new images and nothing else does.

# Packages every image gets. Everything a scenario uses is installed here, at build time:
# the VM has no network device.
vm_packages_common=(
    systemd systemd-sysv dbus dbus-user-session libpam-systemd linux-image-amd64
    uidmap slirp4netns fuse-overlayfs podman buildah crun busybox-static iproute2
    python3 make curl procps util-linux libcap2-bin kmod e2fsprogs tar gzip man-db
)

# What a release adds or lacks (passt, hence pasta, came with Debian 12). AppArmor as a
# desktop install has it (loading, among others, Debian's profile for pasta), on the releases
# the .deb installs on, where its postinst is tested against AppArmor 3 and 4. catatonit, the
# init of podman's pods (podman recommends it), on the releases whose podman scenarios make
# pods.
vm_packages() {
    local release=$1
    printf '%s\n' "${vm_packages_common[@]}"
    case $release in
    bullseye) ;;
    *) printf '%s\n' passt apparmor catatonit ;;
    esac
}

# vm_recipe_hooks RELEASE: set vm_hooks, the mmdebstrap hooks that make the tree a bootable
# system with the tier's user: fstab and hostname, a user made as an administrator would
# (useradd -m, so its subuid and subgid lines are shadow's own) with lingering (a systemd user
# session from boot on), the boot unit enabled, timers that would only disturb masked.
vm_recipe_hooks() {
    local unit=$vm_dir/guest/become-root-vmtest.service
    vm_hooks=(
        --customize-hook='echo "/dev/vda / ext4 rw,discard 0 1" > "$1/etc/fstab"'
        --customize-hook='echo become-root-vm > "$1/etc/hostname"'
        --customize-hook='chroot "$1" useradd -m -s /bin/bash tester'
        --customize-hook='mkdir -p "$1/var/lib/systemd/linger" && touch "$1/var/lib/systemd/linger/tester"'
        --customize-hook="cp '$unit' \"\$1/etc/systemd/system/\""
        --customize-hook='chroot "$1" systemctl enable become-root-vmtest.service'
        --customize-hook='chroot "$1" systemctl mask apt-daily.timer apt-daily-upgrade.timer man-db.timer e2scrub_all.timer fstrim.timer systemd-timesyncd.service || true'
        --customize-hook='chroot "$1" passwd -d root'
    )
}
