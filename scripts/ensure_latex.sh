#!/usr/bin/env bash
# Make sure latexmk and the LaTeX packages the report uses are there; install them with apt
# when possible, otherwise say exactly what to install.
set -euo pipefail
PACKAGES="latexmk texlive-latex-extra texlive-science lmodern"

if command -v latexmk >/dev/null 2>&1 && kpsewhich booktabs.sty lmodern.sty adjustbox.sty >/dev/null 2>&1; then
  exit 0
fi
if command -v apt-get >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n";
  else SUDO="none"; fi
  if [ "$SUDO" != "none" ]; then
    echo "Installing LaTeX ($PACKAGES) with apt-get; this takes a few minutes once." >&2
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends \
      $PACKAGES >/dev/null
    exit 0
  fi
fi
cat >&2 <<MSG
LaTeX is missing: the report needs latexmk and a TeX distribution, and this script cannot
install them here (no apt-get, or no root/sudo rights). Install them, then rerun make:
  Debian/Ubuntu:  sudo apt-get install $PACKAGES
  Fedora:         sudo dnf install latexmk texlive-scheme-medium
  macOS:          brew install --cask mactex-no-gui
  conda:          conda install -c conda-forge texlive-core latexmk
MSG
exit 1
