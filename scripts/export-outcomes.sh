#!/usr/bin/env bash
# Exports the brain's logged decisions joined with their outcomes from the ARO_COMMANDS and
# ARO_OUTCOMES streams into a JSON-lines dataset for training.train --offline. Arguments go to
# training.export_outcomes (--out FILE, required; --nats-url URL, default
# nats://127.0.0.1:4222; --include-pending; --timeout SECS). See docs/learning-from-outcomes.md.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../training/python-env.sh"

echo "==> exporting"
"$PYTHON" -m training.export_outcomes "$@"
