#!/usr/bin/env bash
# Installs the Debian packages the station needs (`run`) or the test suite needs (`test`).
# Idempotent: packages already installed are not touched, and apt-get runs only when something is missing.
set -euo pipefail

run_packages=(
  python3 python3-venv python3-dev gcc make
  ffmpeg redis-server sqlite3 openssl
  udev util-linux exfat-fuse exfatprogs fusefat dosfstools mtools
  fonts-noto-cjk fonts-wqy-zenhei
)
test_packages=(
  "${run_packages[@]}"
  postgresql postgresql-contrib
  radosgw ceph-mon ceph-osd ceph-common
  chromium  # browser tests of the web UI: Playwright drives Debian's Chromium (CJK fonts: run_packages)
  poppler-utils unzip  # the export tests check notes and zips with standard tools
  libfuse2  # fusepy (tests/fixtures/faulty_fuse.py): recorder images with unreadable sectors, and slowed
            # recorders (the live dock status test; this kernel has no dm-delay, a FUSE layer slows reads)
  xfsprogs  # export tests on XFS, where a package's zip shares its originals' blocks (reflink)
  systemd  # systemd-analyze verify: tests/integration/test_deploy_units.py checks deploy/systemd
)

# axe-core comes from the npm registry (tests/e2e/test_accessibility.py checks the pages with it). Debian's
# `npm` package only where no npm is installed: NodeSource's `nodejs` carries its own and conflicts with it.
if ! command -v npm >/dev/null 2>&1; then
  test_packages+=(npm)
fi

case "${1:-run}" in
  run) wanted=("${run_packages[@]}") ;;
  test) wanted=("${test_packages[@]}") ;;
  *) echo "usage: $0 run|test" >&2; exit 2 ;;
esac

missing=()
for pkg in "${wanted[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

if [[ $(id -u) -ne 0 ]]; then
  echo "missing Debian packages (run as root to install): ${missing[*]}" >&2
  exit 2
fi

echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
# Debian starts services on install; the station and the tests start their own on loopback.
