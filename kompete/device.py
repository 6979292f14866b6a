"""Moved to kompete.runtime.device; this name stays an alias of that module."""

import sys

from kompete.runtime import device

sys.modules[__name__] = device
