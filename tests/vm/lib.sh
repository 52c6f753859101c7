# Shared by the VM tier's scripts (sourced, not run): where images live, and what each
# Debian release of the tier is built from.
#
# Images are cached outside the clone, in $BECOME_ROOT_VM_CACHE (default
# /var/tmp/become-root-vm), one per release and recipe: the file name carries a hash of
# everything the image is built from (recipe.sh and the guest's boot unit), so a changed
# recipe builds a new image and an unchanged one is reused.

vm_cache=${BECOME_ROOT_VM_CACHE:-/var/tmp/become-root-vm}
vm_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$vm_dir/recipe.sh"

# The releases of the tier, oldest first, and the kernel each brings.
vm_releases=(bullseye bookworm trixie)

# The kernel series a release ships (for the README's table and the results' check).
vm_kernel_series() {
    case $1 in
    bullseye) echo 5.10 ;;
    bookworm) echo 6.1 ;;
    trixie) echo 6.12 ;;
    esac
}

# A short hash of the recipe of RELEASE's image.
vm_recipe_hash() {
    local release=$1
    {
        echo "$release"
        cat "$vm_dir/recipe.sh" "$vm_dir/guest/become-root-vmtest.service"
    } | sha256sum | cut -c1-12
}

# The cached image of RELEASE (a raw ext4 file system) and its kernel and initrd.
vm_image_base() {
    echo "$vm_cache/$1-$(vm_recipe_hash "$1")"
}
