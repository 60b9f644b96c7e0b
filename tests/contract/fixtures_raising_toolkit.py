"""A toolkit module whose import fails, as a broken dependency would make it."""

from __future__ import annotations

raise RuntimeError("the payments SDK is not configured")
