"""Moved to kompete.runtime.context (the runtime sits below the algorithms); this name stays an alias of
that module, so older imports and monkeypatches reach the same objects."""

import sys

from kompete.runtime import context

sys.modules[__name__] = context
