#!/usr/bin/env bash
# Inside the guest: kernel modules, configfs, and the daemons real clients need.
set -uo pipefail
for m in sd_mod sg loop configfs target_core_mod target_core_file target_core_iblock \
         target_core_pscsi target_core_user tcm_loop iscsi_target_mod iscsi_tcp; do
    modprobe "$m" || echo "prepare-guest: cannot load $m" >&2
done
mountpoint -q /sys/kernel/config || mount -t configfs none /sys/kernel/config
# /tmp in the guest is virtme's overlay of the host's /tmp (a mountpoint already, so the
# check used to be mountpoint -q and never mounted anything); give tests and benchmarks a
# real tmpfs for images and loop devices: lioctl's handler answers files in memory inline.
# A checkout that itself lives in the host's /tmp is mounted back where it was.
if [[ $(stat -f -c %T /tmp) != tmpfs ]]; then
    here=$PWD
    if [[ $here == /tmp/* ]]; then
        mkdir -p /run/lioctl-host-tmp
        mount --rbind /tmp /run/lioctl-host-tmp
    fi
    mount -t tmpfs -o size=1500M tmpfs /tmp
    if [[ $here == /tmp/* ]]; then
        mkdir -p "$here"
        mount --rbind "/run/lioctl-host-tmp/${here#/tmp/}" "$here"
    fi
fi
mkdir -p /run/lock /run/dbus /var/run /etc/target   # /etc is a throwaway overlay here
ip link set lo up 2>/dev/null || true
