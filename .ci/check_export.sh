#!/usr/bin/env bash
# Fails when mixup_lab/ is not exactly what the notebooks export (someone edited the package by hand,
# or forgot to export after editing a notebook).
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
cp -r mixup_lab "$tmp/before"
.venv/bin/nbdev_export
if ! diff -r -x __pycache__ "$tmp/before" mixup_lab; then
  echo "mixup_lab/ differs from what nbdev_export writes: edit the notebooks, run 'make export', commit both." >&2
  exit 1
fi
echo "nbdev_export: mixup_lab/ is in sync with nbs/"
