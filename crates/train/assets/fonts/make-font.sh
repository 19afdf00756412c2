#!/usr/bin/env bash
# Regenerates DejaVuSans-ascii.ttf: DejaVu Sans (Debian's fonts-dejavu-core) cut down to printable
# ASCII and a few symbols with fontTools' subsetter, so the plots render text with no system
# fonts at run time (plotters' ab_glyph feature reads this file, embedded with include_bytes!).
# Licence: LICENSE-DejaVu beside this script (Bitstream Vera / DejaVu: free to modify and ship).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=${1:-/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf}
venv=$(mktemp -d)
python3 -m venv "$venv"
"$venv/bin/pip" install -q fonttools
"$venv/bin/pyftsubset" "$src" \
  --unicodes="U+0020-007E,U+00B0,U+00B1,U+00D7,U+2013,U+2014,U+2212" \
  --layout-features='*' --output-file="$here/DejaVuSans-ascii.ttf"
rm -rf "$venv"
