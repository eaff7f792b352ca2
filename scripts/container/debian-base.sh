#!/bin/sh
# A stand-in for docker.io/library/python:3.11-slim, made from Debian packages, for machines that
# reach Debian's mirror but no image registry. `kit build` runs it when the pull fails (or with
# --base-from-debian); it can be run by hand, as root:
#
#   scripts/container/debian-base.sh WORK_DIR podman|docker [IMAGE] [MIRROR]
#
# What it is: Debian 12 (bookworm, minbase) with Debian's python3 (3.11), pip and venv, `python`
# and `pip` on PATH in /usr/local/bin as in the public image, PIP_BREAK_SYSTEM_PACKAGES=1 (pip
# may install into Debian's Python, as BentoML's Dockerfile does), no package caches. It is not
# the public image (another build of CPython 3.11, Debian's pip): the label says so.
set -eu

work=${1:?work directory}
runner=${2:?podman or docker}
image=${3:-docker.io/library/python:3.11-slim}
mirror=${4:-http://deb.debian.org/debian}
rootfs="$work/rootfs"

debootstrap --variant=minbase --include=python3,python3-pip,python3-venv,ca-certificates \
  bookworm "$rootfs" "$mirror"

for name in python python3; do ln -sf /usr/bin/python3 "$rootfs/usr/local/bin/$name"; done
for name in pip pip3; do ln -sf /usr/bin/pip3 "$rootfs/usr/local/bin/$name"; done
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/cache/apt/*.bin \
  "$rootfs"/var/lib/apt/lists/*

# /dev, /proc and /sys are the container runtime's: left empty in the image
tar -C "$rootfs" --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . |
  "$runner" import \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_BREAK_SYSTEM_PACKAGES=1' \
    --change 'CMD ["python3"]' \
    --change 'LABEL kit.stand-in="python:3.11-slim stand-in: Debian bookworm packages (kit build)"' \
    - "$image"
